"""A loopback HTTP server that speaks the Anthropic and OpenAI wire formats.

Point the real SDK clients at it with ``base_url`` (respx cannot intercept their httpx2
stack). Each API has a queue of scripted :class:`Reply` objects, served once each in order;
when its queue is empty the API's default handler answers (a plain reply, or deterministic
embeddings). Every request is recorded, with its arrival time, so tests can check what the
SDK sent and how attempts were spaced.

    with FakeProviderServer() as server:
        server.enqueue(ANTHROPIC, replies.rate_limited(ANTHROPIC, retry_after="2"))
        provider = AnthropicProvider(api_key="k", base_url=server.anthropic_base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from types import TracebackType
from typing import Any, Self

ANTHROPIC = "anthropic"
"""Anthropic Messages: ``POST /v1/messages``."""
OPENAI_CHAT = "openai.chat"
"""OpenAI Chat Completions: ``POST /v1/chat/completions``."""
OPENAI_EMBEDDINGS = "openai.embeddings"
"""OpenAI Embeddings: ``POST /v1/embeddings``."""

APIS = (ANTHROPIC, OPENAI_CHAT, OPENAI_EMBEDDINGS)

_ROUTES = {
    "/v1/messages": ANTHROPIC,
    "/v1/chat/completions": OPENAI_CHAT,
    "/v1/embeddings": OPENAI_EMBEDDINGS,
}


@dataclass
class Reply:
    """One scripted HTTP reply.

    ``body`` is JSON-encoded unless it is ``bytes`` (sent as is, e.g. a malformed body);
    ``delay`` is how long the server waits before answering.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class RecordedRequest:
    """A request as the server received it."""

    api: str
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: Any
    received_at: float
    """``time.monotonic()`` on arrival."""


Handler = Callable[[RecordedRequest], Reply]


class FakeProviderServer:
    """The fake API server; start it with ``with`` or :meth:`start`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from tests.fakes import replies

        self._host = host
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {api: deque() for api in APIS}
        self._defaults: dict[str, Handler] = {
            ANTHROPIC: replies.default_anthropic,
            OPENAI_CHAT: replies.default_openai_chat,
            OPENAI_EMBEDDINGS: replies.default_openai_embeddings,
        }
        self._requests: list[RecordedRequest] = []
        self._ids = count(1)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind a free loopback port and serve in a background thread."""
        fake: FakeProviderServer = self

        class _Handler(_RequestHandler):
            owner = fake

        self._httpd = ThreadingHTTPServer((self._host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; replies still waiting out a delay are abandoned."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._httpd is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for the Anthropic SDK (it adds ``/v1/messages`` itself)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for the OpenAI SDK (its paths are relative to ``/v1``)."""
        return f"{self.url}/v1"

    def enqueue(self, api: str, *replies: Reply) -> None:
        """Serve these replies, in order, to the next requests to ``api``."""
        self._check_api(api)
        with self._lock:
            self._queues[api].extend(replies)

    def set_default(self, api: str, handler: Handler | Reply) -> None:
        """Answer ``api`` with ``handler`` (or always this reply) once its queue is empty."""
        self._check_api(api)
        if isinstance(handler, Reply):
            fixed = handler

            def handler(_: RecordedRequest) -> Reply:
                return fixed

        with self._lock:
            self._defaults[api] = handler

    def pending(self, api: str) -> int:
        """How many scripted replies ``api`` has not served yet."""
        with self._lock:
            return len(self._queues[api])

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, api: str) -> list[RecordedRequest]:
        """The requests received by ``api``, in arrival order."""
        return [r for r in self.requests if r.api == api]

    def _check_api(self, api: str) -> None:
        if api not in APIS:
            raise ValueError(f"unknown api {api!r}; expected one of {APIS}")

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            queue = self._queues[request.api]
            scripted = queue.popleft() if queue else None
            default = self._defaults[request.api]
        return scripted if scripted is not None else default(request)

    def _request_id(self) -> str:
        return f"req_fake_{next(self._ids):06d}"


class _RequestHandler(BaseHTTPRequestHandler):
    owner: FakeProviderServer
    server_version = "FakeProviderAPI/1.0"

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        api = _ROUTES.get(path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if api is None:
            self._send(Reply(404, {"error": {"type": "not_found", "message": f"no route {path}"}}))
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            api=api,
            method="POST",
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=raw,
            body=body,
            received_at=time.monotonic(),
        )
        reply = self.owner._next_reply(request)
        if reply.delay and self.owner._stopping.wait(reply.delay):
            return
        id_header = "request-id" if api == ANTHROPIC else "x-request-id"
        headers = {id_header: self.owner._request_id(), **reply.headers}
        self._send(Reply(reply.status, reply.body, headers, 0.0, reply.content_type))

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test); nothing is left to answer.
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass
