"""CLI rendering that fits: tables that never truncate identifiers nor split words, a plain wide layout
when the output is not a terminal, the CLI's help settings, and progress with counts and an ETA.

* On a terminal, :func:`table` keeps every identifier (agent names, result ids, kinds, hashes) whole and
  never lets a column get narrower than its longest word; when the columns cannot all fit, the least
  important ones (highest ``drop`` number) are left out and the title says so.
* Not on a terminal (piped, redirected, CI), output is plain: no box drawing, no colour, and as wide as
  the content, so a line is never wrapped or cut by the renderer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Literal, TypeVar

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

#: Width used when the output is not a terminal: wide enough that no table is ever wrapped.
PLAIN_WIDTH = 1000
#: A word longer than this in a free-text column may still be folded on a terminal.
MAX_WORD = 40
#: Typer settings for every ``aarlab`` command group: plain click help (no ``<bool>`` metavars, no
#: boxes that crop text) and ``-h`` as well as ``--help``.
HELP_SETTINGS: dict[str, Any] = {
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 120},
}


def typer_app(**kwargs: Any) -> typer.Typer:
    """A ``typer.Typer`` with :data:`HELP_SETTINGS` (keyword arguments are passed on)."""
    return typer.Typer(**{**HELP_SETTINGS, **kwargs})


def is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def console_for(stream: IO[str] | None = None, *, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width on a terminal, else plain and
    :data:`PLAIN_WIDTH` wide (no colour, no wrapping)."""
    target = stream if stream is not None else (sys.stderr if stderr else sys.stdout)
    if is_terminal(target):
        return Console(file=stream, stderr=stderr and stream is None)
    return Console(
        file=stream,
        stderr=stderr and stream is None,
        width=PLAIN_WIDTH,
        no_color=True,
        highlight=False,
        soft_wrap=False,
        force_terminal=False,
    )


def plain(console: Console) -> bool:
    """True when ``console`` writes to something that is not a terminal (plain layout)."""
    return not console.is_terminal


def emit(console: Console, renderable: Any) -> None:
    """Print ``renderable``; in the plain layout without the padding spaces rich adds at line ends."""
    if not plain(console):
        console.print(renderable)
        return
    with console.capture() as cap:
        console.print(renderable)
    text = "\n".join(line.rstrip() for line in cap.get().splitlines())
    console.file.write(text + "\n")
    console.file.flush()


Kind = Literal["id", "num", "text"]


@dataclass(frozen=True)
class Col:
    """A table column: ``id`` and ``num`` cells are never wrapped; ``text`` wraps at spaces only.
    ``drop``: 0 = always shown; on a narrow terminal, columns with the highest ``drop`` go first."""

    header: str
    kind: Kind = "text"
    drop: int = 0
    justify: Literal["left", "right"] = "left"


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else Text.from_markup(cell).plain


def _min_width(col: Col, cells: list[str]) -> int:
    words = col.header.split() or [""]
    head = max(len(w) for w in words)
    if col.kind in ("id", "num"):
        return max([len(col.header), *(len(line) for c in cells for line in c.splitlines() or [""])])
    longest = max([0, *(len(w) for c in cells for w in c.split())])
    return max(head, min(longest, MAX_WORD))


def table(
    title: str,
    cols: Sequence[Col],
    rows: Iterable[Sequence[str | Text]],
    console: Console,
    caption: str | None = None,
) -> RenderableType:
    """A rich table that fits ``console`` without cutting identifiers or splitting words (see the
    module docstring): optional columns are left out first, and a terminal too narrow even for the
    essential ones gets one block per row instead. ``rows`` hold markup strings or ``Text``, one cell
    per column; raises ``ValueError`` when a row has another number of cells."""
    data = [list(r) for r in rows]
    for r in data:
        if len(r) != len(cols):
            raise ValueError(f"a row has {len(r)} cells for {len(cols)} columns ({title!r})")
    texts = [[_plain(c) for c in r] for r in data]
    widths = [_min_width(col, [t[i] for t in texts]) for i, col in enumerate(cols)]
    keep = list(range(len(cols)))
    dropped: list[str] = []
    if not plain(console):
        budget = console.width
        # each column costs its width plus padding (2) and a border (1), plus the outer border
        while len(keep) > 1 and sum(widths[i] + 3 for i in keep) + 1 > budget:
            worst = max(keep, key=lambda i: (cols[i].drop, i))
            if cols[worst].drop == 0:
                break
            keep.remove(worst)
            dropped.append(cols[worst].header)
    if not plain(console) and sum(widths[i] + 3 for i in keep) + 1 > console.width:
        return _records(title, cols, data, caption)  # even the essential columns do not fit side by side
    if dropped:
        title += f" (too narrow for: {', '.join(dropped)}; widen the terminal or pipe the output)"
    t = Table(
        title=title,
        caption=caption,
        box=None if plain(console) else box.SQUARE,
        show_edge=not plain(console),
        pad_edge=not plain(console),
        header_style="" if plain(console) else "bold",
        title_justify="left",
        caption_justify="left",
    )
    for i in keep:
        col = cols[i]
        t.add_column(
            col.header,
            justify=col.justify,
            no_wrap=col.kind != "text",
            overflow="fold",
            min_width=widths[i],
        )
    for r in data:
        t.add_row(*(r[i] for i in keep))
    return t


