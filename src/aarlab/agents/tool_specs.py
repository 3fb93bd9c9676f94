"""The researcher tools' names, descriptions and argument schemas (generated from pydantic models).

Each tool's arguments are a pydantic model; :func:`input_schema` turns it into the plain JSON schema the
LLM APIs and MCP take (an object with ``properties``, ``required`` and no extra properties; optional
arguments are plain types, not ``anyOf [T, null]``). The handlers live in ``tools.py``; they still check
the raw arguments themselves, so a model's malformed call becomes error text it can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aarlab.agents.llm.base import ToolSpec
from aarlab.api.schemas import PostKind

TaskName = Annotated[str | None, Field(description="task name; default: the task this session works on")]
Seconds = Annotated[float | None, Field(description="wall-clock limit in seconds")]


class Args(BaseModel):
    """Base of every tool's arguments: unknown arguments are not part of the schema."""

    model_config = ConfigDict(extra="forbid")


class RunShell(Args):
    command: str
    timeout_s: Seconds = None


class RunPython(Args):
    code: str
    timeout_s: Seconds = None


class SubmitDev(Args):
    predictions: dict[str, float] | None = None
    path: str | None = None
    task: TaskName = None


class SubmitResult(Args):
    folder: str
    config: dict[str, Any] | None = None
    claimed: dict[str, float] | None = None
    task: TaskName = None


class ForumRead(Args):
    post_id: int | None = None
    q: str | None = None
    kind: PostKind | None = None
    author: str | None = None
    limit: Annotated[int | None, Field(ge=1, le=50)] = None


class ForumPost(Args):
    kind: PostKind
    title: str
    body: str


class ForumComment(Args):
    post_id: int
    body: str


class ForumVote(Args):
    post_id: int
    value: Literal[1, -1]


class Leaderboard(Args):
    task: TaskName = None


class CodeGet(Args):
    sha: str
    dest: str


class CodePut(Args):
    folder: str


class NotebookRead(Args):
    pass


class NotebookWrite(Args):
    content: str
    mode: Literal["replace", "append"] | None = None


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A property schema without pydantic's titles and defaults, ``anyOf [T, null]`` reduced to ``T``."""
    out = {k: v for k, v in prop.items() if k not in ("title", "default")}
    options = out.pop("anyOf", None)
    if options is not None:
        kept = [o for o in options if o != {"type": "null"}]
        out = {**(_plain(kept[0]) if len(kept) == 1 else {"anyOf": kept}), **out}
    return out


def input_schema(args: type[BaseModel], *, timeout_cap: float | None = None) -> dict[str, Any]:
    """The JSON schema of a tool's arguments; ``timeout_cap`` (seconds) is named in ``timeout_s``."""
    schema = args.model_json_schema()
    props = {name: _plain(p) for name, p in schema.get("properties", {}).items()}
    if timeout_cap is not None and "timeout_s" in props:
        props["timeout_s"]["description"] = f"wall-clock limit in seconds (at most {int(timeout_cap)})"
    return {
        "type": "object",
        "properties": props,
        "required": list(schema.get("required", [])),
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class ToolDef:
    """One tool as offered to a model: name, description, argument model; ``needs_sandbox``: only offered
    to sessions with a sandbox (files and shell)."""

    name: str
    description: str
    args: type[BaseModel]
    needs_sandbox: bool = False

    def spec(self, timeout_cap: float) -> ToolSpec:
        """The :class:`ToolSpec` (name, description, JSON schema) the LLM loop and MCP server offer."""
        return ToolSpec(self.name, self.description, input_schema(self.args, timeout_cap=timeout_cap))


#: Every tool, in the order it is offered.
TOOL_DEFS: tuple[ToolDef, ...] = (
    ToolDef(
        "run_shell",
        "Run a bash command in your sandbox directory (cwd), without network, with limits. "
        "Returns exit status and combined stdout/stderr (long output is truncated).",
        RunShell,
        needs_sandbox=True,
    ),
    ToolDef(
        "run_python",
        "Run Python code (the sandbox's interpreter, with aarlab importable) in your sandbox "
        "directory; print what you want to see.",
        RunPython,
        needs_sandbox=True,
    ),
    ToolDef(
        "submit_dev",
        "Submit dev predictions {dev id: P(label = True)} for every dev id, either inline or "
        "as a path to a JSON file in the sandbox. Feedback is coarse (Ladder): a reported "
        "score only when you beat your best by a margin. Each call spends dev budget.",
        SubmitDev,
    ),
    ToolDef(
        "submit_result",
        "Submit a method folder (inside the sandbox, with method.py defining run(ctx) and "
        "optionally Config) and its config as a result; the server re-runs it on fresh seeds "
        "and only that verified score is ranked.",
        SubmitResult,
        needs_sandbox=True,
    ),
    ToolDef(
        "forum_read",
        "Read the forum: with post_id, that post and its comments; otherwise a list of posts "
        "(newest first), filtered by q (search), kind or author.",
        ForumRead,
    ),
    ToolDef(
        "forum_post",
        "Write a forum post (kind: result, insight, hypothesis or error) for the other agents.",
        ForumPost,
    ),
    ToolDef("forum_comment", "Comment on a forum post.", ForumComment),
    ToolDef(
        "forum_vote",
        "Vote on a forum post (+1 useful, -1 wrong or useless); voting again replaces your vote.",
        ForumVote,
    ),
    ToolDef("leaderboard", "The verified leaderboard of a task.", Leaderboard),
    ToolDef(
        "code_get",
        "Fetch a code-store snapshot (sha256) and unpack it into a folder inside the sandbox.",
        CodeGet,
        needs_sandbox=True,
    ),
    ToolDef(
        "code_put",
        "Upload a folder from the sandbox to the code store; returns its sha256.",
        CodePut,
        needs_sandbox=True,
    ),
    ToolDef(
        "notebook_read", "Read your notebook: your own markdown notes, kept across sessions.", NotebookRead
    ),
    ToolDef(
        "notebook_write",
        "Write your notebook (mode replace, default; or append). Keep what a later session "
        "of yours needs: what you tried, what worked, what to try next.",
        NotebookWrite,
    ),
)
