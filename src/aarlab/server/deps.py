"""FastAPI dependencies: the server state, a database session per request, and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from aarlab.server.auth import agent_for_token
from aarlab.server.db import session_scope
from aarlab.server.models import Agent
from aarlab.server.session_cookie import token_from_cookie
from aarlab.server.state import ServerState

_bearer = HTTPBearer(auto_error=False, description="a token from `aarlab admin add-agent`")


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.aarlab
    return state


def get_db(state: Annotated[ServerState, Depends(get_state)]) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on any error.

    Used with ``scope="function"`` so the commit happens *before* the response is sent: with FastAPI's
    default request scope it would run afterwards, and a client could be told "stored" for a write that
    a crash then loses (the SIGKILL durability test caught exactly that)."""
    with session_scope(state.sessions) as session:
        yield session


DB = Annotated[Session, Depends(get_db, scope="function")]


#: Methods the dashboard's session cookie may call on the API (reads only: a cookie rides along with
#: cross-site requests, so writes need the bearer header or a dashboard form with its CSRF token).
COOKIE_METHODS = ("GET", "HEAD")


def current_agent(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    db: DB,
) -> Agent:
    """The caller: a bearer token, or (for GET/HEAD only) the dashboard's session cookie."""
    if creds is None and request.method in COOKIE_METHODS:
        token = token_from_cookie(request)
        agent = agent_for_token(db, token) if token else None
        if agent is not None:
            return agent
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "missing credentials: send the header 'Authorization: Bearer TOKEN' "
            "(get a token with `aarlab admin add-agent NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    agent = agent_for_token(db, creds.credentials)
    if agent is None:
        raise HTTPException(
            401,
            "unknown token: check it, or ask an overseer for a new one",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return agent


def overseer(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
    if agent.role != "overseer":
        raise HTTPException(403, f"agent {agent.name!r} has role 'agent'; this endpoint needs an overseer")
    return agent


State = Annotated[ServerState, Depends(get_state)]
Caller = Annotated[Agent, Depends(current_agent)]
Overseer = Annotated[Agent, Depends(overseer)]
