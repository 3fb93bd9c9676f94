"""Server fixtures: a data directory with a tiny labelled task, and an app per test on SQLite or on a
real PostgreSQL 15 that the session starts itself (initdb + pg_ctl on a temp dir and a free port).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aarlab.api.client import Client
from aarlab.server.app import create_app
from aarlab.server.auth import add_agent
from aarlab.server.datadir import init_task
from aarlab.server.db import session_scope
from aarlab.server.pgtemp import TempPostgres, missing_reason
from aarlab.server.settings import ServerSettings
from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.tasks.registry import split_by_entity

TASK = "tiny-cities"


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reference-format task directory (labels included) built from a small truth-cities pool."""
    from aarlab.testbed.tasks.truth_cities import build_truth_cities

    records = build_truth_cities(n_cities=170, n_capitals=20)
    out = tmp_path_factory.mktemp("ref") / TASK
    for name, part in zip(
        ("train_label", "train_unlabel", "test"), split_by_entity(records, (0.25, 0.4, 0.35), 0), strict=True
    ):
        write_jsonl(out / f"{name}.jsonl", part)
    return out


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, reference_dir: Path) -> Path:
    """The server's data directory with the tiny task materialised (secret created)."""
    d = tmp_path_factory.mktemp("server-data")
    init_task(d, str(reference_dir), name=TASK)
    return d


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TempPostgres]:
    """A throwaway PostgreSQL 15 cluster for the session (skips, saying why, if it cannot start here)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with TempPostgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    pg: TempPostgres = request.getfixturevalue("postgres_server")
    return pg.new_database()


@pytest.fixture
def settings(data_dir: Path, db_url: str, tmp_path: Path) -> ServerSettings:
    return ServerSettings(
        data_dir=data_dir,
        db_url=db_url,
        storage_url=str(tmp_path / "code"),
        dev_budget=500,
        rate_per_minute=1000,
        max_snapshot_bytes=64 * 1024,
        max_body_bytes=1024 * 1024,
    )


@pytest.fixture
def app_client(settings: ServerSettings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as tc:
        yield tc
    app.state.aarlab.engine.dispose()


AgentFactory = Callable[..., Client]


@pytest.fixture
def make_agent(app_client: TestClient) -> AgentFactory:
    """``make_agent(name, role="agent")`` registers a caller and returns a typed client for it."""

    def make(name: str, role: str = "agent") -> Client:
        with session_scope(app_client.app.state.aarlab.sessions) as s:  # type: ignore[attr-defined]
            token = add_agent(s, name, role)
        http = TestClient(app_client.app)
        return Client("http://testserver", token, http=http)

    return make


def wait_for(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {url} did not come up in {timeout} s")
