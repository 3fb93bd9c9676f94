"""Typed HTTP client of the evaluation server (what agents and the CLI use).

Every method returns the server's pydantic response model; a 4xx/5xx raises :class:`ServerError`
carrying the status and the server's message (which says what to fix).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter

from aarlab.api.archive import pack_folder
from aarlab.api.schemas import (
    AgentOut,
    AgentToken,
    AgentUsageIn,
    CommentOut,
    DevFeedback,
    DevItems,
    DevSubmissionRow,
    FlagOut,
    FlagStatus,
    LeaderboardRow,
    PostKind,
    PostOut,
    PostPage,
    ResultOut,
    RevealOut,
    SnapshotOut,
    TaskInfo,
    TransferOut,
    VoteOut,
    Whoami,
)
from aarlab.testbed.errors import AarlabError

#: Times a request answered 503 with Retry-After (the server's database was busy) is sent again, and the
#: longest wait between two tries, seconds.
BUSY_RETRIES = 3
BUSY_WAIT_MAX_S = 5.0

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class ServerError(AarlabError):
    """The server refused a request; ``status`` is the HTTP status, the message is the server's."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.retry_after = status, message, retry_after


class ServerUnreachableError(AarlabError):
    """The server URL is malformed or nothing answers there."""


def check_server_url(url: str) -> str:
    """Return ``url`` if it is ``http(s)://host[:port][/path]``; else raise ServerUnreachableError
    saying what is wrong (no scheme, another scheme, no host, a bad port)."""
    parsed = urlsplit(url)
    if "://" not in url or parsed.scheme not in ("http", "https"):
        rest = url.split("://", 1)[1] if "://" in url else url
        why = "has no scheme" if "://" not in url else f"uses the scheme {parsed.scheme!r}"
        raise ServerUnreachableError(
            f"server URL {url!r} {why}; use http:// or https://, e.g. 'http://{rest}'"
        )
    try:
        port = parsed.port
    except ValueError:
        raise ServerUnreachableError(f"server URL {url!r} has a bad port; use 1-65535") from None
    if not parsed.hostname or port == 0:
        raise ServerUnreachableError(
            f"server URL {url!r} names no host (and port), e.g. http://127.0.0.1:8000"
        )
    return url


