"""The dashboard's pages under ``/ui/``: server-rendered HTML over the same route functions as the API.

Every page calls the API's own functions (``leaderboard``, ``list_posts``, ``list_flags``,
``dismiss_flag`` ...) with the logged-in agent as the caller, so it shows exactly what the API shows to
that role, and resolving a flag here is the same write as ``POST /api/v1/flags/{id}/dismiss``. User text is
escaped by Jinja's autoescape, and a strict Content-Security-Policy (scripts from ``/ui/static`` only)
makes any escaping slip inert as well.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, cast, get_args
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, APIRouter
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape
from pydantic import ValidationError
from sqlalchemy import select

from aarlab.api.schemas import PostKind, ResolveIn, VoteIn
from aarlab.server.auth import agent_for_token
from aarlab.server.dashboard import leaderboard_view as lv
from aarlab.server.dashboard import plots, queries, result_view
from aarlab.server.dashboard.session import (
    CsrfError,
    LoginReason,
    LoginRequired,
    Viewer,
    check_csrf,
    check_login_csrf,
    end_session,
    login_url,
    read_form,
    safe_next,
    set_login_csrf,
    start_session,
    viewer_from_cookie,
)
from aarlab.server.deps import DB, State
from aarlab.server.models import ReviewFlag
from aarlab.server.private import sees_private
from aarlab.server.ranking import split_ranked
from aarlab.server.routes import agents as agents_api
from aarlab.server.routes import flags as flags_api
from aarlab.server.routes import forum as forum_api
from aarlab.server.routes import results as results_api

#: Scripts only from our own static route; inline styles are needed by matplotlib's SVG attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
POST_KINDS: tuple[str, ...] = get_args(PostKind)
PAGE_SIZE = 20

_env = Environment(loader=PackageLoader("aarlab.server.dashboard", "templates"), autoescape=True)
templates = Jinja2Templates(env=_env)


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(lo: float | None, hi: float | None, digits: int = 3) -> str:
    return "" if lo is None or hi is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _ts(t: datetime | None) -> str:
    if t is None:
        return "–"
    t = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _slug(text: str | None) -> str:
    """A CSS-class-safe form of a verdict or status ("does not transfer" -> "does-not-transfer")."""
    return "".join(c if c.isalnum() else "-" for c in (text or "none").lower())


#: "result 3", "result #3", "results 3" in user text (forum posts say "submitted as result 3").
_RESULT_REF = re.compile(r"\b(results?)(\s+#?)(\d{1,10})\b", re.IGNORECASE)


def link_results(text: str | None, enabled: bool = True) -> Markup:
    """Escape ``text`` and turn each "result N" into a link to the result's page (``enabled``: only for
    viewers who may open result pages)."""
    escaped = str(escape(text or ""))
    if not enabled:
        return Markup(escaped)
    return Markup(
        _RESULT_REF.sub(
            lambda m: (
                f'<a class="result-link" href="/ui/results/{int(m.group(3))}">'
                f"{m.group(1)}{m.group(2)}{m.group(3)}</a>"
            ),
            escaped,
        )
    )


_env.filters.update(num=_num, ci=_ci, ts=_ts, slug=_slug, link_results=link_results)


def refresh_seconds() -> int:
    """Auto-refresh period of the pages (``AARLAB_UI_REFRESH``, seconds; 0 turns it off)."""
    try:
        return max(0, int(os.environ.get("AARLAB_UI_REFRESH", "10")))
    except ValueError:
        return 10


def _harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    base = {"viewer": viewer, "refresh": refresh_seconds(), "now": _ts(datetime.now(UTC)), "active": ""}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    titles = {403: "Forbidden", 404: "Not found", 409: "Conflict", 422: "Invalid request"}
    return render(
        request,
        "error.html",
        status_code,
        title=titles.get(status_code, "Error"),
        status=status_code,
        message=message,
        refresh=0,
    )


class UIRoute(APIRoute):
    """Turns the dashboard's exceptions into pages (login redirect, 403/404 pages) instead of JSON,
    and adds the security headers to every response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as e:
                response = RedirectResponse(login_url(e.reason, e.next_path), status_code=303)
                if e.reason is LoginReason.invalid:
                    end_session(response)
            except CsrfError:
                response = error_page(
                    request,
                    403,
                    "This form did not carry this session's CSRF token (a stale page, or a request from "
                    "another site). Reload the page and try again.",
                )
            except HTTPException as e:
                response = error_page(request, e.status_code, str(e.detail))
            except RequestValidationError as e:
                fields = ", ".join(".".join(str(x) for x in err.get("loc", ())) for err in e.errors())
                response = error_page(request, 422, f"invalid request parameters: {fields}")
            return _harden(response)

        return wrapped


