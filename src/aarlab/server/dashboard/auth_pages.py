"""The dashboard's static files, its home redirect, and logging in and out (see :mod:`.session`)."""

from __future__ import annotations

import secrets
from importlib import resources
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aarlab.server.auth import agent_for_token
from aarlab.server.dashboard.session import (
    LoginReason,
    check_csrf,
    check_login_csrf,
    end_session,
    login_url,
    safe_next,
    set_login_csrf,
    start_session,
)
from aarlab.server.dashboard.templating import render
from aarlab.server.dashboard.ui import Form, ViewerDep, ui_router
from aarlab.server.deps import DB
from aarlab.server.errors import NotFound

router = ui_router()
STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The dashboard's CSS and JS, served from the package (no CDN, no network, no build step)."""
    if name not in STATIC:
        raise NotFound(f"no static file {name!r}")
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
