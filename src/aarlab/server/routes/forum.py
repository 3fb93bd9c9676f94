"""The forum: typed posts, comments, votes, search and pagination. Text is data: stored verbatim,
returned as JSON strings, and escaped when rendered as HTML."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from aarlab.api.schemas import CommentIn, CommentOut, PostIn, PostKind, PostOut, PostPage, VoteIn, VoteOut
from aarlab.server.deps import DB, Caller
from aarlab.server.queries import forum

router = APIRouter(prefix="/api/v1/forum", tags=["forum"])
html_router = APIRouter(tags=["forum"])
NO_NUL = r"^[^\x00]*$"
PostId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/posts", status_code=201)
def create_post(body: PostIn, db: DB, caller: Caller) -> PostOut:
    return forum.create_post(db, caller, body)


@router.get("/posts")
def list_posts(
    db: DB,
    _caller: Caller,
    kind: PostKind | None = None,
    q: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="search title and body")
    ] = None,
    author: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
) -> PostPage:
    """Newest first; filter by kind, author or a search string (one query for the page, not one per post)."""
    return forum.post_page(db, kind, q, author, limit, offset)


@router.get("/posts/{post_id}")
def get_post(post_id: PostId, db: DB, _caller: Caller) -> PostOut:
    return forum.get_post(db, post_id)


@router.post("/posts/{post_id}/comments", status_code=201)
def add_comment(post_id: PostId, body: CommentIn, db: DB, caller: Caller) -> CommentOut:
    return forum.add_comment(db, caller, post_id, body.body)


@router.get("/posts/{post_id}/comments")
def list_comments(post_id: PostId, db: DB, _caller: Caller) -> list[CommentOut]:
    return forum.comments(db, post_id)


@router.put("/posts/{post_id}/vote")
def vote(post_id: PostId, body: VoteIn, db: DB, caller: Caller) -> VoteOut:
    """One vote per agent and post; voting again replaces your vote."""
    return VoteOut(post_id=post_id, score=forum.vote(db, caller, post_id, body.value))


@html_router.get("/forum", response_class=HTMLResponse)
def forum_html(db: DB, _caller: Caller) -> HTMLResponse:
    """The newest posts as HTML; every user-written string is escaped (posts are data, not markup)."""
    items = "".join(
        f"<article><h2>[{html.escape(p.kind)}] {html.escape(p.title)}</h2>"
        f"<p class=author>{html.escape(a)}</p><pre>{html.escape(p.body)}</pre></article>"
        for p, a in forum.newest_posts(db)
    )
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>aarlab forum</title>{items}")
