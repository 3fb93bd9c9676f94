"""The `aarlab` command line (one Typer app).

User errors (AarlabError) are printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from aarlab.config import get_settings
from aarlab.render import Col, console_for, emit, plain, typer_app
from aarlab.render import table as fit_table
from aarlab.testbed.errors import AarlabError

app = typer_app(
    help="aarlab: automated alignment research on weak-to-strong supervision. "
    "Start with `aarlab demo --quick` (about 1-2 minutes; prints a dashboard URL).",
    no_args_is_help=True,
)
tasks_app = typer_app(help="Built-in and reference-format tasks.", no_args_is_help=True)
encoders_app = typer_app(help="Frozen encoders shipped on PyPI.", no_args_is_help=True)
methods_app = typer_app(help="Registered W2S methods.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(encoders_app, name="encoders")
app.add_typer(methods_app, name="methods")

console = console_for(stderr=True)
out = console_for()
F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("aarlab")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
            v = "unknown (not installed)"
        typer.echo(f"aarlab {v} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """aarlab: automated alignment research on weak-to-strong supervision. Start with
    `aarlab demo --quick` (about 1-2 minutes; prints a dashboard URL)."""


def friendly(fn: F) -> F:
    """Turn user errors into one red line and exit code 2: AarlabError (its message says what to fix),
    and an OSError about a path (the path and the reason). Every command goes through it, so error
    handling lives here, not in each command."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AarlabError as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as e:
            if e.filename is None:  # not about a path the user gave: a bug, keep the traceback
                raise
            # a path the user gave that cannot be used (missing, a file for a folder, permissions)
            where = f"{e.filename} -> {e.filename2}" if e.filename2 else str(e.filename)
            console.print(
                f"[bold red]error:[/] {escape(where)}: {escape(e.strerror or str(e))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


@tasks_app.command("list")
@friendly
def tasks_list(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Each built-in task with its split sizes (seed 0), positive rate and default encoder pair."""
    from aarlab.testbed.tasks import get_spec, load_task, task_names

    rows: list[dict[str, Any]] = []
    for name in task_names():
        spec = get_spec(name)
        with console.status(f"loading {name} (built once, then cached)"):
            task = load_task(name)
        s = task.split(0)
        rows.append(
            {
                "task": name,
                "schema": spec.schema,
                "records": len(task.records),
                "train_label": len(s.train_label),
                "train_unlabel": len(s.train_unlabel),
                "test": len(s.test),
                "positive_rate": round(float(task.pool().positive_rate), 3),
                "weak": spec.weak,
                "strong": spec.strong,
                "gap": spec.gap_note or "resolvable",
                "gpu_command": spec.gpu_command,
                "default": name == get_settings().default_task,
                "description": spec.description,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="aarlab tasks (split sizes at seed 0)")
    for col in ("task", "schema", "label", "unlabel", "test", "pos.", "weak → strong", "W2S gap"):
        table.add_column(col)
    notes: list[str] = []
    for r in rows:
        name = r["task"] + (" (default)" if r["default"] else "")
        gap = "resolvable"
        if r["gap"] != "resolvable":
            gpu = f"; GPU path: `{r['gpu_command']}`" if r["gpu_command"] else ""
            notes.append(f"[{len(notes) + 1}] {r['task']}: {r['gap']}{gpu}")
            gap = f"not resolvable [{len(notes)}]"
        table.add_row(
            name,
            r["schema"],
            str(r["train_label"]),
            str(r["train_unlabel"]),
            str(r["test"]),
            f"{r['positive_rate']:.2f}",
            f"{r['weak']} → {r['strong']}",
            gap,
        )
    out.print(table)
    for note in notes:
        out.print(note, highlight=False)


@tasks_app.command("export")
@friendly
def tasks_export(
    name: Annotated[str, typer.Argument(help="built-in task name (see `aarlab tasks list`)")],
    dest: Annotated[Path, typer.Argument(help="new folder for train_label/train_unlabel/test.jsonl")],
    seed: Annotated[int, typer.Option(help="split seed")] = 0,
) -> None:
    """Write a built-in task as a reference-format directory (train_label/train_unlabel/test.jsonl)."""
    from aarlab.testbed.loader import write_jsonl
    from aarlab.testbed.tasks import load_task
    from aarlab.testbed.tasks.registry import split_by_entity

    task = load_task(name)
    fractions = task.spec.fractions if task.spec else (0.25, 0.40, 0.35)
    parts = split_by_entity(task.records, fractions, seed)
    for split, recs in zip(("train_label", "train_unlabel", "test"), parts, strict=True):
        n = write_jsonl(dest / f"{split}.jsonl", recs)
        out.print(f"{dest / (split + '.jsonl')}: {n} records")


@encoders_app.command("list")
@friendly
def encoders_list() -> None:
    """The offline encoders, their sizes and the packages that ship them."""
    from aarlab.testbed.encoders import encoder_specs

    table = Table(title="aarlab encoders (all offline, from PyPI wheels)")
    for col in ("id", "dim", "params", "package", "description"):
        table.add_column(col)
    for s in encoder_specs():
        table.add_row(s.id, str(s.dim), s.params, s.package, s.description)
    out.print(table)


@methods_app.command("list")
@friendly
def methods_list() -> None:
    """Registered methods and their hyperparameters."""
    from aarlab.testbed.methods import get_method, method_names

    table = Table(title="aarlab methods")
    for col in ("method", "teacher", "config", "description"):
        table.add_column(col)
    for name in method_names():
        spec = get_method(name)
        cfg = ", ".join(f"{k}={v.default}" for k, v in spec.config.model_fields.items())
        table.add_row(name, "yes" if spec.uses_teacher else "no (strong prior)", cfg, spec.description)
    out.print(table)


def _parse_config(config: str | None) -> dict[str, Any] | None:
    if not config:
        return None
    try:
        value = json.loads(config)
    except json.JSONDecodeError as e:
        raise AarlabError(
            f"--config is not valid JSON ({e.msg}); example: --config '{{\"keep_fraction\": 0.3}}'"
        ) from None
    if not isinstance(value, dict):
        raise AarlabError("--config must be a JSON object, e.g. '{\"C\": 0.01}'")
    return value


def result_table(results: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in (
        "task",
        "method",
        "weak → strong",
        "seeds",
        "weak acc",
        "ceiling acc",
        "transfer acc",
        "PGR [95% CI]",
        "AUROC-PGR",
        "s",
    ):
        table.add_column(col, justify="right" if col not in ("task", "method", "weak → strong") else "left")
    for r in results:
        if r["pgr"] is None:
            pgr_s, au = "gap not resolvable", "–"
        else:
            pgr_s = f"{r['pgr']:+.2f} [{r['pgr_ci'][0]:+.2f}, {r['pgr_ci'][1]:+.2f}]"
            au = _fmt(r["auroc_pgr"], 2)
        table.add_row(
            r["task"],
            r["method"],
            f"{r['weak']} → {r['strong']}",
            str(r["seeds"]),
            _fmt(r["weak_acc"]),
            _fmt(r["ceiling_acc"]),
            _fmt(r["transfer_acc"]),
            pgr_s,
            au,
            f"{r['seconds']:.1f}",
        )
    return table


@app.command()
@friendly
def baseline(
    task: Annotated[
        str | None, typer.Option(help="task name or reference-format directory (default: the default task)")
    ] = None,
    method: Annotated[str, typer.Option(help="method name, method.py file or method folder")] = "vanilla",
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds (splits)")] = 5,
    weak: Annotated[str | None, typer.Option(help="weak encoder (default: the task's)")] = None,
    strong: Annotated[str | None, typer.Option(help="strong encoder (default: the task's)")] = None,
    config: Annotated[str | None, typer.Option(help="method config as a JSON object")] = None,
    backend: Annotated[str, typer.Option(help="model backend: embed or lm")] = "embed",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run one method over several seeds and print weak, ceiling, transfer and PGR with 95% CIs."""
    from aarlab.testbed.pipeline import run_experiment

    result = run_experiment(
        task or get_settings().default_task,
        method,
        seeds=seeds,
        weak=weak,
        strong=strong,
        config=_parse_config(config),
        show_progress=not as_json and sys.stderr.isatty(),
        backend=backend,
    )
    data = result.to_json()
    if as_json:
        if data["note"]:
            data["task_notes"] = _task_gap_notes(task or result.task, backend)
        print(json.dumps(data))
        return
    out.print(result_table([data], "aarlab baseline"))
    if data["pgr_structured"] is not None:
        lo, hi = data["pgr_structured_ci"]
        out.print(
            f"structured ceiling (group-exclusive decoding of the gold-trained student): "
            f"{data['ceiling_structured_acc']:.3f}; PGR against it {data['pgr_structured']:+.2f} "
            f"[{lo:+.2f}, {hi:+.2f}] (ranked by this: decoding alone cannot exceed 1)",
            highlight=False,
        )
    out.print(f"a seed varies: {data['seed_varies']}", highlight=False)
    if data["note"]:
        console.print(f"[yellow]{data['note']}[/]", highlight=False, soft_wrap=True)
        for line in _task_gap_notes(task or result.task, backend):
            console.print(f"[yellow]{line}[/]", highlight=False, soft_wrap=True)


def _task_gap_notes(task: str, backend: str) -> list[str]:
    """Where no resolvable gap was found: what the task's spec says about its gap and the command that
    runs it on the GPU path (the reference study's pair through the lm backend)."""
    from aarlab.testbed.tasks import get_spec, task_names
    from aarlab.testbed.tasks.reference import GPU_COMMAND

    if backend == "lm":
        return []
    if task in task_names():
        spec = get_spec(task)
        lines = [f"{task}: {spec.gap_note}"] if spec.gap_note else []
        command = spec.gpu_command or GPU_COMMAND.format(task=task)
    else:
        lines, command = [], GPU_COMMAND.format(task=task)
    return [*lines, f"GPU path (the reference pair, lm backend): {command}"]


@app.command("baseline-table")
@friendly
def baseline_table(
    tasks: Annotated[
        list[str] | None, typer.Option("--task", help="tasks (default: every built-in task)")
    ] = None,
    methods: Annotated[
        list[str] | None, typer.Option("--method", help="methods (default: every baseline)")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds (splits) per task and method")] = 5,
    markdown: Annotated[Path | None, typer.Option(help="also write the table as Markdown here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (a list of results)")] = False,
) -> None:
    """Every baseline on every built-in task (the README table)."""
    from aarlab.testbed.methods.baselines import BASELINES
    from aarlab.testbed.pipeline import prepare, run_experiment
    from aarlab.testbed.tasks import load_task, task_names

    results = []
    for name in tasks or task_names():
        task = load_task(name)
        prep = prepare(task, show_progress=sys.stderr.isatty())
        for m in methods or BASELINES:
            with console.status(f"{name}: {m}"):
                results.append(run_experiment(task, m, seeds=seeds, prepared=prep).to_json())
    if as_json:
        print(json.dumps(results))
    else:
        out.print(
            result_table(
                results, f"aarlab baselines ({seeds} seeds, 95% bootstrap CIs over seeds × examples)"
            )
        )
    if markdown:
        markdown.write_text(markdown_table(results))
        console.print(f"wrote {markdown}")


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| task | method | weak → strong | weak acc | ceiling acc | transfer acc | PGR [95% CI] "
        "| AUROC-PGR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["pgr"] is None:
            pgr_s, au = f"gap not resolvable (gap {r['gap']:+.3f})", "–"
        else:
            pgr_s, au = (
                f"{r['pgr']:+.2f} [{r['pgr_ci'][0]:+.2f}, {r['pgr_ci'][1]:+.2f}]",
                _fmt(r["auroc_pgr"], 2),
            )
        lines.append(
            f"| {r['task']} | {r['method']} | {r['weak']} → {r['strong']} | {_fmt(r['weak_acc'])} | "
            f"{_fmt(r['ceiling_acc'])} | {_fmt(r['transfer_acc'])} | {pgr_s} | {au} |"
        )
    return "\n".join(lines) + "\n"


@app.command()
@friendly
def transfer(
    result_id: Annotated[
        int | None, typer.Argument(help="a verified result on the server (needs --data-dir)")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="or: a method name, method.py file or folder (trusted, in-process)")
    ] = None,
    config: Annotated[str | None, typer.Option(help="method config as a JSON object")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="the server's data directory (with RESULT_ID)")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite)")] = None,
    seeds: Annotated[int, typer.Option(min=2, help="seeds per suite (registered with the settings)")] = 10,
    min_effect: Annotated[float, typer.Option(help="pre-registered minimum ΔPGR (H0: ΔPGR ≤ this)")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run the transfer gate: ΔPGR vs vanilla on the sealed suites, Holm-corrected, with a verdict.

    `aarlab transfer RESULT_ID --data-dir D` gates a verified result (its snapshot runs in the sandbox;
    the verdict is stored on the server); `aarlab transfer --method M` gates trusted local code."""
    from aarlab.transfer.gate import DEFAULT_SUITES, GateSettings, run_gate

    if (result_id is None) == (method is None):
        raise AarlabError("give either RESULT_ID (with --data-dir) or --method, not both")
    if not math.isfinite(min_effect):
        raise AarlabError(f"--min-effect must be a finite ΔPGR (e.g. 0.05), got {min_effect}")
    suites = [s.model_copy(update={"seeds": list(range(100, 100 + seeds))}) for s in DEFAULT_SUITES]
    settings = GateSettings(suites=suites, min_effect=min_effect)
    if result_id is not None:
        from aarlab.server.datadir import require_data_dir
        from aarlab.server.transfer_worker import transfer_result

        if data_dir is None:
            raise AarlabError("RESULT_ID needs --data-dir (the server's data directory)")
        require_data_dir(data_dir)
        from aarlab.demo import gate_progress

        console.print(f"transfer gate for result {result_id} (settings {settings.fingerprint()})")
        with gate_progress(len(settings.suites), not as_json) as progress:
            stored = transfer_result(data_dir, db, result_id, settings, progress=progress)
        if stored["status"] != "done":
            raise AarlabError(f"transfer gate for result {result_id} failed: {stored['reason']}")
        result = stored["report"]
    else:
        assert method is not None
        from aarlab.demo import gate_progress

        console.print(f"transfer gate for {method} (settings {settings.fingerprint()})")
        with gate_progress(len(settings.suites), not as_json) as progress:
            result = run_gate(method, _parse_config(config), settings, progress=progress).to_json()
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"transfer gate: {result['method']} → {result['verdict'].upper()}")
    for col in ("suite", "status", "ΔPGR [95% CI]", "PGR method / vanilla", "p (Holm)", "power"):
        table.add_column(col)
    for s in result["suites"]:
        ci = s["delta_pgr_ci"]
        table.add_row(
            s["suite"]["name"],
            s["status"],
            "–" if s["delta_pgr"] is None else f"{s['delta_pgr']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]",
            "–" if s["pgr_method"] is None else f"{s['pgr_method']:+.2f} / {s['pgr_baseline']:+.2f}",
            "–" if s["p_holm"] is None else f"{s['p_holm']:.3f}",
            "–" if s["power"] is None else f"{s['power']:.2f}",
        )
    out.print(table)
    out.print(f"{result['reason']} (settings {result['settings_hash']})", highlight=False)


def _live_agents(enabled: bool) -> tuple[Any, Callable[[list[Any]], None]]:
    """A rich Live display of the agents on stderr (or nothing), and the callback that refreshes it."""
    from contextlib import nullcontext

    from rich.live import Live

    from aarlab.agents.orchestrator import agents_table

    if not enabled:
        return nullcontext(), lambda _states: None
    live = Live(console=console, refresh_per_second=2, transient=False)
    last = [0.0]

    def update(states: list[Any]) -> None:
        import time

        now = time.monotonic()
        if now - last[0] >= 0.5 or all(s.done for s in states):
            last[0] = now
            live.update(
                agents_table(states, "agents (best dev: Ladder-reported; verified: re-executed)", console)
            )

    return live, update


def leaderboard_table(rows: list[dict[str, Any]], title: str) -> Any:
    """Ranked rows, then rows pending review (open critical flag), fitted to stdout."""
    from aarlab.server.ranking import split_ranked

    ranked, pending = split_ranked(rows)
    cols = [
        Col("rank", "id"),
        Col("result", "id"),
        Col("agent", "id"),
        Col("dev acc", "num", 0, "right"),
        Col("sealed acc [95% CI]", "num", 0, "right"),
        Col("PGR [95% CI]", "num", 1, "right"),
        Col("open flags", "id"),
        Col("config", "text", 2),
    ]
    body = []
    for k, r in [*enumerate(ranked, 1), *((None, p) for p in pending)]:
        sealed = (
            "–"
            if r["sealed_acc"] is None
            else (f"{r['sealed_acc']:.3f} [{r['sealed_low']:.3f}, {r['sealed_high']:.3f}]")
        )
        pgr = "–" if r["pgr"] is None else f"{r['pgr']:+.2f} [{r['pgr_low']:+.2f}, {r['pgr_high']:+.2f}]"
        flags = "–" if not r["open_flags"] else f"{r['open_flags']} ({r['top_severity']})"
        body.append(
            [
                str(k) if k is not None else "pending review",
                str(r["result_id"]),
                r["agent"],
                _fmt(r["dev_acc"]),
                sealed,
                pgr,
                flags,
                json.dumps(r.get("config") or {}, sort_keys=True),
            ]
        )
    return fit_table(title, cols, body, out)


@app.command()
@friendly
def research(
    agents: Annotated[int, typer.Option("--agents", min=1, help="number of researcher agents")] = 3,
    backend: Annotated[str, typer.Option(help="search (offline, no LLM), anthropic or openai")] = "search",
    task: Annotated[str | None, typer.Option(help="task name or reference-format directory")] = None,
    model: Annotated[str | None, typer.Option(help="LLM model (default: the backend's)")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint (vLLM, Ollama)")] = None,
    directions: Annotated[
        Path | None, typer.Option(help="YAML/JSON list of {name, summary, axes, start} directions")
    ] = None,
    hours: Annotated[float, typer.Option(help="wall budget per agent, in hours")] = 1.0,
    max_tokens: Annotated[int | None, typer.Option(help="LLM tokens per agent (in + out)")] = None,
    max_dollars: Annotated[float | None, typer.Option(help="LLM dollars per agent")] = None,
    max_submissions: Annotated[int | None, typer.Option(help="dev submissions per agent")] = None,
    rounds: Annotated[
        int,
        typer.Option(
            min=0,
            help="search backend: rounds per agent, each ending in at most one new result (0: until a "
            "budget runs out; a search agent makes a result every 1-3 s, far faster than verification)",
        ),
    ] = 3,
    executor: Annotated[
        str, typer.Option(help="local (a process per agent) or ray (a Ray task per agent)")
    ] = ("local"),
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start Ray here)")] = None,
    server: Annotated[str | None, typer.Option(help="join a running server at this URL")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="AARLAB_TOKEN", help="with --server: an overseer's token")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="server data dir (default: a new one under $AARLAB_HOME/runs)")
    ] = None,
    seed: Annotated[int, typer.Option(help="first agent's seed (agent i gets seed + i)")] = 0,
    max_restarts: Annotated[int, typer.Option(min=0, help="restarts of a crashed agent")] = 2,
    verify_seeds: Annotated[int, typer.Option(min=1, help="verification seeds per result")] = 2,
    verify_workers: Annotated[
        int | None, typer.Option(min=1, help="results verified at once (default: one per core, at most 4)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (no live display)")] = False,
) -> None:
    """Run N researcher agents with distinct directions in parallel, verify their results, print the
    leaderboard. Without --server the evaluation server runs in this process (SQLite)."""
    from aarlab.agents.orchestrator import (
        ResearchBudget,
        ResearchConfig,
        agents_table,
        check_backend,
        load_directions,
        run_research,
    )

    if backend not in ("search", "anthropic", "openai"):
        raise AarlabError(f"unknown backend {backend!r}; available: search, anthropic, openai")
    check_backend(backend, base_url)  # before anything starts
    if executor not in ("local", "ray"):
        raise AarlabError(f"unknown executor {executor!r}; available: local, ray")
    if data_dir is not None:
        from aarlab.server.datadir import require_data_dir

        if server:  # a running server's data dir: it must be one
            require_data_dir(data_dir)
        elif data_dir.exists() and not data_dir.is_dir():
            require_data_dir(data_dir)  # says it is a file
    dirs = load_directions(directions, backend=backend) if directions else None
    cfg = ResearchConfig(
        agents=agents,
        backend=backend,
        task=task,
        model=model,
        base_url=base_url,
        directions=dirs,
        budget=ResearchBudget(
            hours=hours,
            max_tokens=max_tokens,
            max_dollars=max_dollars,
            max_submissions=max_submissions,
            rounds=rounds or None,
        ),
        executor=executor,
        address=address,
        server=server,
        token=token,
        data_dir=data_dir,
        seed=seed,
        max_restarts=max_restarts,
        verify_seeds=verify_seeds,
        progress=not as_json,
    )
    if verify_workers:
        cfg.verify_workers = verify_workers
    live, update = _live_agents(not as_json)

    def announce(srv: Any) -> None:
        if not as_json:
            console.print(f"server: {srv.url} (data dir {srv.data_dir})", highlight=False)

    with live:
        run, _ = run_research(cfg, on_update=update, on_server=announce)
    if not as_json and plain(console):
        console.line()  # the live view's last frame ends without a newline off a terminal
    data = run.to_json()
    if as_json:
        print(json.dumps(data))
        return
    for w in run.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    emit(out, agents_table(run.agents, "agents", out))
    emit(out, leaderboard_table(data["leaderboard"], f"leaderboard — {run.task} (verified only)"))
    out.print(f"verification: {run.verification}; run folder {run.run_dir}", highlight=False)


@app.command()
@friendly
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="small task, fewer agents and seeds (~1-2 min)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (progress off)")] = False,
    agents: Annotated[
        int | None, typer.Option(min=1, help="search researchers (default 3 quick, 4 full) + 1 red-team")
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="server port (0: any free port)")] = 0,
    hold: Annotated[
        float | None,
        typer.Option(
            help="keep the dashboard up this many seconds after finishing (default 60; 0 with --json); "
            "Ctrl-C ends"
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="task name or reference-format directory (default: the profile's task)"),
    ] = None,
) -> None:
    """The main job: server + dashboard, search researchers and a red-team agent in parallel, verified
    leaderboard, flags, the transfer gate's verdict and every agent's usage."""
    import time

    from aarlab.demo import print_demo, run_demo

    live, update = _live_agents(not as_json)

    def started(_server: Any, url: str) -> None:
        console.print(f"dashboard: [bold]{url}[/]", highlight=False, soft_wrap=True)

    def stage(msg: str) -> None:
        if not as_json:
            console.print(f"[dim]{msg}[/]", highlight=False)

    with live:
        result, server = run_demo(
            quick=quick,
            agents=agents,
            port=port,
            on_server=started,
            on_update=update,
            on_stage=stage,
            keep_server=True,
            show_progress=not as_json,
            task=task,
        )
    if not as_json and plain(console):
        console.line()  # the live view's last frame ends without a newline off a terminal
    assert server is not None
    try:
        if as_json:
            print(json.dumps(result.to_json()))
        else:
            print_demo(result, out)
            out.print(f"run folder: {result.run_dir}", highlight=False, soft_wrap=True)
        wait = hold if hold is not None else (0.0 if as_json else 60.0)
        if wait > 0:
            console.print(
                f"dashboard stays up for {wait:.0f} s at {result.dashboard} (Ctrl-C ends)",
                highlight=False,
                soft_wrap=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(wait)
    finally:
        server.stop()


# Server commands (serve, admin add-agent, server init-task, export-sandbox) live in aarlab.server.cli.
from aarlab.server.cli import register as _register_server  # noqa: E402

_register_server(app, friendly)

# The overseers' review commands are a client of a running server: aarlab.cli_review.
from aarlab.cli_review import register as _register_review  # noqa: E402

_register_review(app, friendly)

from aarlab.agents.mcp_server import mcp_command  # noqa: E402

app.command("mcp", help="Serve the researcher tools over MCP (stdio) for an external agent harness.")(
    friendly(mcp_command)
)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
