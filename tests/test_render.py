"""CLI output that fits: identifiers are never cut, words never split, a plain wide layout off a terminal,
help without ``<bool>``, ``-h`` and ``--version``, progress lines with counts and an ETA."""

from __future__ import annotations

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.cli.demo import print_demo
from aarlab.lab.demo import DemoResult
from aarlab.render import Col, Counter, console_for, emit, eta_line, table

LONG_AGENTS = ["search-strong-prior-elicitation-2", "search-noisy-channel-em-with-folds", "redteam"]
BOX = set("┏┃┡│└┌─━╇┳┓┗┛")


def _demo_result() -> DemoResult:
    board = []
    for k, name in enumerate(LONG_AGENTS, 1):
        board.append(
            {
                "result_id": 1000 + k,
                "agent": name,
                "dev_acc": 0.8,
                "dev_low": 0.7,
                "dev_high": 0.9,
                "sealed_acc": 0.7,
                "sealed_low": 0.6,
                "sealed_high": 0.8,
                "pgr": 0.4,
                "pgr_low": 0.1,
                "pgr_high": 0.7,
                "open_flags": 1 if name == "redteam" else 0,
                "top_severity": "critical" if name == "redteam" else None,
                "transfer": "does not transfer" if k == 1 else None,
                "config": {"targets": "sharpen", "consistency": "exclusive", "prior_weight": 0.5},
            }
        )
    agents = [
        {
            "name": n,
            "direction": "noisy-channel-em-direction-with-a-long-name",
            "status": "finished",
            "tokens": 0,
            "dollars": 0.0,
            "restarts": 0,
            "stop_reason": "proposal budget used (12) after several search rounds",
            "server_usage": {"status": "finished", "submissions": 4, "results": 1, "hours": 0.01},
        }
        for n in LONG_AGENTS
    ]
    flags = [
        {
            "id": 77,
            "agent": "redteam",
            "result_id": 1003,
            "kind": "ablation/no-teacher-no-student",
            "severity": "critical",
            "summary": "the score survives both removing the teacher and replacing the student with noise",
            "status": "open",
        }
    ]
    verdicts = [
        {
            "result_id": 1001,
            "agent": LONG_AGENTS[0],
            "status": "done",
            "verdict": "does not transfer",
            "reason": "not significant on demo-cities/unseen-countries (power 0.05 < 0.8 at ΔPGR=0.1)",
            "suites": [
                {
                    "suite": "demo-cities/unseen-countries",
                    "status": "tested",
                    "delta_pgr": 0.4,
                    "delta_pgr_ci": [-0.1, 0.9],
                    "p_holm": 0.2,
                }
            ],
        }
    ]
    return DemoResult(
        "quick", "demo-cities", "http://x/ui/login?token=t", agents, board, flags,
        {"agent": "redteam", "flagged": True, "flag_kinds": ["ablation/no-teacher-no-student"]},
        verdicts, {"total": 10.0}, "/tmp/run",
    )  # fmt: skip


def _whole(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w/-]){re.escape(word)}(?![\w/-])", text) is not None


def test_piped_demo_output_is_plain_wide_and_keeps_every_identifier_whole():
    buf = io.StringIO()
    console = console_for(buf)  # not a terminal
    print_demo(_demo_result(), console)
    text = buf.getvalue()
    assert not BOX & set(text) and "\x1b[" not in text and "…" not in text
    for name in LONG_AGENTS:
        assert _whole(text, name), name
    for rid in ("1001", "1002", "1003"):
        assert _whole(text, rid), rid
    assert "ablation/no-teacher-no-student" in text and "demo-cities/unseen-countries" in text
    assert all(line == line.rstrip() for line in text.splitlines())  # no padding at line ends
    # the flagged row is listed apart (not ranked) under the ranked ones
    board = text[: text.index("review queue")]
    ranked_line = next(line for line in board.splitlines() if "1001" in line)
    pending_line = next(line for line in board.splitlines() if "1003" in line)
    assert ranked_line.split()[0] == "1" and pending_line.startswith("pending review")
    assert board.index("1001") < board.index("1002") < board.index("1003")


def test_on_a_narrow_terminal_identifiers_stay_whole_and_words_are_not_split():
    for width in (80, 100, 120):
        buf = io.StringIO()
        console = Console(file=buf, width=width, force_terminal=True, color_system=None)
        print_demo(_demo_result(), console)
        text = buf.getvalue()
        for name in LONG_AGENTS:
            assert _whole(text, name), (width, name)
        cells = {c.strip() for line in text.splitlines() for c in re.split(r"[│┃]", line)}
        words = {w for c in cells for w in c.split()}
        # no word of a cell is a fragment cut off another word ("finis"/"hed", "sea"/"rch-...")
        for fragment in ("finis", "hed", "proposa", "sea", "noisy-channel-em-direction-with-a"):
            assert fragment not in words, (width, fragment)
        assert max(len(line) for line in text.splitlines()) <= width


def test_table_drops_optional_columns_before_cutting_and_says_so():
    buf = io.StringIO()
    console = Console(file=buf, width=40, force_terminal=True, color_system=None)
    cols = [Col("agent", "id"), Col("note", "text", 1), Col("tokens", "num", 2, "right")]
    emit(console, table("t", cols, [["search-strong-prior-elicitation", "a few words", "123456"]], console))
    text = buf.getvalue()
    assert "search-strong-prior-elicitation" in text and "123456" not in text
    assert "too narrow for: tokens" in text


def test_progress_lines_carry_counts_and_an_eta_off_a_terminal():
    assert eta_line("verifying", 2, 8, started=0.0, now=10.0) == (
        "verifying: 2/8 (25%), 10 s elapsed, ETA 30 s"
    )
    assert eta_line("verifying", 8, 8, started=0.0, now=12.0).endswith("done")
    buf = io.StringIO()
    with Counter("transfer gate suites", 2, console_for(buf)) as c:
        c.advance(note="suite a finished")
        c.advance(note="suite b finished")
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("transfer gate suites: 0/2 (0%)")
    assert "1/2 (50%)" in lines[1] and "ETA" in lines[1] and "suite a finished" in lines[1]
    assert "2/2 (100%)" in lines[2] and "done" in lines[2]


def _commands(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


def test_every_command_has_h_help_on_every_option_and_no_bool_metavar():
    import typer

    runner = CliRunner()
    root = typer.main.get_command(app)
    seen = 0
    for path, cmd in _commands(root):
        for p in cmd.params:
            assert getattr(p, "help", None), f"aarlab {' '.join(path)}: {p.opts} has no help"
        r = runner.invoke(app, [*path, "-h"])
        assert r.exit_code == 0, (path, r.output)
        assert "<bool>" not in r.output and "Usage: " in r.output and "--help" in r.output, path
        seen += 1
    assert seen >= 15
    top = runner.invoke(app, ["-h"])
    assert top.exit_code == 0 and "demo --quick" in top.output


def test_version():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and re.fullmatch(r"aarlab \d+\.\d+\.\d+\S* \(Python 3\.\d+\.\d+\)\n", r.output)
    assert CliRunner().invoke(app, ["-V"]).output == r.output