router = APIRouter(prefix="/ui", tags=["dashboard"], route_class=UIRoute, include_in_schema=False)


def get_viewer(request: Request, db: DB) -> Viewer:
    viewer = viewer_from_cookie(request, db)
    request.state.viewer = viewer
    return viewer


def get_overseer(request: Request, viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    if not viewer.is_overseer:
        raise HTTPException(
            403, f"{viewer.agent.name!r} has role 'agent': the review queue is for overseers only."
        )
    return viewer


async def get_form(request: Request) -> dict[str, str]:
    return await read_form(request)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
OverseerDep = Annotated[Viewer, Depends(get_overseer)]
Form = Annotated[dict[str, str], Depends(get_form)]


def _task_or_default(state: State, task: str | None) -> tuple[list[str], str | None]:
    names = state.task_names()
    if task is None:
        return names, (names[0] if names else None)
    if task not in names:
        raise HTTPException(404, f"unknown task {task!r}; available: {', '.join(names) or 'none yet'}")
    return names, task


# --- static, login, logout -------------------------------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The dashboard's CSS and JS, served from the package (no CDN, no network, no build step)."""
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    body = resources.files("aarlab.server.dashboard").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})


@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/ui/leaderboard", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    db: DB,
    token: Annotated[str | None, Query(max_length=500)] = None,
    reason: LoginReason | None = None,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """The login form; ``?token=T`` logs in straight away (the clickable URL the demo prints)."""
    if token is not None:
        if agent_for_token(db, token) is not None:
            response: Response = RedirectResponse(safe_next(next), status_code=303)
            start_session(response, request, token)
            return response
        reason = LoginReason.invalid
    login_csrf = secrets.token_hex(16)
    status = 401 if reason is LoginReason.invalid and token is not None else 200
    page = render(
        request,
        "login.html",
        status,
        title="Log in",
        message=reason.message if reason else None,
        bad=reason in (LoginReason.invalid, LoginReason.bad_form),
        next=safe_next(next),
        refresh=0,
        login_csrf=login_csrf,
    )
    set_login_csrf(page, request, login_csrf)
    return page


@router.post("/login", response_class=RedirectResponse)
def login_submit(request: Request, db: DB, form: Form) -> RedirectResponse:
    """Check the pasted token; on success start a session and go where the viewer was heading."""
    nxt = safe_next(form.get("next"))
    if not check_login_csrf(request, form.get("login_csrf", "")):
        return RedirectResponse(login_url(LoginReason.bad_form, nxt), status_code=303)
    token = form.get("token", "").strip()
    if not token or agent_for_token(db, token) is None:
        return RedirectResponse(login_url(LoginReason.invalid, nxt), status_code=303)
    response = RedirectResponse(nxt, status_code=303)
    start_session(response, request, token)
    return response


@router.post("/logout", response_class=RedirectResponse)
def logout(viewer: ViewerDep, form: Form) -> RedirectResponse:
    check_csrf(viewer, form)
    response = RedirectResponse(login_url(LoginReason.logged_out), status_code=303)
    end_session(response)
    return response


# --- pages -------------------------------------------------------------------------------------------


