"""Typing indicators for the staff side of a web chat: the console reads whether the customer is typing, and
says when the agent is (the customer's chat page shows "Ana is typing"). Both under the console's login; the
write also needs the console's CSRF token, in the `X-CSRF-Token` header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.crm.models import Staff
from bot.support.handoff import ConversationNotFound
from bot.support.webchat_status import NotAWebChat, conversation_typing, set_staff_typing
from bot.web.auth import console_staff, verify_csrf
from bot.web.dependencies import RuntimeDep

__all__ = ["router"]

router = APIRouter(prefix="/console/conversations/{conversation_id}/typing", include_in_schema=False)
Agent = Annotated[Staff, Depends(console_staff("conversations.read"))]
Writer = Annotated[Staff, Depends(console_staff("conversations.write"))]


class TypingOut(BaseModel):
    customer_typing: bool = Field(description="the customer is typing in the web chat now")
    staff_typing: str | None = Field(description="the name of the staff member typing a reply, if any")


class StaffTypingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    typing: bool = Field(description="true while the agent types (repeat every few seconds), false when done")


# Errors are answered here as JSON (the console's error handler would render its pages for /console paths).


@router.get("", response_model=TypingOut)
def read_typing(conversation_id: int, runtime: RuntimeDep, staff: Agent) -> TypingOut | JSONResponse:
    """Who is typing in the conversation (nobody, on channels other than the web chat)."""
    try:
        view = conversation_typing(runtime.engine, conversation_id)
    except ConversationNotFound as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    return TypingOut(customer_typing=view.customer_typing, staff_typing=view.staff_typing)


@router.post("", status_code=204, response_model=None)
def write_typing(
    conversation_id: int,
    body: StaffTypingRequest,
    request: Request,
    runtime: RuntimeDep,
    staff: Writer,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> Response | JSONResponse:
    """The agent is typing a reply (or stopped); the customer's web chat shows it."""
    verify_csrf(request, x_csrf_token)
    try:
        set_staff_typing(runtime.engine, conversation_id, staff_id=staff.id, typing=body.typing)
    except ConversationNotFound as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    except NotAWebChat as error:
        return JSONResponse({"error": str(error)}, status_code=409)
    return Response(status_code=204)
