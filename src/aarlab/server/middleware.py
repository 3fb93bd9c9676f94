"""ASGI middleware of the evaluation server."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before they are parsed or stored: a declared
    Content-Length at once, a chunked body as soon as what was read passes the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send)
            return
        seen = 0
        too_big = False

        async def counted() -> Message:
            nonlocal seen, too_big
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    too_big = True
                    return {"type": "http.disconnect"}
            return msg

        started = False

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if too_big and not started:
                started = True
                await self._reject(send)
                return
            if not too_big:
                started = started or msg["type"] == "http.response.start"
                await send(msg)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            # a route that reads the whole body sees the disconnect above as ``ClientDisconnect``; with a
            # chunked body (no Content-Length) that is how the limit is hit: answer 413, not a 500
            if not too_big:
                raise
            if not started:
                started = True
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over {self.limit} bytes; send less"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class NoNul:
    """Refuse an API URL whose path or query carries a NUL character (``%00``) with 422, before any route
    runs (dashboard pages answer in HTML and clean their own search text).

    No name, task or filter of the API can hold one, and PostgreSQL refuses NUL in text (it raised a
    ``DataError``, a 500, for ``GET /api/v1/flags?task=%00``), so every route gets the same clear answer
    on every database instead of each parameter being guarded on its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and path.startswith("/api/")
            and ("\x00" in path or _nul_in_query(bytes(scope.get("query_string", b""))))
        ):
            body = json.dumps(
                {"detail": "the URL contains a NUL character (%00); remove it from the path and query"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _nul_in_query(query: bytes) -> bool:
    """A NUL in the query, percent-encoded or raw (an ASGI server may pass the bytes as they came)."""
    return b"%00" in query or b"\x00" in query
