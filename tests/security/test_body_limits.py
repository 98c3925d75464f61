"""A request body over the limit (1 MB) is refused with 413 while it is being read, on every route that
takes a body: declared with Content-Length or streamed with `Transfer-Encoding: chunked` (which declares no
length, and used to be read to the end: 30 MB in one request)."""

from __future__ import annotations

import select
import socket

import pytest

from tests.security.server import source_address

JSON, FORM = "application/json", "application/x-www-form-urlencoded"
#: Routes that read a body, with the content type each reads (another one may be answered unread).
ROUTES = [
    ("/api/v1/chat", JSON),
    ("/slack/events", JSON),
    ("/email/inbound", JSON),
    ("/console/login", FORM),
    ("/console/webhooks", FORM),
    ("/api/v1/conversations/1/reply", JSON),
    ("/api/v1/contacts/1/followups", JSON),
]
LIMIT = 1_000_000
FLOOD = 30_000_000


def _status(sock: socket.socket) -> int | None:
    """The status code of the HTTP answer on `sock`, or None when the server hung up without one."""
    received = b""
    try:
        while b"\r\n" not in received:
            part = sock.recv(4096)
            if not part:
                return None
            received += part
    except OSError:
        return None
    return int(received.split(b" ", 2)[1])


def stream(port: int, path: str, content_type: str, *, total: int, chunked: bool) -> tuple[int | None, int]:
    """POST `total` bytes to `path`, stopping as soon as the server answers; (status, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source_address(), 0))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    piece = b"7" * 65536
    sent = 0
    with sock:
        try:
            sock.sendall(head.encode())
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if sent >= total and chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending: what it said is read below
        return _status(sock), sent


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(server, path, content_type):
    status, sent = stream(server.port, path, content_type, total=FLOOD, chunked=True)
    assert status == 413, f"{path}: answered {status} after {sent} bytes"
    assert sent < FLOOD, f"{path}: the whole {FLOOD} bytes were read"


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(server, path, content_type):
    status, sent = stream(server.port, path, content_type, total=LIMIT + 1, chunked=False)
    assert status == 413, f"{path}: answered {status}"
