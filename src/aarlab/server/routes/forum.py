"""The forum: typed posts, comments, votes, search and pagination. Text is data: stored verbatim,
returned as JSON strings, and escaped when rendered as HTML."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from aarlab.api.schemas import CommentIn, CommentOut, PostIn, PostKind, PostOut, PostPage, VoteIn, VoteOut
from aarlab.server.deps import DB, Caller
from aarlab.server.models import Agent, Comment, Post, Vote

router = APIRouter(prefix="/api/v1/forum", tags=["forum"])
html_router = APIRouter(tags=["forum"])
NO_NUL = r"^[^\x00]*$"
PostId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _score(db: Session, post_id: int) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(Vote.value), 0)).where(Vote.post_id == post_id)) or 0)


def _post_out(db: Session, post: Post, author: str) -> PostOut:
    n_comments = db.scalar(select(func.count()).select_from(Comment).where(Comment.post_id == post.id)) or 0
    return PostOut(
        id=post.id,
        author=author,
        kind=post.kind,
        title=post.title,
        body=post.body,
        score=_score(db, post.id),
        n_comments=n_comments,
        created_at=post.created_at,
    )


def _get_post(db: Session, post_id: int) -> Post:
    post = db.get(Post, post_id)
    if post is None:
        raise HTTPException(404, f"no post {post_id}; list posts with GET /api/v1/forum/posts")
    return post


@router.post("/posts", status_code=201)
def create_post(body: PostIn, db: DB, caller: Caller) -> PostOut:
    post = Post(agent_id=caller.id, kind=body.kind, title=body.title, body=body.body)
    db.add(post)
    db.flush()
    return _post_out(db, post, caller.name)


def _query(kind: PostKind | None, q: str | None, author: str | None) -> Select[Post, str]:
    stmt = select(Post, Agent.name).join(Agent, Agent.id == Post.agent_id)
    if kind:
        stmt = stmt.where(Post.kind == kind)
    if author:
        stmt = stmt.where(Agent.name == author)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Post.title.ilike(pattern, escape="\\"), Post.body.ilike(pattern, escape="\\")))
    return stmt


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
    stmt = _query(kind, q, author)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    score = select(func.coalesce(func.sum(Vote.value), 0)).where(Vote.post_id == Post.id).scalar_subquery()
    n_comments = select(func.count(Comment.id)).where(Comment.post_id == Post.id).scalar_subquery()
    page = stmt.add_columns(score, n_comments).order_by(Post.id.desc()).limit(limit).offset(offset)
    items = [
        PostOut(
            id=p.id,
            author=a,
            kind=p.kind,
            title=p.title,
            body=p.body,
            score=int(sc),
            n_comments=int(nc),
            created_at=p.created_at,
        )
        for p, a, sc, nc in db.execute(page).all()
    ]
    return PostPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/posts/{post_id}")
def get_post(post_id: PostId, db: DB, _caller: Caller) -> PostOut:
    post = _get_post(db, post_id)
    author = db.scalar(select(Agent.name).where(Agent.id == post.agent_id)) or "?"
    return _post_out(db, post, author)


@router.post("/posts/{post_id}/comments", status_code=201)
def add_comment(post_id: PostId, body: CommentIn, db: DB, caller: Caller) -> CommentOut:
    _get_post(db, post_id)
    c = Comment(post_id=post_id, agent_id=caller.id, body=body.body)
    db.add(c)
    db.flush()
    return CommentOut(id=c.id, post_id=post_id, author=caller.name, body=c.body, created_at=c.created_at)


@router.get("/posts/{post_id}/comments")
def list_comments(post_id: PostId, db: DB, _caller: Caller) -> list[CommentOut]:
    _get_post(db, post_id)
    rows = db.execute(
        select(Comment, Agent.name)
        .join(Agent, Agent.id == Comment.agent_id)
        .where(Comment.post_id == post_id)
        .order_by(Comment.id)
    )
    return [
        CommentOut(id=c.id, post_id=post_id, author=a, body=c.body, created_at=c.created_at) for c, a in rows
    ]


@router.put("/posts/{post_id}/vote")
def vote(post_id: PostId, body: VoteIn, db: DB, caller: Caller) -> VoteOut:
    """One vote per agent and post; voting again replaces your vote."""
    _get_post(db, post_id)
    existing = db.scalar(select(Vote).where(Vote.post_id == post_id, Vote.agent_id == caller.id))
    if existing is None:
        db.add(Vote(post_id=post_id, agent_id=caller.id, value=body.value))
    else:
        existing.value = body.value
    db.flush()
    return VoteOut(post_id=post_id, score=_score(db, post_id))


@html_router.get("/forum", response_class=HTMLResponse)
def forum_html(db: DB, _caller: Caller) -> HTMLResponse:
    """The newest posts as HTML; every user-written string is escaped (posts are data, not markup)."""
    rows = db.execute(
        select(Post, Agent.name).join(Agent, Agent.id == Post.agent_id).order_by(Post.id.desc()).limit(50)
    ).all()
    items = "".join(
        f"<article><h2>[{html.escape(p.kind)}] {html.escape(p.title)}</h2>"
        f"<p class=author>{html.escape(a)}</p><pre>{html.escape(p.body)}</pre></article>"
        for p, a in rows
    )
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>aarlab forum</title>{items}")