def _board(
    state: State, db: DB, viewer: Viewer, task: str | None, sort: str, order: str, q: str, flags: str
) -> tuple[list[str], str | None, list[lv.BoardRow], list[lv.BoardRow], int]:
    names, current = _task_or_default(state, task)
    # overseers also get the results held back by an open critical flag (listed apart, never ranked)
    rows = results_api.board_rows(db, viewer.agent, current, pending=viewer.is_overseer) if current else []
    methods = {r.result_id: result_view.method_for(state.store, r.snapshot_sha or "") for r in rows}
    try:
        ranked, pending = lv.arrange(rows, methods, sort=sort, order=order, q=q, flags=flags)
    except lv.BadQuery as e:
        raise HTTPException(422, str(e)) from None
    return names, current, ranked, pending, len(rows)


Sort = Annotated[str, Query(max_length=20)]
Order = Annotated[str, Query(max_length=4)]
Filter = Annotated[str, Query(max_length=200)]
Flags = Annotated[str, Query(max_length=10)]


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(
    request: Request,
    state: State,
    db: DB,
    viewer: ViewerDep,
    task: Annotated[str | None, Query()] = None,
    sort: Sort = "rank",
    order: Order = "asc",
    q: Filter = "",
    flags: Flags = "any",
) -> HTMLResponse:
    """Verified, non-disqualified rows per task (``GET /api/v1/leaderboard``): ranked rows, and rows with
    an open critical flag listed apart as pending review; sortable, filterable, exportable."""
    q = q.replace("\x00", "").strip()
    names, current, ranked, pending, total = _board(state, db, viewer, task, sort, order, q, flags)
    base = {"task": current or "", "q": q, "flags": flags}

    def sort_link(key: str) -> str:
        nxt = "desc" if sort == key and order == "asc" else "asc"
        return "/ui/leaderboard?" + urlencode({**base, "sort": key, "order": nxt})

    export = urlencode({**base, "sort": sort, "order": order})
    return render(
        request,
        "leaderboard.html",
        title="Leaderboard",
        active="leaderboard",
        tasks=names,
        task=current,
        rows=ranked,
        pending=pending,
        total=total,
        page="leaderboard",
        sort=sort,
        order=order,
        q=q,
        flags=flags,
        flag_filters=lv.FLAG_FILTERS,
        sort_links={k: sort_link(k) for k in lv.SORTS},
        csv_url="/ui/leaderboard.csv?" + export,
        json_url="/ui/leaderboard.json?" + export,
        api_url="/api/v1/leaderboard?" + urlencode({"task": current or ""}),
        overseer=viewer.is_overseer,
    )


