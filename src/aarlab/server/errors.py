"""The errors the server's query and service modules raise: each is an HTTP status with a message that
says what to do, so a route only parses, calls and returns.

They subclass FastAPI's ``HTTPException``: the API answers them as ``{"detail": message}`` with the
status (and ``Retry-After`` for :class:`RateLimited`), and the dashboard turns them into its error page.
"""

from __future__ import annotations

import math

from fastapi import HTTPException


class StatusError(HTTPException):
    """An HTTP ``status`` with a message; the subclasses name the statuses the server answers with."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(self.status, detail)


class NotFound(StatusError):
    """404: no such task, result, flag, post, agent or snapshot."""

    status = 404


class Forbidden(StatusError):
    """403: the caller may not do this (a used-up budget, a role that is not enough)."""

    status = 403


class Conflict(StatusError):
    """409: the request clashes with what is stored (a name taken, a flag already resolved)."""

    status = 409


class Unprocessable(StatusError):
    """422: the body parsed but its content cannot be used (unknown ids, a missing snapshot)."""

    status = 422


class TooLarge(StatusError):
    """413: the body is over a size limit."""

    status = 413


class RateLimited(HTTPException):
    """429 with ``Retry-After``: ``wait_s`` seconds (rounded up, at least 1) until the next try."""

    def __init__(self, detail: str, wait_s: float) -> None:
        self.wait_s = max(1, math.ceil(wait_s))
        super().__init__(
            429, f"{detail}; retry in {self.wait_s} s", headers={"Retry-After": str(self.wait_s)}
        )
