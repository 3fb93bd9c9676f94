"""The dashboard's routing: a route class that answers with pages (never JSON), the router factory
every page module uses, and the dependencies for the logged-in viewer and posted forms."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute, APIRouter

from aarlab.server.dashboard.session import (
    CsrfError,
    LoginReason,
    LoginRequired,
    Viewer,
    end_session,
    login_url,
    read_form,
    viewer_from_cookie,
)
from aarlab.server.dashboard.templating import error_page, harden
from aarlab.server.deps import DB
from aarlab.server.errors import NotFound
from aarlab.server.state import ServerState


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
            return harden(response)

        return wrapped


def ui_router() -> APIRouter:
    """A router for dashboard pages under ``/ui`` (pages, not JSON; left out of the OpenAPI schema)."""
    return APIRouter(prefix="/ui", tags=["dashboard"], route_class=UIRoute, include_in_schema=False)


def get_viewer(request: Request, db: DB) -> Viewer:
    """The logged-in viewer (kept on ``request.state`` for the page chrome), else a login redirect."""
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


def task_or_default(state: ServerState, task: str | None) -> tuple[list[str], str | None]:
    """``(every task name, the chosen one)``: ``task``, or the first task when none is asked for;
    :class:`NotFound` for a task this server does not have."""
    names = state.task_names()
    if task is None:
        return names, (names[0] if names else None)
    if task not in names:
        raise NotFound(f"unknown task {task!r}; available: {', '.join(names) or 'none yet'}")
    return names, task