class Client:
    """A session with the server for one token. Use as a context manager or call ``close()``."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        """Talk to ``base_url``; ``http`` replaces the connection (e.g. FastAPI's in-process TestClient).

        Raises ServerUnreachableError for a URL that is not ``http(s)://host[:port]``.
        """
        if http is None:
            check_server_url(base_url)
        self.base_url = base_url
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._http.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        for attempt in range(BUSY_RETRIES + 1):
            try:
                resp = self._http.request(method, path, **kw)
            except httpx.TransportError as e:  # refused, DNS, timeout, TLS: say where and what to check
                raise ServerUnreachableError(
                    f"cannot reach the server at {self.base_url} ({type(e).__name__}: {e or 'no answer'}); "
                    "is `aarlab serve` running there, and are the host and port right?"
                ) from None
            # 503 with Retry-After: the server rolled the request back (its database was busy), so
            # sending it again is safe; a 503 without it (a broken task) is not retried
            ra = resp.headers.get("Retry-After", "")
            if resp.status_code != 503 or not ra.isdigit() or attempt == BUSY_RETRIES:
                break
            time.sleep(min(float(ra), BUSY_WAIT_MAX_S))
        if resp.status_code >= 400:
            try:
                detail = str(resp.json().get("detail", resp.text))
            except ValueError:
                detail = resp.text
            ra = resp.headers.get("Retry-After")
            raise ServerError(resp.status_code, detail, float(ra) if ra else None)
        return resp

    def _get(self, model: type[M], path: str, **kw: Any) -> M:
        return model.model_validate(self._request("GET", path, **kw).json())

    def _list(self, item: type[T], method: str, path: str, **kw: Any) -> list[T]:
        return TypeAdapter(list[item]).validate_python(self._request(method, path, **kw).json())  # type: ignore[valid-type]

    def whoami(self) -> Whoami:
        return self._get(Whoami, "/api/v1/whoami")

    def tasks(self) -> list[TaskInfo]:
        return self._list(TaskInfo, "GET", "/api/v1/tasks")

    def dev_items(self, task: str) -> DevItems:
        return self._get(DevItems, f"/api/v1/tasks/{task}/dev")

    def submit_dev(self, task: str, predictions: dict[str, float]) -> DevFeedback:
        resp = self._request(
            "POST", f"/api/v1/tasks/{task}/dev/submissions", json={"predictions": predictions}
        )
        return DevFeedback.model_validate(resp.json())

    def my_dev_submissions(self, task: str) -> list[DevSubmissionRow]:
        return self._list(DevSubmissionRow, "GET", f"/api/v1/tasks/{task}/dev/submissions")

    def put_snapshot(self, data: bytes) -> SnapshotOut:
        resp = self._request(
            "PUT", "/api/v1/snapshots", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        return SnapshotOut.model_validate(resp.json())

    def put_folder(self, folder: Path) -> SnapshotOut:
        return self.put_snapshot(pack_folder(folder))

    def get_snapshot(self, sha: str) -> bytes:
        return self._request("GET", f"/api/v1/snapshots/{sha}").content

    def sandbox_bundle(self, task: str, *, timeout: float = 3600.0) -> bytes:
        """The task's label-free sandbox bundle as tar.gz bytes (overseers only; unpack it with
        :func:`aarlab.api.archive.extract_bundle`). The server may encode the task's texts first (minutes
        on a cold feature cache), hence the long ``timeout`` in seconds. Raises ServerError (403: not an
        overseer; 404: unknown task)."""
        return self._request("GET", f"/api/v1/tasks/{task}/sandbox", timeout=timeout).content

    def submit_result(
        self,
        task: str,
        snapshot_sha: str,
        config: dict[str, Any] | None = None,
        claimed: dict[str, float] | None = None,
        parent_id: int | None = None,
    ) -> ResultOut:
        """Queue ``snapshot_sha`` + ``config`` for verification; ``parent_id``: the result it started from."""
        body: dict[str, Any] = {
            "task": task,
            "snapshot_sha": snapshot_sha,
            "config": config or {},
            "claimed": claimed or {},
        }
        if parent_id is not None:
            body["parent_id"] = parent_id
        return ResultOut.model_validate(self._request("POST", "/api/v1/results", json=body).json())

    def my_results(self) -> list[ResultOut]:
        return self._list(ResultOut, "GET", "/api/v1/results")

    def reveal(self, task: str) -> RevealOut:
        """The final reveal of a task's private board (overseers only)."""
        return RevealOut.model_validate(self._request("POST", f"/api/v1/tasks/{task}/reveal").json())

    def leaderboard(self, task: str) -> list[LeaderboardRow]:
        return self._list(LeaderboardRow, "GET", "/api/v1/leaderboard", params={"task": task})

    def pending_review(self, task: str) -> list[LeaderboardRow]:
        """Verified results held back from the leaderboard by an open critical flag (overseers only)."""
        return self._list(LeaderboardRow, "GET", "/api/v1/leaderboard/pending", params={"task": task})

    def flags(self, status: FlagStatus | None = "open", task: str | None = None) -> list[FlagOut]:
        """The review queue (overseers only; agents get 403). ``status=None`` lists every flag."""
        params = {"status": status or "all"} | ({"task": task} if task else {})
        return self._list(FlagOut, "GET", "/api/v1/flags", params=params)

    def flag(self, flag_id: int) -> FlagOut:
        return self._get(FlagOut, f"/api/v1/flags/{flag_id}")

    def dismiss_flag(self, flag_id: int, note: str) -> FlagOut:
        """Close a flag as a false alarm; the note says why."""
        resp = self._request("POST", f"/api/v1/flags/{flag_id}/dismiss", json={"note": note})
        return FlagOut.model_validate(resp.json())

    def disqualify_flag(self, flag_id: int, note: str) -> FlagOut:
        """Disqualify what the flag concerns: it leaves the leaderboard, with the note as the reason."""
        resp = self._request("POST", f"/api/v1/flags/{flag_id}/disqualify", json={"note": note})
        return FlagOut.model_validate(resp.json())

    def post(self, kind: PostKind, title: str, body: str) -> PostOut:
        resp = self._request("POST", "/api/v1/forum/posts", json={"kind": kind, "title": title, "body": body})
        return PostOut.model_validate(resp.json())

    def posts(
        self,
        *,
        kind: PostKind | None = None,
        q: str | None = None,
        author: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> PostPage:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        params.update({k: v for k, v in {"kind": kind, "q": q, "author": author}.items() if v is not None})
        return self._get(PostPage, "/api/v1/forum/posts", params=params)

    def get_post(self, post_id: int) -> PostOut:
        return self._get(PostOut, f"/api/v1/forum/posts/{post_id}")

    def comment(self, post_id: int, body: str) -> CommentOut:
        resp = self._request("POST", f"/api/v1/forum/posts/{post_id}/comments", json={"body": body})
        return CommentOut.model_validate(resp.json())

    def comments(self, post_id: int) -> list[CommentOut]:
        return self._list(CommentOut, "GET", f"/api/v1/forum/posts/{post_id}/comments")

    def vote(self, post_id: int, value: int) -> VoteOut:
        resp = self._request("PUT", f"/api/v1/forum/posts/{post_id}/vote", json={"value": value})
        return VoteOut.model_validate(resp.json())

    def agents(self) -> list[AgentOut]:
        """Every agent with its direction, status and recorded usage."""
        return self._list(AgentOut, "GET", "/api/v1/agents")

    def register_agent(self, name: str, role: str = "agent") -> AgentToken:
        """Create a caller and get its token, shown only once (overseers only)."""
        resp = self._request("POST", "/api/v1/agents", json={"name": name, "role": role})
        return AgentToken.model_validate(resp.json())

    def put_usage(self, name: str, **fields: Any) -> AgentOut:
        """Record an agent's usage totals (overseers only); fields as in :class:`AgentUsageIn`."""
        body = AgentUsageIn(**fields).model_dump(exclude_none=True)
        resp = self._request("PUT", f"/api/v1/agents/{name}/usage", json=body)
        return AgentOut.model_validate(resp.json())

    def request_transfer(self, result_id: int) -> TransferOut:
        """Queue the transfer gate for a verified result (overseers only)."""
        resp = self._request("POST", f"/api/v1/results/{result_id}/transfer")
        return TransferOut.model_validate(resp.json())

    def transfers(self, result_id: int) -> list[TransferOut]:
        """Every transfer-gate run for a result, newest last."""
        return self._list(TransferOut, "GET", f"/api/v1/results/{result_id}/transfer")
