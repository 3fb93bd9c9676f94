"""Red team: the body limit without a Content-Length (a chunked body), on every kind of route.

``BodyLimit`` refuses a declared length over the limit before the route runs (tested in test_api); a
chunked body declares none, so the limit is counted while the route reads. A route that reads the
whole body (a snapshot upload, a JSON model, a dashboard form) then sees a disconnect, and its
``ClientDisconnect`` went up past the middleware to Starlette's error handler: a 500 with a traceback
in the log instead of the 413 a declared length gets.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from aarlab.server.auth import add_agent
from aarlab.server.db import session_scope
from conftest import TASK


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/api/v1/snapshots"),
        ("POST", f"/api/v1/tasks/{TASK}/dev/submissions"),
        ("POST", "/api/v1/forum/posts"),
        ("POST", "/ui/login"),
    ],
)
def test_an_oversized_chunked_body_is_a_413_not_a_500(app_client, method, url):
    with session_scope(app_client.app.state.aarlab.sessions) as s:
        token = add_agent(s, f"chunky-{method}-{url.count('/')}-{len(url)}", "agent")
    client = TestClient(app_client.app, raise_server_exceptions=False)
    limit = app_client.app.state.aarlab.settings.max_body_bytes
    r = client.request(
        method,
        url,
        content=_chunks(2 * limit),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert "bytes" in r.json()["detail"]


def test_a_raw_nul_byte_in_the_query_is_refused_like_a_percent_encoded_one(app_client):
    """An ASGI server may pass the query string's bytes as they came (no ``%00``): the same 422."""
    import asyncio

    with session_scope(app_client.app.state.aarlab.sessions) as s:
        token = add_agent(s, "raw-nul", "overseer")
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/flags",
        "raw_path": b"/api/v1/flags",
        "query_string": b"task=a\x00b",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("testclient", 1),
    }
    asyncio.run(app_client.app(scope, receive, send))
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [422]
