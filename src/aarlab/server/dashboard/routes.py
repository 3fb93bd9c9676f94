"""The dashboard's pages under ``/ui/``, assembled from one module per area.

Every page calls the API's own query functions (:mod:`aarlab.server.queries`) with the logged-in agent
as the caller, so it shows exactly what the API shows to that role, and resolving a flag here is the
same write as ``POST /api/v1/flags/{id}/dismiss``. Rendering and security headers:
:mod:`.templating`; the route class and viewer dependencies: :mod:`.ui`.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRouter

from aarlab.server.dashboard import auth_pages, forum_pages, leaderboard_pages, review_pages, run_pages
from aarlab.server.dashboard.templating import error_page
from aarlab.server.dashboard.ui import ui_router

_fallback = ui_router()


@_fallback.get("/{path:path}", response_class=HTMLResponse)
def not_found(request: Request, path: str) -> HTMLResponse:
    """Any other dashboard path: an HTML 404 page (never raw JSON), with a way back."""
    return error_page(
        request,
        404,
        f"There is no dashboard page /ui/{path}. The pages are: leaderboard, run, forum, agents, "
        "review (overseers) and results/ID.",
    )


router = APIRouter()
# the catch-all goes last: routes match in the order they were added
for _pages in (auth_pages, leaderboard_pages, run_pages, forum_pages, review_pages):
    router.include_router(_pages.router)
router.include_router(_fallback)
