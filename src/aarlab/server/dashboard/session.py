"""Cookie sessions and CSRF for the dashboard.

A browser cannot send a bearer header on a plain link, so after ``/ui/login`` validates a token the
dashboard keeps it in an HttpOnly, SameSite=Strict cookie (scripts cannot read it, other sites cannot
make the browser send it). Its path is ``/`` so that the JSON API the pages link to
(``/api/v1/leaderboard``, ``/api/v1/results/{id}/transfer`` ...) can be read with it too; the API accepts
the cookie for reads (GET/HEAD) only, so every write still needs a bearer token or a dashboard form
with its CSRF token. The cookie is ``NONCE.TOKEN``: the token is checked on
every request (a revoked token ends its sessions at once, and no session table is needed), and the
random nonce makes each login a new session with its own CSRF token,
``HMAC(token, "aarlab-ui-csrf:" + nonce)``, which every form POST must echo in a hidden field. The login
form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from aarlab.server.auth import agent_for_token
from aarlab.server.models import Agent
from aarlab.server.session_cookie import SESSION_COOKIE

LOGIN_CSRF_COOKIE = "aarlab_ui_login"
COOKIE_PATH = "/ui"
#: The session cookie also reaches the JSON API (reads only: see ``aarlab.server.deps``).
SESSION_PATH = "/"
#: Sessions last a working day; the token itself stays valid until an overseer removes it.
MAX_AGE_S = 12 * 3600
#: Forms are tiny (a token, a note, a vote); anything bigger is refused before it is parsed.
MAX_FORM_BYTES = 16 * 1024


class LoginReason(StrEnum):
    """Why the login page is shown: a fixed set, so no request text is ever reflected into the page."""

    missing = "missing"
    invalid = "invalid"
    logged_out = "logged_out"
    bad_form = "bad_form"

    @property
    def message(self) -> str:
        return {
            "missing": "Please log in with your aarlab token to see the dashboard.",
            "invalid": "That token is unknown or no longer valid; paste a current one.",
            "logged_out": "You are logged out.",
            "bad_form": "The login form expired; please try again.",
        }[self.value]


class LoginRequired(Exception):
    """Raised by a page that needs a session; the dashboard's route class turns it into a redirect."""

    def __init__(self, reason: LoginReason, next_path: str) -> None:
        super().__init__(reason.value)
        self.reason, self.next_path = reason, next_path


class CsrfError(Exception):
    """A form POST without the session's CSRF token (a forged cross-site request, or a stale page)."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the dashboard, and the CSRF token their forms must carry."""

    agent: Agent
    csrf: str

    @property
    def is_overseer(self) -> bool:
        return self.agent.role == "overseer"


def csrf_for(token: str, nonce: str) -> str:
    return hmac.new(token.encode(), ("aarlab-ui-csrf:" + nonce).encode(), hashlib.sha256).hexdigest()


def safe_next(path: str | None) -> str:
    """Only dashboard paths are followed after login (no open redirect to another site)."""
    if path and path.startswith("/ui/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/ui/leaderboard"


def login_url(reason: LoginReason, next_path: str | None = None) -> str:
    query = {"reason": reason.value}
    if next_path and safe_next(next_path) == next_path:
        query["next"] = next_path
    return "/ui/login?" + urlencode(query)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def start_session(response: Response, request: Request, token: str) -> None:
    """Set the session cookie for a token already checked by the caller."""
    response.set_cookie(
        SESSION_COOKIE,
        f"{secrets.token_hex(16)}.{token}",
        max_age=MAX_AGE_S,
        path=SESSION_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=SESSION_PATH, httponly=True, samesite="strict")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def set_login_csrf(response: Response, request: Request, value: str) -> None:
    """The login form's double-submit cookie: the POST must carry the same value in a hidden field."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def check_login_csrf(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), submitted.encode())


def viewer_from_cookie(request: Request, db: Session) -> Viewer:
    """The logged-in viewer, or ``LoginRequired`` (missing, malformed or unknown token)."""
    next_path = request.url.path if request.method == "GET" else None
    if request.method == "GET" and request.url.query:
        next_path = f"{request.url.path}?{request.url.query}"
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        raise LoginRequired(LoginReason.missing, next_path or "/ui/leaderboard")
    nonce, _, token = raw.partition(".")
    agent = agent_for_token(db, token) if nonce and token else None
    if agent is None:
        raise LoginRequired(LoginReason.invalid, next_path or "/ui/leaderboard")
    return Viewer(agent=agent, csrf=csrf_for(token, nonce))


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body as {field: first value} (parsed here: no multipart dependency needed)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items()}


def check_csrf(viewer: Viewer, form: dict[str, str]) -> None:
    if not hmac.compare_digest(viewer.csrf.encode(), form.get("csrf", "").encode()):
        raise CsrfError("missing or wrong CSRF token")
