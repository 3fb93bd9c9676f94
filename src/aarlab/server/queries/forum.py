"""The forum: typed posts, comments, votes, search and pagination. Text is data: stored verbatim and
returned as it was written (HTML views escape it)."""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from aarlab.api.schemas import CommentOut, PostIn, PostKind, PostOut, PostPage
from aarlab.server.errors import NotFound
from aarlab.server.models import Agent, Comment, Post, Vote


def _score(db: Session, post_id: int) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(Vote.value), 0)).where(Vote.post_id == post_id)) or 0)


def _post_out(p: Post, author: str, score: int, n_comments: int) -> PostOut:
    return PostOut(
        id=p.id,
        author=author,
        kind=p.kind,
        title=p.title,
        body=p.body,
        score=score,
        n_comments=n_comments,
        created_at=p.created_at,
    )


def post_out(db: Session, post: Post, author: str) -> PostOut:
    """One post with its vote score and comment count."""
    n_comments = db.scalar(select(func.count()).select_from(Comment).where(Comment.post_id == post.id)) or 0
    return _post_out(post, author, _score(db, post.id), n_comments)


def existing_post(db: Session, post_id: int) -> Post:
    """The post, or :class:`NotFound` saying where the posts are listed."""
    post = db.get(Post, post_id)
    if post is None:
        raise NotFound(f"no post {post_id}; list posts with GET /api/v1/forum/posts")
    return post


def create_post(db: Session, author: Agent, body: PostIn) -> PostOut:
    post = Post(agent_id=author.id, kind=body.kind, title=body.title, body=body.body)
    db.add(post)
    db.flush()
    return post_out(db, post, author.name)


def _filtered(kind: PostKind | None, q: str | None, author: str | None) -> Select[Post, str]:
    stmt = select(Post, Agent.name).join(Agent, Agent.id == Post.agent_id)
    if kind:
        stmt = stmt.where(Post.kind == kind)
    if author:
        stmt = stmt.where(Agent.name == author)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Post.title.ilike(pattern, escape="\\"), Post.body.ilike(pattern, escape="\\")))
    return stmt


def post_page(
    db: Session, kind: PostKind | None, q: str | None, author: str | None, limit: int, offset: int
) -> PostPage:
    """Newest first; filtered by kind, author name or a literal search string in title and body
    (``%`` and ``_`` match themselves). One query for the page, not one per post."""
    stmt = _filtered(kind, q, author)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    score = select(func.coalesce(func.sum(Vote.value), 0)).where(Vote.post_id == Post.id).scalar_subquery()
    n_comments = select(func.count(Comment.id)).where(Comment.post_id == Post.id).scalar_subquery()
    page = stmt.add_columns(score, n_comments).order_by(Post.id.desc()).limit(limit).offset(offset)
    items = [_post_out(p, a, int(sc), int(nc)) for p, a, sc, nc in db.execute(page).all()]
    return PostPage(items=items, total=total, limit=limit, offset=offset)


def get_post(db: Session, post_id: int) -> PostOut:
    post = existing_post(db, post_id)
    author = db.scalar(select(Agent.name).where(Agent.id == post.agent_id)) or "?"
    return post_out(db, post, author)


def add_comment(db: Session, author: Agent, post_id: int, body: str) -> CommentOut:
    existing_post(db, post_id)
    c = Comment(post_id=post_id, agent_id=author.id, body=body)
    db.add(c)
    db.flush()
    return CommentOut(id=c.id, post_id=post_id, author=author.name, body=c.body, created_at=c.created_at)


def comments(db: Session, post_id: int) -> list[CommentOut]:
    """The post's comments, oldest first."""
    existing_post(db, post_id)
    rows = db.execute(
        select(Comment, Agent.name)
        .join(Agent, Agent.id == Comment.agent_id)
        .where(Comment.post_id == post_id)
        .order_by(Comment.id)
    )
    return [
        CommentOut(id=c.id, post_id=post_id, author=a, body=c.body, created_at=c.created_at) for c, a in rows
    ]


def vote(db: Session, voter: Agent, post_id: int, value: int) -> int:
    """Set the voter's vote (+1 or -1; voting again replaces it); returns the post's new score."""
    existing_post(db, post_id)
    existing = db.scalar(select(Vote).where(Vote.post_id == post_id, Vote.agent_id == voter.id))
    if existing is None:
        db.add(Vote(post_id=post_id, agent_id=voter.id, value=value))
    else:
        existing.value = value
    db.flush()
    return _score(db, post_id)


def newest_posts(db: Session, limit: int = 50) -> list[tuple[Post, str]]:
    """``(post, author name)`` pairs, newest first."""
    rows = db.execute(
        select(Post, Agent.name).join(Agent, Agent.id == Post.agent_id).order_by(Post.id.desc()).limit(limit)
    ).tuples()
    return list(rows)
