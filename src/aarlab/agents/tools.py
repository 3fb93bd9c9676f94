"""The researcher's tools: one :class:`Toolbox` shared by the LLM loop and the MCP server.

Each tool is a :class:`~aarlab.agents.llm.base.ToolSpec` (name, description, JSON schema) plus a handler
that returns text for the model. Handlers never raise: server refusals (4xx with the server's message),
bad arguments, timeouts and path escapes come back as error text, so a model can read what went wrong
and try something else.

The tools' names, descriptions and argument schemas are in ``tool_specs.py`` (pydantic models). What
reaches the model is marked by origin (``tool_text.py``: ``<server-response>``, ``<tool-output>``,
``<forum-data>``, untrusted text defused). Every call is appended to ``<state_dir>/tools.jsonl`` outside
the sandbox (``tool_log.py``); calls that name a hidden path or go after secrets in the environment are
logged with ``"suspicious": true``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aarlab.agents.llm.base import ToolSpec
from aarlab.agents.sandbox_fs import opened_beneath, place_tree, read_beneath
from aarlab.agents.shell import ConfinedRunner, RunOutcome, ShellLimits, truncate
from aarlab.agents.tool_log import ToolLog, suspicious_reasons
from aarlab.agents.tool_specs import TOOL_DEFS
from aarlab.agents.tool_text import (
    FORUM_NOTICE,
    forum_block,
    neutralise,
    render_leaderboard,
    render_post,
    render_posts,
    server_block,
    tool_output_block,
)
from aarlab.api.archive import UnsafeArchiveError, pack_folder, safe_extract
from aarlab.api.client import Client, ServerError
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.tasks.registry import ground_truth_locations

__all__ = [
    "FORUM_NOTICE",
    "Tool",
    "ToolError",
    "ToolOutput",
    "Toolbox",
    "forum_block",
    "neutralise",
    "server_block",
]

#: Default cap on the text of one tool result (characters).
MAX_OUTPUT = 8000
LOG_NAME = "tools.jsonl"
NOTEBOOK_NAME = "notebook.md"
MAX_NOTEBOOK = 100_000


class ToolError(Exception):
    """A problem the model can fix (bad argument, path escape); becomes error text, never propagates."""


@dataclass(frozen=True)
class ToolOutput:
    """A tool's answer as the model sees it."""

    text: str
    is_error: bool = False


@dataclass(frozen=True)
class Tool:
    """A tool offered to the model: its spec and the handler that answers a call."""

    spec: ToolSpec
    handler: Callable[[dict[str, Any]], ToolOutput]
    needs_sandbox: bool = False


