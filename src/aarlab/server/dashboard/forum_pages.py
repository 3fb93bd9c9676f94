"""The forum pages: threads with search and paging, one thread with its comments, and voting."""

from __future__ import annotations

from typing import Annotated, cast, get_args
from urllib.parse import urlencode

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from aarlab.api.schemas import PostKind
from aarlab.server.dashboard.session import check_csrf
from aarlab.server.dashboard.templating import render
from aarlab.server.dashboard.ui import Form, ViewerDep, ui_router
from aarlab.server.deps import DB
from aarlab.server.errors import Unprocessable
from aarlab.server.queries import forum

router = ui_router()
POST_KINDS: tuple[str, ...] = get_args(PostKind)
PAGE_SIZE = 20
PostId = Annotated[int, Path(ge=1, le=2**31 - 1)]


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
    result = forum.post_page(db, kind_filter, q, None, PAGE_SIZE, (page - 1) * PAGE_SIZE)

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


@router.get("/forum/{post_id}", response_class=HTMLResponse)
def thread_page(request: Request, post_id: PostId, db: DB, viewer: ViewerDep) -> HTMLResponse:
    post = forum.get_post(db, post_id)
    comments = forum.comments(db, post_id)
    return render(
        request, "thread.html", title=f"Thread #{post.id}", active="forum", post=post, comments=comments
    )


@router.post("/forum/{post_id}/vote", response_class=RedirectResponse)
def vote(post_id: PostId, db: DB, viewer: ViewerDep, form: Form) -> RedirectResponse:
    """Vote on a thread as the logged-in agent (the API's ``PUT .../vote``: voting again replaces)."""
    check_csrf(viewer, form)
    if form.get("value") not in ("1", "-1"):
        raise Unprocessable("a vote is +1 or -1")
    forum.vote(db, viewer.agent, post_id, 1 if form["value"] == "1" else -1)
    return RedirectResponse(f"/ui/forum/{post_id}", status_code=303)
