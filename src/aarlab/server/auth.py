"""Bearer tokens: high-entropy random tokens shown once; only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.server.models import Agent
from aarlab.testbed.errors import AarlabError

Role = Literal["agent", "overseer"]
ROLES: tuple[Role, ...] = ("agent", "overseer")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_agent(session: Session, name: str, role: str = "agent") -> str:
    """Register a caller and return its token (the only time it is ever visible)."""
    if role not in ROLES:
        raise AarlabError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    if not name or len(name) > 100:
        raise AarlabError("an agent name must have 1 to 100 characters")
    if session.scalar(select(Agent).where(Agent.name == name)) is not None:
        raise AarlabError(f"agent {name!r} already exists; pick another name")
    token = "aar_" + secrets.token_urlsafe(32)
    session.add(Agent(name=name, role=role, token_hash=hash_token(token)))
    session.flush()
    return token


def agent_for_token(session: Session, token: str) -> Agent | None:
    return session.scalar(select(Agent).where(Agent.token_hash == hash_token(token)))