class Toolbox:
    """The tools of one agent session against one server.

    ``sandbox`` is where the agent's files live (the label-free bundle, method folders); shell tools and
    every path argument are confined to it. Without a sandbox the file and shell tools are not offered.
    ``hidden`` are paths sandboxed commands must never see (the server's data dir, the database's folder);
    the ground-truth packages of the built-in tasks are added to them.
    ``state_dir`` (outside the sandbox) holds the notebook and the tool log. ``max_submissions`` caps the
    dev submissions made through this toolbox (None: only the server's own budget applies).
    """

    def __init__(
        self,
        client: Client,
        *,
        sandbox: Path | None,
        state_dir: Path,
        task: str | None = None,
        hidden: Sequence[str | Path] = (),
        limits: ShellLimits | None = None,
        max_output: int = MAX_OUTPUT,
        max_submissions: int | None = None,
    ) -> None:
        self.client = client
        self.sandbox = Path(sandbox).resolve() if sandbox is not None else None
        self.state_dir = Path(state_dir).resolve()
        if self.sandbox is not None and self.state_dir.is_relative_to(self.sandbox):
            raise AarlabError(f"state_dir {self.state_dir} must lie outside the sandbox {self.sandbox}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.task = task
        self.max_output = max_output
        self.max_submissions = max_submissions
        self.submissions = 0
        self.refused_submissions = 0
        self.results: list[int] = []
        self.calls = 0
        # the places holding built-in tasks' ground truth are always hidden, whatever the caller passed
        hidden = [*hidden, *map(str, ground_truth_locations())]
        self.runner = (
            ConfinedRunner(self.sandbox, self.state_dir, hidden, limits=limits)
            if self.sandbox is not None
            else None
        )
        if self.sandbox is not None:  # only once the runner accepted where it lies
            self.sandbox.mkdir(parents=True, exist_ok=True)
        self.hidden = tuple(str(p) for p in (self.runner.hidden if self.runner else hidden))
        self.log_path = self.state_dir / LOG_NAME
        self.log = ToolLog(self.log_path)
        self.notebook_path = self.state_dir / NOTEBOOK_NAME
        self._last_extra: dict[str, Any] = {}
        tools = self._build()
        self.tools: dict[str, Tool] = {
            t.spec.name: t for t in tools if not (t.needs_sandbox and self.sandbox is None)
        }

    @property
    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self.tools.values()]

    @property
    def isolation(self) -> str:
        return self.runner.isolation if self.runner else "no sandbox: shell tools disabled"

    # -- dispatch -----------------------------------------------------------------------------------------
    def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        """Run one tool; every outcome (including our own bugs) becomes text, and the call is logged."""
        t0 = time.monotonic()
        self.calls += 1
        self._last_extra = {}
        tool = self.tools.get(name)
        if tool is None:
            out = ToolOutput(f"unknown tool {name!r}; available: {', '.join(self.tools)}", True)
        elif "_unparsed" in arguments:
            out = ToolOutput(f"the arguments of {name} were not valid JSON: {arguments['_unparsed']!r}", True)
        else:
            try:
                out = tool.handler(arguments)
            except ToolError as e:
                out = ToolOutput(f"error: {e}", True)
            except ServerError as e:
                out = ToolOutput(server_block(f"the server refused ({e.status}): {e.message}"), True)
            except (AarlabError, UnsafeArchiveError, OSError, ValueError, KeyError, TypeError) as e:
                out = ToolOutput(f"error: {type(e).__name__}: {e}", True)
            except Exception as e:  # a handler bug must not kill the agent's loop
                out = ToolOutput(f"internal error in tool {name}: {type(e).__name__}: {e}", True)
        if len(out.text) > self.max_output:
            out = ToolOutput(truncate(out.text, self.max_output), out.is_error)
        self.log.write(
            name,
            arguments,
            is_error=out.is_error,
            output_chars=len(out.text),
            seconds=time.monotonic() - t0,
            reasons=self.is_suspicious(name, arguments, out.text),
            extra=self._last_extra,
        )
        return out

    def is_suspicious(self, name: str, arguments: dict[str, Any], output: str = "") -> list[str]:
        """Why a call looks like an attempt at the server's data or secrets (empty: it does not)."""
        return suspicious_reasons(self.hidden, name, arguments, output)

    # -- helpers ------------------------------------------------------------------------------------------
    def resolve(self, path: str) -> Path:
        """A model-given path inside the sandbox (relative to it, or absolute within it); else ToolError."""
        if self.sandbox is None:
            raise ToolError("this session has no sandbox; file paths are not available")
        if not isinstance(path, str) or not path.strip():
            raise ToolError("a path must be a non-empty string")
        raw = Path(path)
        target = (raw if raw.is_absolute() else self.sandbox / raw).resolve()
        if target != self.sandbox and not target.is_relative_to(self.sandbox):
            raise ToolError(
                f"path {path!r} escapes the sandbox {self.sandbox}; use a path inside it (relative paths "
                "are relative to the sandbox)"
            )
        return target

    def _pack(self, folder: Path) -> bytes:
        """A snapshot of ``folder`` (checked by :meth:`resolve`), opened from the sandbox without
        following a link the agent's commands may have put in its path since the check."""
        assert self.sandbox is not None
        with opened_beneath(self.sandbox, folder.relative_to(self.sandbox)) as fd:
            return pack_folder(Path("."), dir_fd=fd)

    def _task(self, args: dict[str, Any]) -> str:
        task = args.get("task") or self.task
        if not task:
            raise ToolError("no task given and this session has none; pass task=<name>")
        return str(task)

    def _run(self, argv: list[str], args: dict[str, Any], stdin: str | None = None) -> ToolOutput:
        assert self.runner is not None
        timeout = args.get("timeout_s")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ToolError("timeout_s must be a positive number of seconds")
        res: RunOutcome = self.runner.run(argv, stdin=stdin, timeout_s=timeout)
        self._last_extra = {
            "exit_code": res.exit_code,
            "timed_out": res.timed_out,
            "isolation": "namespaces" if self.runner.namespaces else "refusal",
            **({"refused": True} if res.refused else {}),
        }
        status = "timeout" if res.timed_out else f"exit {res.exit_code}"
        body = truncate(res.output, self.max_output - 200)
        return ToolOutput(tool_output_block(status, res.seconds, body), res.exit_code != 0 or res.timed_out)

    # -- tools ---------------------------------------------------------------------------------------------
    def _build(self) -> list[Tool]:
        cap = self.runner.limits.max_wall_s if self.runner else ShellLimits().max_wall_s
        handlers: dict[str, Callable[[dict[str, Any]], ToolOutput]] = {
            "run_shell": self._run_shell,
            "run_python": self._run_python,
            "submit_dev": self._submit_dev,
            "submit_result": self._submit_result,
            "forum_read": self._forum_read,
            "forum_post": self._forum_post,
            "forum_comment": self._forum_comment,
            "forum_vote": self._forum_vote,
            "leaderboard": self._leaderboard,
            "code_get": self._code_get,
            "code_put": self._code_put,
            "notebook_read": self._notebook_read,
            "notebook_write": self._notebook_write,
        }
        return [Tool(d.spec(cap), handlers[d.name], d.needs_sandbox) for d in TOOL_DEFS]

    def _run_shell(self, args: dict[str, Any]) -> ToolOutput:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("command must be a non-empty string")
        return self._run(["/bin/bash", "-c", command], args)

    def _run_python(self, args: dict[str, Any]) -> ToolOutput:
        code = args.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ToolError("code must be a non-empty string")
        return self._run([sys.executable, "-"], args, stdin=code)

    def _submit_dev(self, args: dict[str, Any]) -> ToolOutput:
        task = self._task(args)
        if self.max_submissions is not None and self.submissions >= self.max_submissions:
            self.refused_submissions += 1
            raise ToolError(
                f"your dev submission budget for this session is spent ({self.max_submissions} used); "
                "no more dev submissions. Submit your best method with submit_result, share what you "
                "learned on the forum, update your notebook and finish."
            )
        preds: Any = args.get("predictions")
        if preds is None and args.get("path"):
            file = self.resolve(str(args["path"]))
            if not file.is_file() or self.sandbox is None:
                raise ToolError(f"{args['path']}: no such file in the sandbox")
            try:  # opened without following a link planted since the check
                preds = json.loads(read_beneath(self.sandbox, file).decode("utf-8"))
            except ValueError as e:
                raise ToolError(f"{args['path']}: not valid JSON ({e})") from None
        if not isinstance(preds, dict) or not preds:
            raise ToolError("give predictions as a non-empty {dev id: probability} object, or a path to one")
        try:
            clean = {str(k): float(v) for k, v in preds.items()}
        except (TypeError, ValueError):
            raise ToolError("every prediction must be a number in [0, 1]") from None
        fb = self.client.submit_dev(task, clean)
        self.submissions += 1
        left = (
            ""
            if self.max_submissions is None
            else f"; this session's budget: {self.max_submissions - self.submissions} left"
        )
        return ToolOutput(
            server_block(
                f"dev submission accepted for task {task}: reported score {fb.reported_score:.4g} "
                f"(improved on your best: {'yes' if fb.improved else 'no'}); server dev budget left: "
                f"{fb.budget_left}{left}"
            )
        )

    def _submit_result(self, args: dict[str, Any]) -> ToolOutput:
        task = self._task(args)
        folder = self.resolve(str(args.get("folder", "")))
        if not (folder / "method.py").is_file():
            raise ToolError(f"{args.get('folder')}: a method folder needs a method.py defining run(ctx)")
        config = args.get("config") or {}
        claimed = args.get("claimed") or {}
        if not isinstance(config, dict) or not isinstance(claimed, dict):
            raise ToolError("config and claimed must be objects")
        snap = self.client.put_snapshot(self._pack(folder))
        res = self.client.submit_result(task, snap.sha256, config, {k: float(v) for k, v in claimed.items()})
        self.results.append(res.id)
        return ToolOutput(
            server_block(
                f"result {res.id} for task {task} is {res.status} (snapshot {snap.sha256}, "
                f"{snap.size} bytes, "
                f"config {json.dumps(config, sort_keys=True)}); the server verifies it on fresh seeds"
            )
        )

    def _forum_read(self, args: dict[str, Any]) -> ToolOutput:
        if args.get("post_id") is not None:
            post = self.client.get_post(int(args["post_id"]))
            return ToolOutput(render_post(post, self.client.comments(post.id)))
        limit = int(args.get("limit") or 10)
        page = self.client.posts(
            kind=args.get("kind"), q=args.get("q"), author=args.get("author"), limit=max(1, min(limit, 50))
        )
        return ToolOutput(render_posts(page))

    def _forum_post(self, args: dict[str, Any]) -> ToolOutput:
        post = self.client.post(args.get("kind", ""), str(args.get("title", "")), str(args.get("body", "")))
        return ToolOutput(server_block(f"posted as post {post.id} ({post.kind})"))

    def _forum_comment(self, args: dict[str, Any]) -> ToolOutput:
        c = self.client.comment(int(args["post_id"]), str(args.get("body", "")))
        return ToolOutput(server_block(f"comment {c.id} added to post {c.post_id}"))

    def _forum_vote(self, args: dict[str, Any]) -> ToolOutput:
        v = self.client.vote(int(args["post_id"]), int(args["value"]))
        return ToolOutput(server_block(f"voted; post {v.post_id} now has score {v.score}"))

    def _leaderboard(self, args: dict[str, Any]) -> ToolOutput:
        task = self._task(args)
        return ToolOutput(render_leaderboard(task, self.client.leaderboard(task)))

    def _code_get(self, args: dict[str, Any]) -> ToolOutput:
        sha = str(args.get("sha", "")).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ToolError("sha must be the 64-hex sha256 of a snapshot")
        dest = self.resolve(str(args.get("dest", "")))
        if dest.exists() and any(dest.iterdir()):
            raise ToolError(f"{args.get('dest')}: not empty; unpack into a new folder")
        assert self.sandbox is not None
        rel = dest.relative_to(self.sandbox)
        # unpacked where the agent cannot reach, then copied in by descriptors: a link the agent's
        # commands plant meanwhile is never followed (sandbox_fs); the copy is the agent's uid's
        uid = self.runner.uid if self.runner is not None and self.runner.namespaces else None
        with tempfile.TemporaryDirectory(dir=self.state_dir, prefix="snapshot-") as tmp:
            written = safe_extract(self.client.get_snapshot(sha), Path(tmp))
            place_tree(Path(tmp), self.sandbox, rel, uid=uid)
            names = ", ".join(str(rel / p.relative_to(tmp)) for p in written[:20])
        return ToolOutput(server_block(f"unpacked snapshot {sha[:12]} into {args.get('dest')}: {names}"))

    def _code_put(self, args: dict[str, Any]) -> ToolOutput:
        folder = self.resolve(str(args.get("folder", "")))
        if not folder.is_dir():
            raise ToolError(f"{args.get('folder')}: not a folder in the sandbox")
        snap = self.client.put_snapshot(self._pack(folder))
        return ToolOutput(server_block(f"stored as snapshot {snap.sha256} ({snap.size} bytes)"))

    def read_notebook(self) -> str:
        return self.notebook_path.read_text(encoding="utf-8") if self.notebook_path.is_file() else ""

    def _notebook_read(self, args: dict[str, Any]) -> ToolOutput:
        text = self.read_notebook()
        return ToolOutput(
            f"<notebook>\n{neutralise(text)}\n</notebook>" if text else "(your notebook is empty)"
        )

    def _notebook_write(self, args: dict[str, Any]) -> ToolOutput:
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        mode = args.get("mode", "replace")
        text = (self.read_notebook() + ("\n" if content else "") + content) if mode == "append" else content
        if len(text) > MAX_NOTEBOOK:
            raise ToolError(f"the notebook would exceed {MAX_NOTEBOOK} characters; condense it")
        tmp = self.notebook_path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.notebook_path)
        return ToolOutput(f"notebook saved ({len(text)} characters)")
