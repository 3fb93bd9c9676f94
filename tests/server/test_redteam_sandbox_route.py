"""Red team: ``GET /api/v1/tasks/{task}/sandbox`` (overseers only) with every credential an agent can
hold or forge, and path tricks in ``task``. Everything here is refused before a bundle is exported,
so the guard is cheap."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from aarlab.server.auth import add_agent
from aarlab.server.db import session_scope
from conftest import TASK


@pytest.fixture
def tokens(app_client):
    with session_scope(app_client.app.state.aarlab.sessions) as s:
        return {role: add_agent(s, f"route-{role}", role) for role in ("agent", "overseer")}


def test_agents_forged_and_missing_credentials_get_no_bundle(app_client, tokens):
    url = f"/api/v1/tasks/{TASK}/sandbox"
    fresh = TestClient(app_client.app)
    assert fresh.get(url).status_code == 401
    for header in ("Bearer aar_forged", "Basic " + tokens["overseer"], tokens["overseer"], "Bearer "):
        assert fresh.get(url, headers={"Authorization": header}).status_code == 401, header
    assert fresh.get(url, headers={"Authorization": f"Bearer {tokens['agent']}"}).status_code == 403
    # the dashboard's session cookie of an agent reaches GET routes of the API: still an agent
    ui = TestClient(app_client.app)
    assert ui.get("/ui/login", params={"token": tokens["agent"]}).status_code == 200
    assert ui.get(url).status_code == 403
    # an agent's cookie with an overseer's bearer header that is forged: the header decides
    assert ui.get(url, headers={"Authorization": "Bearer aar_forged"}).status_code == 401


@pytest.mark.parametrize("task", ["..", "%2e%2e", "..%2f..%2fsecret", f"{TASK}%2f..", "a..", "%00", "-x"])
def test_path_tricks_in_the_task_name_are_refused(app_client, tokens, task):
    r = app_client.get(
        f"/api/v1/tasks/{task}/sandbox", headers={"Authorization": f"Bearer {tokens['overseer']}"}
    )
    assert r.status_code in (404, 422), (task, r.status_code)
    assert r.headers["content-type"].startswith("application/json")
