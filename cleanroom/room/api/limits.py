"""Request bodies limited before anything reads them.

An outside audit sent an unauthenticated 200 MB JSON body: the framework read
it whole (8.5 s, +417 MB of server memory) before authentication refused it.
This ASGI middleware sits in front of every route: a declared
``Content-Length`` over the limit is refused at once, and a body streamed
without one is counted as it arrives and refused the moment it passes the
limit. Either way the answer is 413 and at most ``limit`` bytes were held.
The bundle upload keeps its own, much larger, streamed limit
(``max_upload_bytes``) and is passed through untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Refusal = Callable[[Request, str], Response]


class BodyLimit:
    """Refuse (413) a request body over ``limit`` bytes, except on ``exempt`` routes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        exempt: frozenset[tuple[str, str]],
        refuse: Refusal,
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt  # (method, path) pairs with a limit of their own
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send, f"a body of {declared} bytes")
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nothing to answer
            body = message.get("body", b"")
            received += len(body)
            if received > self.limit:
                await self._refuse(scope, receive, send, "a body")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        message = f"{what} over this service's {self.limit}-byte limit for a request"
        response = self.refuse(Request(scope, receive), message)
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, as one message; then the client's own (e.g. a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
