"""A small HTTP server on loopback that stands in for a platform's API in tests.

Each fake platform registers handlers by method and path; every request is recorded, and failures can be
scripted ("answer the next 2 calls to /chat.postMessage with 429 and Retry-After: 1"). The SDKs run
unmodified against it, pointed at `base_url`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeResponse", "FakeServer", "RecordedRequest"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def form(self) -> dict[str, str]:
        """The body as a form (or, for a JSON body, the object) - SDKs send either."""
        if self.headers.get("content-type", "").startswith("application/json"):
            return self.json
        return {key: values[-1] for key, values in urllib.parse.parse_qs(self.body.decode()).items()}

    @property
    def params(self) -> dict[str, Any]:
        """Query, form and JSON parameters merged (whatever way the SDK sent them)."""
        merged: dict[str, Any] = {key: values[-1] for key, values in self.query.items()}
        if self.body:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                merged.update(self.form)
        return merged


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("content-type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("content-type", "text/plain")
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[RecordedRequest], FakeResponse]


class FakeServer:
    """Serve registered handlers on a loopback address (127.0.0.1 unless told) and port (a free one unless
    told) in a background thread.

    Use as a context manager, or call `start()` / `stop()`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self._port = host, port
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, str, Handler]] = []
        self._scripted: dict[str, list[FakeResponse]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Set-up

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer `method path` (exact path, or a prefix when `path` ends with "*") with `handler`."""
        self._routes.append((method.upper(), path, handler))

    def fail_next(self, path: str, *responses: FakeResponse) -> None:
        """Answer the next calls to `path` (exact) with `responses`, in order, before the real handler."""
        with self._lock:
            self._scripted.setdefault(path, []).extend(responses)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return self._server.server_address[1]

    def calls(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to `path` (exact, or a suffix match when it starts with "*")."""
        with self._lock:
            if path.startswith("*"):
                return [r for r in self.requests if r.path.endswith(path[1:])]
            return [r for r in self.requests if r.path == path]

    # Running

    def start(self) -> FakeServer:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def _handle(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=parsed.path,
                    query=urllib.parse.parse_qs(parsed.query),
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=body,
                )
                response = fake._respond(request)
                payload, content_type = response.encoded()
                self.send_response(response.status)
                headers = {"content-type": content_type, **response.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer((self.host, self._port), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-platform", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _respond(self, request: RecordedRequest) -> FakeResponse:
        with self._lock:
            self.requests.append(request)
            scripted = self._scripted.get(request.path)
            if scripted:
                return scripted.pop(0)
        for method, path, handler in self._routes:
            matches = request.path.startswith(path[:-1]) if path.endswith("*") else request.path == path
            if method == request.method and matches:
                return handler(request)
        return FakeResponse(404, {"error": f"no fake for {request.method} {request.path}"})