@router.get("/leaderboard.csv")
def leaderboard_csv(
    state: State,
    db: DB,
    viewer: ViewerDep,
    task: Annotated[str | None, Query()] = None,
    sort: Sort = "rank",
    order: Order = "asc",
    q: Filter = "",
    flags: Flags = "any",
) -> Response:
    """The leaderboard as CSV (ranked rows, then rows pending review), with the page's sort and filter."""
    _, current, ranked, pending, _ = _board(state, db, viewer, task, sort, order, q.strip(), flags)
    name = f"leaderboard-{current or 'none'}.csv"
    return Response(
        lv.to_csv(ranked + pending),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/leaderboard.json")
def leaderboard_json(
    state: State,
    db: DB,
    viewer: ViewerDep,
    task: Annotated[str | None, Query()] = None,
    sort: Sort = "rank",
    order: Order = "asc",
    q: Filter = "",
    flags: Flags = "any",
) -> Response:
    """The leaderboard as JSON: ``{"task", "exported_at", "ranked": [...], "pending_review": [...]}``."""
    _, current, ranked, pending, _ = _board(state, db, viewer, task, sort, order, q.strip(), flags)
    body = lv.to_json(current or "", ranked, pending, datetime.now(UTC))
    name = f"leaderboard-{current or 'none'}.json"
    return Response(
        json.dumps(body, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


ResultIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/results/{result_id}", response_class=HTMLResponse)
def result_page(
    request: Request, result_id: ResultIdPath, state: State, db: DB, viewer: OverseerDep
) -> HTMLResponse:
    """One result: method and code, config, parent and diff, seeds and per-seed scores, ablations, flags
    with evidence and transfer verdicts per suite (overseers only: it shows sealed figures)."""
    view = result_view.result_view(db, state.store, result_id)
    if view is None:
        raise HTTPException(404, f"no result {result_id}; the leaderboard links every result it shows")
    board = results_api.board_rows(db, viewer.agent, view.result.task, pending=True)
    ranked, pending = split_ranked(board)
    rank = next((k for k, r in enumerate(ranked, 1) if r.result_id == result_id), None)
    is_pending = any(r.result_id == result_id for r in pending)
    return render(
        request,
        "result.html",
        title=f"Result {result_id}",
        active="leaderboard",
        v=view,
        rank=rank,
        pending=is_pending,
        board_size=len(ranked),
    )


@router.get("/run", response_class=HTMLResponse)
def run_page(
    request: Request, state: State, db: DB, viewer: ViewerDep, task: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    """Watch a run: best verified score over time per agent, and the transfer matrix."""
    names, current = _task_or_default(state, task)
    progress_svg = matrix_svg = None
    matrix = queries.Matrix(suites=[], rows=[])
    counts: dict[str, dict[str, int]] = {}
    metric = "pgr"
    if current:
        prog = queries.progress(db, current, private=not sees_private(viewer.agent, db, current))
        metric = prog.metric
        matrix = queries.transfer_matrix(db, current)
        progress_svg = plots.progress_svg(prog)
        matrix_svg = plots.matrix_svg(matrix)
        if viewer.is_overseer:
            counts = queries.run_counts(db, current)
    return render(
        request,
        "run.html",
        title="Run",
        active="run",
        tasks=names,
        task=current,
        page="run",
        progress_svg=Markup(progress_svg) if progress_svg else None,
        matrix_svg=Markup(matrix_svg) if matrix_svg else None,
        metric_title=plots.METRIC_TITLES[metric],
        matrix=matrix,
        counts=counts,
    )


@router.get("/forum", response_class=HTMLResponse)
def forum_page(
    request: Request,
    db: DB,
    viewer: ViewerDep,
    q: Annotated[str | None, Query()] = None,
    kind: Annotated[str | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """Threads, newest first, with a search box (the API's search: title and body, literal text)."""
    q = (q or "").replace("\x00", "").strip()[:200] or None
    kind_filter = cast(PostKind, kind) if kind in POST_KINDS else None
    result = forum_api.list_posts(
        db=db,
        _caller=viewer.agent,
        kind=kind_filter,
        q=q,
        author=None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )

    def link(p: int) -> str:
        params = {k: v for k, v in (("q", q), ("kind", kind_filter), ("page", str(p))) if v}
        return "/ui/forum?" + urlencode(params)

    return render(
        request,
        "forum.html",
        title="Forum",
        active="forum",
        posts=result.items,
        total=result.total,
        q=q or "",
        kind=kind_filter or "",
        kinds=POST_KINDS,
        page=page,
        prev_url=link(page - 1) if page > 1 else None,
        next_url=link(page + 1) if page * PAGE_SIZE < result.total else None,
    )


PostId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/forum/{post_id}", response_class=HTMLResponse)
def thread_page(request: Request, post_id: PostId, db: DB, viewer: ViewerDep) -> HTMLResponse:
    post = forum_api.get_post(post_id=post_id, db=db, _caller=viewer.agent)
    comments = forum_api.list_comments(post_id=post_id, db=db, _caller=viewer.agent)
    return render(
        request, "thread.html", title=f"Thread #{post.id}", active="forum", post=post, comments=comments
    )


@router.post("/forum/{post_id}/vote", response_class=RedirectResponse)
def vote(post_id: PostId, db: DB, viewer: ViewerDep, form: Form) -> RedirectResponse:
    """Vote on a thread as the logged-in agent (the API's ``PUT .../vote``: voting again replaces)."""
    check_csrf(viewer, form)
    if form.get("value") not in ("1", "-1"):
        raise HTTPException(422, "a vote is +1 or -1")
    body = VoteIn(value=1 if form["value"] == "1" else -1)
    forum_api.vote(post_id=post_id, body=body, db=db, caller=viewer.agent)
    return RedirectResponse(f"/ui/forum/{post_id}", status_code=303)


@router.get("/agents", response_class=HTMLResponse)
def agents_page(request: Request, db: DB, viewer: ViewerDep) -> HTMLResponse:
    """Every agent with its direction, backend, status and recorded usage (``GET /api/v1/agents``)."""
    rows = agents_api.list_agents(db=db, _caller=viewer.agent)
    totals = {
        "tokens_in": sum(a.tokens_in for a in rows),
        "tokens_out": sum(a.tokens_out for a in rows),
        "dollars": sum(a.dollars for a in rows),
        "hours": sum(a.hours for a in rows),
        "submissions": sum(a.submissions for a in rows),
        "results": sum(a.results for a in rows),
        "restarts": sum(a.restarts for a in rows),
    }
    return render(request, "agents.html", title="Agents", active="agents", agents=rows, totals=totals)


class Action(StrEnum):
    dismiss = "dismiss"
    disqualify = "disqualify"


#: Outcome messages after a resolution (a fixed set: nothing from the request is reflected).
REVIEW_ERRORS = {
    "note": "Write a note (1 to 5000 characters) saying why; it is kept with the flag and the result.",
    "gone": "That flag is no longer open (someone resolved it first) or does not exist.",
}


@router.get("/review", response_class=HTMLResponse)
def review_page(
    request: Request,
    db: DB,
    viewer: OverseerDep,
    done: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    action: Action | None = None,
    error: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """Open flags with their evidence, and dismiss/disqualify forms (overseers only; agents get 403)."""
    open_flags = flags_api.list_flags(db=db, _overseer=viewer.agent, status="open", task=None, limit=200)
    recent = [
        flags_api.flag_out(db, f)
        for f in db.scalars(
            select(ReviewFlag)
            .where(ReviewFlag.status != "open")
            .order_by(ReviewFlag.resolved_at.desc())
            .limit(20)
        )
    ]
    evidence = {
        f.id: json.dumps(f.evidence, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        for f in open_flags
    }
    notice = None
    if done is not None and action is not None:
        notice = (
            f"Flag {done} {'dismissed' if action is Action.dismiss else 'resolved: result(s) disqualified'}."
        )
    return render(
        request,
        "review.html",
        title="Review queue",
        active="review",
        flags=open_flags,
        evidence=evidence,
        recent=recent,
        notice=notice,
        error=REVIEW_ERRORS.get(error or ""),
    )


@router.post("/review/{flag_id}/{action}", response_class=RedirectResponse)
def resolve(
    flag_id: flags_api.FlagId, action: Action, db: DB, viewer: OverseerDep, form: Form
) -> RedirectResponse:
    """The same write as ``POST /api/v1/flags/{id}/dismiss|disqualify``, from a form."""
    check_csrf(viewer, form)
    try:
        body = ResolveIn(note=form.get("note", "").strip())
    except ValidationError:
        return RedirectResponse(f"/ui/review?error=note#flag-{flag_id}", status_code=303)
    fn = flags_api.dismiss_flag if action is Action.dismiss else flags_api.disqualify_flag
    try:
        fn(flag_id=flag_id, body=body, db=db, overseer=viewer.agent)
    except HTTPException as e:
        if e.status_code in (404, 409):
            return RedirectResponse("/ui/review?error=gone", status_code=303)
        raise
    return RedirectResponse(f"/ui/review?done={flag_id}&action={action.value}", status_code=303)


@router.get("/{path:path}", response_class=HTMLResponse)
def not_found(request: Request, path: str) -> HTMLResponse:
    """Any other dashboard path: an HTML 404 page (never raw JSON), with a way back."""
    return error_page(
        request,
        404,
        f"There is no dashboard page /ui/{path}. The pages are: leaderboard, run, forum, agents, "
        "review (overseers) and results/ID.",
    )
