"""The README works for a new user: the first screen goes from clone to a dashboard, every command it shows
exists with the options it uses, and it links only to files in the repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from aarlab.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PATHLIKE = re.compile(r"^(?:src|tests|bench|scripts|\.ci)/[\w./-]+$")


def _commands() -> list[tuple[int, list[str]]]:
    """(line number, argv after `aarlab`) for every `aarlab …` line in the README's shell blocks."""
    out, in_block = [], False
    for n, line in enumerate(README.splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() in ("```bash", "```sh")
            continue
        if not in_block:
            continue
        code = line.split(" #")[0].strip()
        for prefix in (".venv/bin/aarlab ", "aarlab "):
            if code.startswith(prefix):
                out.append((n, shlex.split(code[len(prefix) :])))
    return out


def test_first_screen_goes_from_clone_to_a_dashboard():
    first = "\n".join(README.splitlines()[:40])
    assert "git clone" in first and "make install" in first and "aarlab demo --quick" in first
    assert "dashboard:" in first  # what to open, and that the demo prints it
    assert re.search(r"^install:", (ROOT / "Makefile").read_text(), re.M)
    # the glossary and the data format come before the long reference sections
    assert README.index("## Glossary") < README.index("## The main job")
    assert README.index("## Reference data format") < README.index("## The main job")
    for term in ("PGR", "Weak", "Ceiling", "Dev", "Sealed", "Ladder", "critical", "underpowered"):
        assert term in README[README.index("## Glossary") : README.index("## Reference data format")], term


def test_every_command_shown_exists_with_its_options():
    root = typer.main.get_command(app)
    commands = _commands()
    assert len(commands) >= 10
    for n, argv in commands:
        cmd, rest = root, list(argv)
        while hasattr(cmd, "commands") and rest and rest[0] in cmd.commands:
            cmd = cmd.commands[rest.pop(0)]
        assert not hasattr(cmd, "commands"), f"README line {n}: {argv} names no command"
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}
        for token in rest:
            if token.startswith("-"):
                assert token.split("=")[0] in known, f"README line {n}: {token} is not an option of {argv}"


def test_links_only_to_files_in_the_repository():
    assert "../" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target
    for token in re.findall(r"`([^`\s]+)`", README):
        if PATHLIKE.match(token):
            assert (ROOT / token).exists(), token
