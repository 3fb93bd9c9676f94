"""The dashboard's session cookie as the API reads it (``NONCE.TOKEN``; see
:mod:`aarlab.server.dashboard.session` for how it is set). Kept apart from the dashboard package so that
the API's dependencies can read it without importing the dashboard."""

from __future__ import annotations

from fastapi import Request

SESSION_COOKIE = "aarlab_ui"


def token_from_cookie(request: Request) -> str | None:
    """The token in the session cookie, or None when there is no well-formed session cookie."""
    raw = request.cookies.get(SESSION_COOKIE) or ""
    nonce, _, token = raw.partition(".")
    return token if nonce and token else None