def _records(
    title: str, cols: Sequence[Col], data: list[list[str | Text]], caption: str | None
) -> RenderableType:
    """One block per row (``header: value`` lines): what a terminal too narrow for the columns gets, so
    that nothing is cut. Values wrap at spaces; only a word longer than the line is folded."""
    parts: list[RenderableType] = [Text(title, style="bold")]
    key_width = max(len(c.header) for c in cols)
    for k, row in enumerate(data):
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=key_width + 1, style="bold")
        grid.add_column(overflow="fold")
        for col, cell in zip(cols, row, strict=True):
            grid.add_row(col.header + ":", cell)
        parts.append(grid)
        if k < len(data) - 1:
            parts.append(Text(""))
    if caption:
        parts.append(Text(caption))
    return Group(*parts)


T = TypeVar("T")


def eta_line(label: str, done: int, total: int, started: float, now: float | None = None) -> str:
    """``"label: 3/10 (30%), 12 s elapsed, ETA 28 s"`` (no ETA before the first item is done)."""
    now = time.monotonic() if now is None else now
    elapsed = max(0.0, now - started)
    pct = 100.0 * done / total if total else 100.0
    text = f"{label}: {done}/{total} ({pct:.0f}%), {elapsed:.0f} s elapsed"
    if 0 < done < total:
        text += f", ETA {elapsed / done * (total - done):.0f} s"
    elif done >= total:
        text += ", done"
    return text


class Counter:
    """Progress of one step with a known number of items: a rich bar with counts and ETA on a terminal,
    else one plain line per item (``label: done/total, ETA``) so a log shows that work goes on."""

    #: In the plain layout, at most one line per this many seconds (plus the first and the last).
    PLAIN_EVERY_S = 5.0

    def __init__(self, label: str, total: int, console: Console | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.console = console or console_for(stderr=True)
        self.started = time.monotonic()
        self._printed = 0.0
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Counter:
        if not plain(self.console):
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total)
        else:
            self.console.print(eta_line(self.label, 0, self.total, self.started), highlight=False)
            self._printed = time.monotonic()
        return self

    def advance(self, n: int = 1, note: str = "") -> None:
        """Count ``n`` more items done; ``note`` says which (shown next to the counts)."""
        self.done = min(self.total, self.done + n)
        self._show(note, force=bool(note))

    def note(self, text: str) -> None:
        """Say what is being worked on now, without counting anything."""
        self._show(text, force=True)

    def _show(self, note: str, force: bool) -> None:
        if self._progress is not None:
            desc = self.label + (f" ({note})" if note else "")
            self._progress.update(self._task, completed=self.done, total=self.total, description=desc)
            return
        now = time.monotonic()
        if force or self.done >= self.total or now - self._printed >= self.PLAIN_EVERY_S:
            line = eta_line(self.label, self.done, self.total, self.started)
            self.console.print(line + (f" — {note}" if note else ""), highlight=False, soft_wrap=True)
            self._printed = now

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextmanager
def counted(label: str, total: int, console: Console | None = None) -> Iterator[Callable[..., None]]:
    """``with counted("verifying", 10) as step: ... step()`` — a :class:`Counter` as a context."""
    with Counter(label, total, console) as c:
        yield c.advance


def track(items: Sequence[T], label: str, console: Console | None = None) -> Iterator[T]:
    """Iterate ``items`` with a :class:`Counter`."""
    with Counter(label, len(items), console) as c:
        for item in items:
            yield item
            c.advance()
