"""The dashboard (``/ui/``): TestClient checks of auth, CSRF, escaping and empty pages, and an end-to-end
run in headless Chromium (Playwright) over a populated world served by uvicorn, with screenshots."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_world import HOSTILE_CONFIG, SCRIPT_BODY, SCRIPT_TITLE, TASK, World, build
from fastapi.testclient import TestClient

from aarlab.server.app import create_app
from aarlab.server.auth import add_agent
from aarlab.server.dashboard.session import SESSION_COOKIE
from aarlab.server.db import session_scope
from aarlab.server.settings import ServerSettings

CHROMIUM = os.environ.get("AARLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ["/ui/leaderboard", "/ui/run", "/ui/forum", "/ui/agents"]


def _settings(data_dir: Path, tmp: Path, db_url: str | None = None) -> ServerSettings:
    return ServerSettings(
        data_dir=data_dir,
        db_url=db_url or f"sqlite:///{tmp / 'server.db'}",
        storage_url=str(tmp / "code"),
        dev_budget=500,
        rate_per_minute=1000,
        max_snapshot_bytes=64 * 1024,
        max_body_bytes=1024 * 1024,
    )


@pytest.fixture(autouse=True, scope="module")
def _no_autorefresh() -> Iterator[None]:
    """Pages would reload under the browser mid-test; the refresh test turns it back on itself."""
    old = os.environ.get("AARLAB_UI_REFRESH")
    os.environ["AARLAB_UI_REFRESH"] = "0"
    yield
    if old is None:
        os.environ.pop("AARLAB_UI_REFRESH", None)
    else:
        os.environ["AARLAB_UI_REFRESH"] = old


@pytest.fixture
def client(data_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(_settings(data_dir, tmp_path))
    with TestClient(app, follow_redirects=False) as tc:
        yield tc
    app.state.aarlab.engine.dispose()


@pytest.fixture
def world(client: TestClient) -> World:
    return build(client)


def login(client: TestClient, token: str) -> None:
    r = client.get("/ui/login", params={"token": token})
    assert r.status_code == 303 and r.headers["location"] == "/ui/leaderboard"


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


# --- TestClient: auth, CSRF, escaping, empty world ---------------------------------------------------


def test_pages_redirect_to_login_without_a_valid_cookie(client):
    for path in [*PAGES, "/ui/review", "/ui/forum/1"]:
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/login?reason=missing&next=%2Fui%2F"), path
    page = client.get(client.get("/ui/run?task=x").headers["location"])
    assert page.status_code == 200 and "Please log in" in page.text
    assert 'name="next" value="/ui/run?task=x"' in page.text
    client.cookies.set(SESSION_COOKIE, "abc.aar_not-a-token", path="/ui")
    r = client.get("/ui/agents")
    assert r.status_code == 303 and "reason=invalid" in r.headers["location"]
    assert SESSION_COOKIE in r.headers["set-cookie"]  # the bad cookie is cleared
    client.cookies.clear()
    r = client.get("/ui/login", params={"token": "aar_wrong"})
    assert r.status_code == 401 and "unknown or no longer valid" in r.text
    assert client.get("/ui/").headers["location"] == "/ui/leaderboard"


def test_login_form_sets_a_strict_httponly_cookie_and_logout_needs_csrf(client):
    with session_scope(client.app.state.aarlab.sessions) as s:
        token = add_agent(s, "ann", "agent")
    form = client.get("/ui/login?next=/ui/agents")
    login_csrf = re.search(r'name="login_csrf" value="([0-9a-f]+)"', form.text).group(1)
    r = client.post("/ui/login", data={"token": token, "login_csrf": "0" * 32, "next": "/ui/agents"})
    assert r.status_code == 303 and "reason=bad_form" in r.headers["location"]  # double-submit mismatch
    r = client.post("/ui/login", data={"token": "nope", "login_csrf": login_csrf, "next": "/ui/agents"})
    assert "reason=invalid" in r.headers["location"]
    r = client.post(
        "/ui/login", data={"token": token, "login_csrf": login_csrf, "next": "https://evil.example/"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/leaderboard"  # no open redirect
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
    assert token not in client.get("/ui/agents").text  # the token itself never appears in a page
    page = client.get("/ui/agents")
    assert page.status_code == 200 and 'id="whoami"' in page.text and ">ann<" in page.text
    assert "default-src 'none'; script-src 'self'" in page.headers["content-security-policy"]
    assert client.post("/ui/logout", data={"csrf": "x" * 64}).status_code == 403
    assert client.get("/ui/agents").status_code == 200  # still logged in
    r = client.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and "reason=logged_out" in r.headers["location"]
    assert client.get("/ui/agents").status_code == 303


def test_csrf_is_per_session(client):
    with session_scope(client.app.state.aarlab.sessions) as s:
        token = add_agent(s, "ann", "agent")
    login(client, token)
    first = csrf_of(client.get("/ui/agents").text)
    client.cookies.clear()
    login(client, token)
    assert csrf_of(client.get("/ui/agents").text) != first


def test_empty_world_pages_say_no_data_yet(client):
    with session_scope(client.app.state.aarlab.sessions) as s:
        token = add_agent(s, "boss", "overseer")
    login(client, token)
    texts = {p: client.get(p) for p in [*PAGES, "/ui/review"]}
    assert all(r.status_code == 200 for r in texts.values()), {p: r.status_code for p, r in texts.items()}
    assert "No verified results yet" in texts["/ui/leaderboard"].text
    run = texts["/ui/run"].text
    assert run.count("No data yet") == 2 and "<svg" not in run
    assert "No threads yet" in texts["/ui/forum"].text
    assert "No open flags" in texts["/ui/review"].text
    assert client.get("/ui/forum/5").status_code == 404
    assert client.get("/ui/leaderboard?task=nope").status_code == 404
    assert client.get("/ui/forum/0").status_code == 422
    static = client.get("/ui/static/dashboard.js")
    assert static.status_code == 200 and "data-refresh" in static.text
    assert client.get("/ui/static/..%2Fsession.py").status_code == 404


def test_forum_text_is_escaped_and_ground_truth_never_shown(client, world):
    login(client, world.tokens["bob"])
    listing = client.get("/ui/forum").text
    thread = client.get(f"/ui/forum/{world.posts['script']}").text
    for html in (listing, thread):
        assert "<script>alert" not in html and "</forum-data>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;/forum-data&gt;" in html
    assert "&lt;b&gt;real&lt;/b&gt;?" in thread and "<b>real" not in thread
    found = client.get("/ui/forum", params={"q": "noisy channel"}).text
    assert "EM on the noisy channel" in found and "Reweighting" not in found
    assert "1 thread matching" in found
    assert client.get("/ui/forum", params={"q": "\x00%"}).status_code == 200
    # the leaderboard shows verified numbers only: no labels, no claimed scores, no disqualified row
    board = client.get("/ui/leaderboard").text
    assert "label" not in board.lower() and "claimed" not in board
    assert "alert(3)" in board and HOSTILE_CONFIG not in board and "<script>alert" not in board
    assert f'data-result="{world.results["carol-dq"]}"' not in board
    assert f'data-result="{world.results["alice-2"]}"' in board


def test_review_queue_is_for_overseers_only_and_resolves_with_csrf(client, world):
    login(client, world.tokens["alice"])
    r = client.get("/ui/review")
    assert r.status_code == 403 and "overseers only" in r.text
    assert "/ui/review" not in client.get("/ui/leaderboard").text  # no nav link either
    assert client.post(f"/ui/review/{world.flags['bob']}/dismiss", data={"note": "x"}).status_code == 403
    client.cookies.clear()
    login(client, world.tokens["boss"])
    page = client.get("/ui/review").text
    assert (
        "&lt;b&gt;method ignores the teacher&lt;/b&gt;" in page
        and "&#34;pgr_permuted_labels&#34;: 1.29" in page
    )
    flag = world.flags["bob"]
    assert (
        client.post(f"/ui/review/{flag}/dismiss", data={"note": "fine", "csrf": "0" * 64}).status_code == 403
    )
    r = client.post(f"/ui/review/{flag}/dismiss", data={"note": "  ", "csrf": csrf_of(page)})
    assert r.headers["location"].startswith("/ui/review?error=note")
    r = client.post(f"/ui/review/{flag}/dismiss", data={"note": "bursty but honest", "csrf": csrf_of(page)})
    assert r.headers["location"] == f"/ui/review?done={flag}&action=dismiss"
    headers = {"Authorization": f"Bearer {world.tokens['boss']}"}
    api = client.get(f"/api/v1/flags/{flag}", headers=headers).json()
    assert (
        api["status"] == "dismissed" and api["resolved_by"] == "boss" and api["note"] == "bursty but honest"
    )
    r = client.post(f"/ui/review/{flag}/disqualify", data={"note": "again", "csrf": csrf_of(page)})
    assert r.headers["location"] == "/ui/review?error=gone"


def test_pages_render_on_both_databases(data_dir, tmp_path, db_url):
    app = create_app(_settings(data_dir, tmp_path, db_url))
    with TestClient(app, follow_redirects=False) as tc:
        world = build(tc)
        login(tc, world.tokens["boss"])
        for path in [*PAGES, "/ui/review", f"/ui/forum/{world.posts['script']}"]:
            assert tc.get(path).status_code == 200, path
        run = tc.get("/ui/run").text
        assert run.count("<svg") == 2
    app.state.aarlab.engine.dispose()


# --- result pages, leaderboard arrangement, exports, links -------------------------------------------


def test_result_page_shows_method_code_config_parent_diff_seeds_ablations_flags_transfer(client, world):
    login(client, world.tokens["boss"])
    rid, parent = world.results["alice-2"], world.results["alice-1"]
    page = client.get(f"/ui/results/{rid}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Confidence-weighted self-training (alice-2)" in html  # the method's name from method.py
    sha = re.search(r'id="snapshot-sha">([0-9a-f]{64})<', html)
    assert sha, "the full snapshot sha is shown"
    assert "alpha = 0.7" in html and "def run(ctx):" in html  # the code viewer
    assert "&#34;key&#34;: &#34;alice-2&#34;" in html  # config (escaped JSON)
    assert HOSTILE_CONFIG not in html and "<script>alert(3)" not in html
    assert f'href="/ui/results/{parent}">result #{parent}</a>' in html and "named by the submitter" in html
    diff = html[html.index('id="code-diff"') :]
    assert (
        '<span class="del">-    alpha = 0.5</span>' in diff
        and '<span class="add">+    alpha = 0.7</span>' in diff
    )
    assert (
        '<span class="del">-&#34;&#34;&#34;Confidence-weighted self-training (alice-1).&#34;&#34;&#34;</span>'
        in diff
    )
    cfg = html[html.index('id="config-diff"') :]
    assert "&#34;alice-1&#34;" in cfg and "&#34;alice-2&#34;" in cfg  # the changed config value, both sides
    seeds = html[html.index('id="per-seed"') : html.index('id="ablations"')]
    assert "1001" in seeds and "1002" in seeds and "0.770" in seeds and "0.790" in seeds  # sealed per seed
    abl = html[html.index('id="ablation-table"') :]
    assert "teacher_permuted" in abl and "drops" in abl
    transfer = html[html.index('id="transfer"') :]
    for suite in ("math-minilm", "code-minilm", "cities-smol"):
        assert suite in transfer
    assert "+0.140" in transfer and "verdict-transfers" in transfer
    assert 'id="rank-badge">rank ' in html
    # a flagged result: its flags with evidence, and it is pending review, not ranked
    flagged = client.get(f"/ui/results/{world.results['mallory-1']}").text
    assert 'id="pending-badge"' in flagged and 'id="rank-badge"' not in flagged
    assert "teacher-ablation" in flagged and "&#34;pgr_permuted_labels&#34;: 1.29" in flagged
    assert "&lt;b&gt;method ignores the teacher&lt;/b&gt;" in flagged
    # bob's per-agent (dev log) flag shows on his result's page
    bob = client.get(f"/ui/results/{world.results['bob-1']}").text
    assert "agent&#39;s dev log" in bob and "12 near-duplicate dev submissions" in bob
    assert "inferred: the earlier result" in bob  # no parent named: the nearest earlier result
    assert client.get("/ui/results/99999").status_code == 404
    assert "no result 99999" in client.get("/ui/results/99999").text


def test_result_pages_are_overseer_only_and_agents_get_no_links(client, world):
    login(client, world.tokens["alice"])
    r = client.get(f"/ui/results/{world.results['alice-2']}")
    assert r.status_code == 403 and "overseers only" in r.text
    assert "0.770" not in r.text and "per-seed" not in r.text  # no sealed per-seed figure leaks
    assert "/ui/results/" not in client.get("/ui/leaderboard").text
    assert "/ui/results/" not in client.get(f"/ui/forum/{world.posts['result']}").text


def test_result_links_from_leaderboard_forum_review_and_run(client, world):
    login(client, world.tokens["boss"])
    rid = world.results["alice-2"]
    link = f'href="/ui/results/{rid}"'
    assert link in client.get("/ui/leaderboard").text
    thread = client.get(f"/ui/forum/{world.posts['result']}").text
    assert (
        f'<a class="result-link" href="/ui/results/{rid}">result {rid}</a>' in thread
    )  # "submitted as result N"
    assert link in client.get("/ui/forum").text  # the thread list's snippet too
    assert link in client.get("/ui/run").text  # the transfer verdicts table
    review = client.get("/ui/review").text
    assert f'href="/ui/results/{world.results["mallory-1"]}"' in review


def _rows(html: str, table: str) -> list[int]:
    part = html[html.index(f'id="{table}"') :]
    part = part[: part.index("</table>")]
    return [int(x) for x in re.findall(r'data-result="(\d+)"', part)]


def test_leaderboard_ranks_apart_sorts_filters_and_exports(client, world):
    login(client, world.tokens["boss"])
    res = world.results
    html = client.get("/ui/leaderboard").text
    # mallory's result has an open critical flag: listed apart, not ranked, although its score is the best
    assert _rows(html, "leaderboard") == [res["alice-2"], res["bob-1"], res["carol-1"], res["alice-1"]]
    assert _rows(html, "pending") == [res["mallory-1"]] and "Pending review: not ranked" in html
    by_agent = client.get("/ui/leaderboard", params={"sort": "agent", "order": "desc"}).text
    assert _rows(by_agent, "leaderboard") == [res["carol-1"], res["bob-1"], res["alice-2"], res["alice-1"]]
    assert "sorted-desc" in by_agent
    by_pgr = client.get("/ui/leaderboard", params={"sort": "pgr", "order": "asc"}).text
    assert _rows(by_pgr, "leaderboard") == [res["alice-1"], res["carol-1"], res["bob-1"], res["alice-2"]]
    only_bob = client.get("/ui/leaderboard", params={"q": "bob"}).text
    assert _rows(only_bob, "leaderboard") == [res["bob-1"]] and 'id="pending"' not in only_bob
    no_flags = client.get("/ui/leaderboard", params={"flags": "none"}).text
    assert res["bob-1"] not in _rows(no_flags, "leaderboard")  # bob's agent has an open warn flag
    bad = client.get("/ui/leaderboard", params={"sort": "sealed_acc"})
    assert bad.status_code == 422 and "unknown sort" in bad.text and "use one of: rank, result" in bad.text
    assert bad.headers["content-type"].startswith("text/html")
    csv_r = client.get("/ui/leaderboard.csv")
    assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_r.headers["content-disposition"]
    import csv as csvmod
    import io

    records = list(csvmod.DictReader(io.StringIO(csv_r.text)))
    assert [int(r["result_id"]) for r in records] == [*_rows(html, "leaderboard"), res["mallory-1"]]
    assert records[0]["rank"] == "1" and records[-1]["rank"] == "pending review"
    assert records[0]["agent"] == "alice" and records[0]["sealed_acc"] == "0.78"
    assert records[0]["method"] == "Confidence-weighted self-training (alice-2)"
    exported = client.get("/ui/leaderboard.json", params={"sort": "pgr", "order": "desc"}).json()
    assert exported["task"] == TASK and [r["result_id"] for r in exported["pending_review"]] == [
        res["mallory-1"]
    ]
    assert exported["ranked"][0]["result_id"] == res["alice-2"]
    assert exported["ranked"][0]["config"]["note"] == HOSTILE_CONFIG  # JSON keeps the data as it is


def test_unknown_dashboard_paths_get_an_html_404(client, world):
    for logged_in in (False, True):
        if logged_in:
            login(client, world.tokens["boss"])
        r = client.get("/ui/no/such/page")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "There is no dashboard page /ui/no/such/page" in r.text and "Back to the leaderboard" in r.text


def test_the_dashboard_session_reads_the_json_api_but_cannot_write_with_it(client, world):
    assert client.get("/api/v1/leaderboard", params={"task": TASK}).status_code == 401
    login(client, world.tokens["boss"])
    board = client.get("/api/v1/leaderboard", params={"task": TASK})  # no bearer header: the cookie
    assert board.status_code == 200 and len(board.json()) == 4  # mallory's result waits for review
    pending = client.get("/api/v1/leaderboard/pending", params={"task": TASK}).json()
    assert [r["result_id"] for r in pending] == [world.results["mallory-1"]]
    assert pending[0]["top_severity"] == "critical" and pending[0]["sealed_acc"] == 0.92
    assert client.get(f"/api/v1/results/{world.results['alice-2']}/transfer").status_code == 200
    assert client.get("/api/v1/whoami").json() == {"name": "boss", "role": "overseer"}
    post = client.post("/api/v1/forum/posts", json={"kind": "insight", "title": "x", "body": "y"})
    assert post.status_code == 401  # writes need a bearer token (a cookie rides along cross-site)


def test_pending_review_endpoint_is_for_overseers(client, world):
    r = client.get(
        "/api/v1/leaderboard/pending",
        params={"task": TASK},
        headers={"Authorization": f"Bearer {world.tokens['alice']}"},
    )
    assert r.status_code == 403
    r = client.get(
        "/api/v1/leaderboard/pending",
        params={"task": TASK},
        headers={"Authorization": f"Bearer {world.tokens['boss']}"},
    )
    assert r.status_code == 200 and [x["result_id"] for x in r.json()] == [world.results["mallory-1"]]


def test_parent_id_must_name_a_result_of_the_same_task(client, world):
    headers = {"Authorization": f"Bearer {world.tokens['alice']}"}
    sha = client.get(f"/ui/results/{world.results['alice-1']}")  # (not logged in: a redirect, no data)
    assert sha.status_code == 303
    mine = client.get("/api/v1/results", headers=headers).json()[0]
    body = {"task": TASK, "snapshot_sha": mine["snapshot_sha"], "config": {}, "parent_id": 99999}
    r = client.post("/api/v1/results", json=body, headers=headers)
    assert r.status_code == 422 and "parent_id 99999 is not a result of task" in r.json()["detail"]
    r = client.post("/api/v1/results", json={**body, "parent_id": 0}, headers=headers)
    assert r.status_code == 422 and "parent_id" in r.json()["detail"]


def test_docs_and_redoc_are_served_without_a_cdn(client):
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200, path
        srcs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert srcs and all(s.startswith("/") for s in srcs), srcs  # every asset from this server
        assert "cdn" not in r.text.lower() and "fonts.googleapis" not in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        for src in srcs:
            if src.startswith("/docs/assets/"):
                asset = client.get(src)
                assert asset.status_code == 200 and len(asset.content) > 1000, src
    assert client.get("/docs/assets/../../etc/passwd").status_code == 404
    assert "available: swagger-ui-bundle.js" in client.get("/docs/assets/nope.js").json()["detail"]


# --- headless Chromium -------------------------------------------------------------------------------


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (CI installs Debian's chromium in .ci/run)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.lock)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    """The app with a populated world, served by uvicorn on a free port in a background thread."""
    import uvicorn

    tmp = tmp_path_factory.mktemp("dashboard-live")
    app = create_app(_settings(data_dir, tmp))
    with TestClient(app) as tc:
        world = build(tc)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(10)
    app.state.aarlab.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    default = Path(__file__).resolve().parents[2] / "out" / "screenshots"
    out = Path(os.environ.get("AARLAB_SCREENSHOTS") or default)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _page(browser, dialogs: list[str] | None = None):  # -> playwright Page
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    if dialogs is not None:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page


def _login(page, base: str, token: str, start: str = "/ui/leaderboard") -> None:
    page.goto(base + start)
    assert "/ui/login" in page.url
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(base + start)


def test_browser_leaderboard_to_result_page_code_diff_and_flags(browser, live, shots):
    """Leaderboard → result page → code → diff → flags, with a screenshot of each step."""
    base, world = live
    page = _page(browser)
    _login(page, base, world.tokens["boss"])
    page.screenshot(path=str(shots / "walk-1-leaderboard.png"), full_page=True)
    rid = world.results["alice-2"]
    page.click(f'#leaderboard tr[data-result="{rid}"] a.result-link')
    page.wait_for_url(base + f"/ui/results/{rid}")
    assert "Confidence-weighted self-training (alice-2)" in page.inner_text("#result-title")
    assert "rank 1 of 4" in page.inner_text("#rank-badge")
    page.screenshot(path=str(shots / "walk-2-result.png"))

    page.click("nav.toc a[href='#code']")
    code = page.locator("#code details.file").first
    assert code.get_attribute("open") is not None and "alpha = 0.7" in code.inner_text()
    assert code.locator("pre.code .ln").count() == 6  # one numbered line per source line
    code.scroll_into_view_if_needed()
    page.locator("#code").screenshot(path=str(shots / "walk-3-code.png"))

    page.click("nav.toc a[href='#parent']")
    parent = page.locator("#parent")
    assert f"result #{world.results['alice-1']}" in parent.locator("#parent-line").inner_text()
    assert parent.locator("pre.diff .add").filter(has_text="alpha = 0.7").count() == 1
    assert parent.locator("pre.diff .del").filter(has_text="alpha = 0.5").count() == 1
    colours = parent.locator("pre.diff .add").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colours == "rgb(230, 255, 236)"  # added lines are shaded green
    parent.screenshot(path=str(shots / "walk-4-diff.png"))
    page.locator("#seeds").screenshot(path=str(shots / "walk-5-seeds-ablations.png"))

    # the parent link leads to alice-1's page; back, then to the flagged result pending review
    page.goto(base + "/ui/leaderboard")
    mallory = world.results["mallory-1"]
    page.click(f'#pending tr[data-result="{mallory}"] a.result-link')
    page.wait_for_url(base + f"/ui/results/{mallory}")
    assert "pending review" in page.inner_text("#pending-badge")
    page.click("nav.toc a[href='#flags']")
    flag = page.locator("#flags article.flag").first
    assert "teacher-ablation" in flag.inner_text() and '"pgr_permuted_labels": 1.29' in flag.inner_text()
    page.locator("#flags").screenshot(path=str(shots / "walk-6-flags.png"))
    page.locator("#transfer").screenshot(path=str(shots / "walk-7-transfer-none.png"))
    page.goto(base + f"/ui/results/{rid}#transfer")
    assert page.locator("#transfer table.suites tbody tr").count() == 3
    page.locator("#transfer").screenshot(path=str(shots / "walk-8-transfer.png"))
    page.context.close()


def test_browser_docs_and_redoc_load_with_the_network_off(browser, live, shots):
    """/docs and /redoc render in Chromium when every request off this server is refused."""
    base, _ = live
    page = _page(browser)
    outside: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_local)
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    assert "aarlab evaluation server" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector("[data-path='/api/v1/leaderboard']")
    page.screenshot(path=str(shots / "docs-offline.png"))
    page.goto(base + "/redoc")
    page.wait_for_selector("h1:has-text('aarlab evaluation server')", timeout=20_000)
    page.screenshot(path=str(shots / "redoc-offline.png"))
    # nothing was even tried off the server (the pages' CSP stops ReDoc's CDN logo before any request)
    assert outside == [], outside
    page.context.close()


def test_browser_unknown_dashboard_path_is_an_html_page(browser, live):
    base, world = live
    page = _page(browser)
    _login(page, base, world.tokens["boss"])
    response = page.goto(base + "/ui/leaderbord")
    assert response is not None and response.status == 404
    assert "no dashboard page /ui/leaderbord" in page.inner_text("#error-message")
    page.click("text=Back to the leaderboard")
    page.wait_for_url(base + "/ui/leaderboard")
    page.context.close()


def test_browser_overseer_tour(browser, live, shots):
    base, world = live
    dialogs: list[str] = []
    page = _page(browser, dialogs)
    page.goto(base + "/ui/forum")
    assert "Please log in" in page.inner_text("#login-message")
    page.screenshot(path=str(shots / "login.png"), full_page=True)
    page.fill("#token", world.tokens["boss"])
    page.click("button[type=submit]")
    page.wait_for_url(base + "/ui/forum")
    assert page.inner_text("#whoami") == "signed in as boss" and page.inner_text("#role") == "overseer"

    # leaderboard: verified, non-disqualified rows in the API's order, with flags and transfer badges
    page.goto(base + "/ui/leaderboard")
    rows = page.locator("#leaderboard tbody tr")
    api = page.request.get(
        base + f"/api/v1/leaderboard?task={TASK}", headers={"Authorization": f"Bearer {world.tokens['boss']}"}
    ).json()
    assert len(api) == 4 and rows.count() == 4  # mallory's critical-flagged row is not ranked
    assert [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.result)")] == [
        r["result_id"] for r in api
    ]
    top = page.locator("#pending tbody tr")
    assert top.count() == 1 and "pending review" in top.inner_text()
    assert "mallory" in top.inner_text() and "critical" in top.locator(".flags").inner_text()
    alice = page.locator(f'tr[data-result="{world.results["alice-2"]}"]')
    assert alice.locator(".verdict-transfers").inner_text() == "transfers"
    bob = page.locator(f'tr[data-result="{world.results["bob-1"]}"]')
    assert bob.locator(".verdict-does-not-transfer").count() == 1 and "warn" in bob.inner_text()
    assert "0.780 [0.740, 0.820]" in alice.inner_text()
    page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)

    # forum: search, then open the hostile thread; nothing it contains runs
    page.goto(base + "/ui/forum")
    page.fill("input[name=q]", "forum-data")
    page.click("form.search button")
    page.wait_for_url(re.compile(r".*q=forum-data.*"))
    assert page.locator("#threads tbody tr").count() == 1
    page.screenshot(path=str(shots / "forum.png"), full_page=True)
    page.click("a.thread-link")
    page.wait_for_url(base + f"/ui/forum/{world.posts['script']}")
    page.wait_for_timeout(300)
    assert page.inner_text("#post-title") == SCRIPT_TITLE
    assert page.inner_text("#post-body") == SCRIPT_BODY
    assert page.locator("#post script, #post img, #comments b").count() == 0
    assert page.evaluate("document.scripts.length") == 1  # only our own dashboard.js
    page.locator("form[action$='/vote'] button").first.click()
    page.wait_for_url(base + f"/ui/forum/{world.posts['script']}")
    assert page.inner_text("#score") == "0"  # bob's −1 and boss's +1
    page.screenshot(path=str(shots / "thread.png"), full_page=True)

    page.goto(base + "/ui/agents")
    text = page.inner_text("#agents")
    assert "noisy-channel EM" in text and "1,250,000 / 84,000" in text and "$7.42" in text and "1.50" in text
    page.screenshot(path=str(shots / "agents.png"), full_page=True)

    # run page: both plots are real SVGs with legends / colour bar text
    page.goto(base + "/ui/run")
    progress, matrix = page.locator("#progress-plot svg"), page.locator("#transfer-plot svg")
    assert progress.count() == 1 and matrix.count() == 1
    assert progress.bounding_box()["width"] > 500 and matrix.bounding_box()["height"] > 150
    legend = progress.text_content() or ""
    assert "alice (0.550)" in legend and "mallory (1.310)" in legend, legend
    assert "carol (0.300)" in legend  # the disqualified 0.66 does not count
    assert "best verified PGR" in legend
    mtext = matrix.text_content()
    assert "ΔPGR (method − baseline)" in mtext and "+0.140" in mtext and "excluded" in mtext
    titles = matrix.locator("title").all_text_contents()
    assert any("verdict transfers" in t for t in titles) and any(
        "verdict does not transfer" in t for t in titles
    )
    page.screenshot(path=str(shots / "run.png"), full_page=True)

    # review queue: disqualify mallory's flagged result; it leaves the queue and the leaderboard
    page.goto(base + "/ui/review")
    flag = page.locator(f"#flag-{world.flags['mallory']}")
    assert '"pgr_permuted_labels": 1.29' in flag.locator("pre.evidence").inner_text()
    page.screenshot(path=str(shots / "review.png"), full_page=True)
    flag.locator("textarea").fill("score survives permuted teacher labels: not learning from the teacher")
    flag.locator("button.disqualify").click()
    page.wait_for_url(re.compile(r".*/ui/review\?done=.*"))
    assert "resolved" in page.inner_text("#review-notice")
    assert page.locator(f"#flag-{world.flags['mallory']}").count() == 0
    assert page.locator(f"#flag-{world.flags['bob']}").count() == 1
    assert "not learning from the teacher" in page.inner_text("#resolved")
    page.screenshot(path=str(shots / "review-after.png"), full_page=True)
    page.goto(base + "/ui/leaderboard")
    assert page.locator("#leaderboard tbody tr").count() == 4 and page.locator("#pending").count() == 0
    assert page.locator(f'tr[data-result="{world.results["mallory-1"]}"]').count() == 0
    assert dialogs == [], dialogs
    page.context.close()


def test_browser_agent_gets_403_on_the_review_queue(browser, live, shots):
    base, world = live
    page = _page(browser)
    _login(page, base, world.tokens["alice"], "/ui/agents")
    assert page.inner_text("#role") == "agent"
    assert page.locator("nav a[href='/ui/review']").count() == 0
    response = page.goto(base + "/ui/review")
    assert response is not None and response.status == 403
    assert "overseers only" in page.inner_text("#error-message")
    page.screenshot(path=str(shots / "review-403-agent.png"), full_page=True)
    page.context.close()


def test_browser_pages_refresh_themselves(browser, live, monkeypatch):
    base, world = live
    monkeypatch.setenv("AARLAB_UI_REFRESH", "1")
    page = _page(browser)
    _login(page, base, world.tokens["carol"], "/ui/forum")
    r = httpx.post(
        base + "/api/v1/forum/posts",
        headers={"Authorization": f"Bearer {world.tokens['bob']}"},
        json={"kind": "error", "title": "live update arrives", "body": "no reload clicked"},
    )
    assert r.status_code == 201
    page.wait_for_selector("text=live update arrives", timeout=8_000)
    page.context.close()


def test_the_worker_stores_seeds_per_seed_scores_and_ablations_for_the_result_page(client, world):
    """What verification established beyond the aggregates reaches the result page through the database."""
    from aarlab.oversight.ablations import AblationReport
    from aarlab.server.models import Result
    from aarlab.server.worker import JobOutcome, record_outcome
    from aarlab.verify.runner import VerifiedRun

    sessions = client.app.state.aarlab.sessions
    with session_scope(sessions) as s:
        src = s.get(Result, world.results["alice-1"])
        r = Result(
            agent_id=src.agent_id, task=TASK, snapshot_sha=src.snapshot_sha, config={"k": 1}, claimed={}
        )
        s.add(r)
        s.flush()
        rid = r.id
    per_seed = [
        {"seed": 2001, "dev_acc": 0.61, "sealed_acc": 0.655, "sandbox_seconds": 1.5},
        {"seed": 2002, "dev_acc": 0.63, "sealed_acc": 0.645, "sandbox_seconds": 1.7},
    ]
    run = VerifiedRun("verified", "", 0.62, (0.6, 0.64), 0.65, (0.63, 0.67), 0.6, 0.7, 0.5, (0.3, 0.7), 9.0)
    run.per_seed = per_seed
    run.ablation = AblationReport(
        method="m",
        seeds=[2001],
        accuracy=0.65,
        drops={},
        statuses={},
        min_drop=0.02,
        tolerance=0.01,
        verdict="uses-teacher-and-student",
        uses_teacher_declared=True,
    )
    with session_scope(sessions) as s:
        record_outcome(s, JobOutcome(rid, run))
    login(client, world.tokens["boss"])
    html = client.get(f"/ui/results/{rid}").text
    seeds = html[html.index('id="seeds"') : html.index('id="ablations"')]
    assert "2001, 2002" in seeds and "0.655" in seeds and "0.645" in seeds
    assert "Verdict <strong>uses-teacher-and-student</strong>" in html
