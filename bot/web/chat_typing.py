"""Typing indicators for the staff side of a web chat: the console reads whether the customer is typing, and
says when the agent is (the customer's chat page shows "Ana is typing"). Both under the console's login; the
write also needs the console's CSRF token, in the `X-CSRF-Token` header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.crm.models import Staff
from bot.support.webchat_status import conversation_typing, set_staff_typing
from bot.web.auth import console_form, console_staff
from bot.web.dependencies import RuntimeDep

__all__ = ["router"]

router = APIRouter(prefix="/console/conversations/{conversation_id}/typing", include_in_schema=False)
Agent = Annotated[Staff, Depends(console_staff("conversations.read"))]
Writer = Annotated[Staff, Depends(console_form("conversations.write"))]


class TypingOut(BaseModel):
    customer_typing: bool = Field(description="the customer is typing in the web chat now")
    staff_typing: str | None = Field(description="the name of the staff member typing a reply, if any")


class StaffTypingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    typing: bool = Field(description="true while the agent types (repeat every few seconds), false when done")


@router.get("", response_model=TypingOut)
def read_typing(conversation_id: int, runtime: RuntimeDep, staff: Agent) -> TypingOut:
    """Who is typing in the conversation (nobody, on channels other than the web chat)."""
    view = conversation_typing(runtime.engine, conversation_id)
    return TypingOut(customer_typing=view.customer_typing, staff_typing=view.staff_typing)


@router.post("", status_code=204, response_model=None)
def write_typing(
    conversation_id: int, body: StaffTypingRequest, runtime: RuntimeDep, staff: Writer
) -> Response:
    """The agent is typing a reply (or stopped); the customer's web chat shows it (409 on other channels)."""
    set_staff_typing(runtime.engine, conversation_id, staff_id=staff.id, typing=body.typing)
    return Response(status_code=204)
