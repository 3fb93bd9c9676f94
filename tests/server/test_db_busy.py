"""A write that cannot get SQLite's lock in time is answered 503 with Retry-After, stores nothing, and
the typed client sends it again once the lock is free (it was a 500 with a traceback: seen under 4 agents
and a verification worker, ``INSERT INTO snapshots``: "database is locked")."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aarlab.api.client import Client, ServerError
from aarlab.server.app import create_app
from aarlab.server.auth import add_agent
from aarlab.server.db import session_scope
from aarlab.server.settings import ServerSettings


@pytest.fixture
def world(data_dir: Path, tmp_path: Path) -> Iterator[tuple[TestClient, str, Path]]:
    db = tmp_path / "server.db"
    settings = ServerSettings(
        data_dir=data_dir, db_url=f"sqlite:///{db}", storage_url=str(tmp_path / "code"), db_busy_timeout_s=0.2
    )
    app = create_app(settings)
    with TestClient(app) as tc:
        with session_scope(app.state.aarlab.sessions) as s:
            token = add_agent(s, "a1", "agent")
        yield tc, token, db
    app.state.aarlab.engine.dispose()


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another writer: an open write transaction on the server's database (readers still read)."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def post_count(tc: TestClient, token: str) -> int:
    r = tc.get("/api/v1/forum/posts?limit=100", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    return int(r.json()["total"])


def test_a_write_past_the_busy_timeout_is_a_503_with_retry_after_and_stores_nothing(world) -> None:
    tc, token, db = world
    before = post_count(tc, token)
    lock = hold_write_lock(db)
    try:
        r = tc.post(
            "/api/v1/forum/posts",
            json={"kind": "insight", "title": "t", "body": "b"},
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    detail = r.json()["detail"]
    assert "nothing was stored" in detail and "Retry" in detail
    assert "locked" not in detail and "sqlite" not in detail.lower()  # the driver's text stays in the log
    assert post_count(tc, token) == before


def test_the_client_sends_the_write_again_once_the_lock_is_free(world, caplog) -> None:
    tc, token, db = world
    before = post_count(tc, token)
    lock = hold_write_lock(db)
    release = threading.Timer(0.5, lambda: (lock.execute("ROLLBACK"), lock.close()))
    release.start()
    try:
        out = Client("http://testserver", token, http=TestClient(tc.app)).post("insight", "t", "b")
    finally:
        release.join()
    assert out.title == "t"
    assert post_count(tc, token) == before + 1  # stored once, not once per try
    # the lock outlived the 0.2 s busy timeout: the first try was answered 503, the client tried again
    assert any("database error on POST /api/v1/forum/posts" in r.getMessage() for r in caplog.records)


def test_a_503_without_retry_after_is_not_retried(world, monkeypatch) -> None:
    tc, token, _db = world
    calls = []
    http = TestClient(tc.app)
    real = http.request

    def once_broken(method, url, **kw):
        calls.append(url)
        resp = real(method, url, **kw)
        resp.status_code = 503  # as a broken task answers: no Retry-After
        return resp

    monkeypatch.setattr(http, "request", once_broken)
    with pytest.raises(ServerError) as e:
        Client("http://testserver", token, http=http).whoami()
    assert e.value.status == 503 and len(calls) == 1


def test_a_failure_at_commit_is_not_retried_since_it_may_have_been_stored(world, monkeypatch) -> None:
    """A COMMIT that succeeded but whose acknowledgement was lost: answering "nothing was stored" and
    inviting a retry stored a dev submission twice and charged the budget twice (a red-team helper)."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    tc, token, _db = world
    before = post_count(tc, token)
    real, armed = Session.commit, [True]

    def lost_ack(self):
        real(self)
        if armed[0]:
            armed[0] = False
            raise OperationalError(None, None, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(Session, "commit", lost_ack)
    with pytest.raises(ServerError) as e:
        Client("http://testserver", token, http=TestClient(tc.app)).post("insight", "t", "b")
    monkeypatch.setattr(Session, "commit", real)
    assert e.value.status == 503 and e.value.retry_after is None
    assert "may have been stored" in e.value.message
    assert post_count(tc, token) == before + 1  # stored once: the client did not send it again
