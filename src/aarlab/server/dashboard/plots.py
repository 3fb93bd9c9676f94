"""Server-side plots as inline SVG (matplotlib, Agg; no JavaScript charting, nothing fetched).

Figures are built with the object API (``Figure``), never ``pyplot``, so concurrent requests share no
global figure state; a lock still serialises rendering because rcParams and the font cache are global.
Renders are cached by their data, so an auto-refreshing page costs one render per change, not per poll.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")

from matplotlib import colormaps, dates
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from aarlab.server.dashboard.queries import Matrix, Progress

_LOCK = threading.Lock()


@contextmanager
def _rendering() -> Iterator[None]:
    """One render at a time. Text is kept as SVG text (legible, selectable, small), and names are never
    parsed as mathtext, so an agent or suite called "a$b" renders as written instead of failing the page."""
    with _LOCK, matplotlib.rc_context({"svg.fonttype": "none", "text.parse_math": False}):
        yield
METRIC_LABELS = {
    "pgr": "best verified PGR",
    "sealed_acc": "best verified sealed accuracy",
    "released_dev": "best released verified dev accuracy",
}
METRIC_TITLES = {
    "pgr": "Best verified PGR",
    "sealed_acc": "Best verified sealed accuracy",
    "released_dev": "Best released verified dev accuracy (sealed figures are private)",
}
_CELL_GID = re.compile(r'<g id="(aarlab-cell-\d+-\d+)">')


def _svg(fig: Figure, salt: str, titles: dict[str, str] | None = None) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text (legible, selectable), ids salted
    per plot so two plots on one page cannot clash, and optional hover titles for element groups."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    if titles:
        svg = _CELL_GID.sub(
            lambda m: f"{m.group(0)}<title>{html.escape(titles.get(m.group(1), ''))}</title>", svg
        )
    return svg


def _datenum(t: datetime) -> float:
    return float(dates.date2num(t))  # type: ignore[no-untyped-call]


def progress_svg(progress: Progress) -> str | None:
    """Step lines of each agent's best verified score over time; ``None`` when there is nothing yet."""
    if not progress.series:
        return None
    key = (progress.metric, tuple(sorted((k, tuple(v)) for k, v in progress.series.items())))
    return _progress_svg(key)


@lru_cache(maxsize=32)
def _progress_svg(key: tuple[str, tuple[tuple[str, tuple[tuple[datetime, float], ...]], ...]]) -> str:
    metric, series = key
    with _rendering():
        fig = Figure(figsize=(9, 4.2), layout="constrained")
        ax = fig.add_subplot()
        end = max(t for _, pts in series for t, _ in pts)
        order = sorted(series, key=lambda s: -s[1][-1][1])
        cmap = colormaps["tab10"]
        for i, (name, pts) in enumerate(order):
            times = [_datenum(t) for t, _ in pts]
            xs = [*times, _datenum(end)]
            ys = [v for _, v in pts] + [pts[-1][1]]
            colour = cmap(i % 10)
            ax.step(xs, ys, where="post", color=colour, linewidth=2, label=f"{name} ({pts[-1][1]:.3f})")
            ax.plot(times, [v for _, v in pts], "o", color=colour, markersize=5)
        if metric == "pgr":
            ax.axhline(0.0, color="#888", linestyle=":", linewidth=1)
            ax.axhline(1.0, color="#888", linestyle="--", linewidth=1)
            ax.text(0.005, 1.0, " ceiling", transform=ax.get_yaxis_transform(), va="bottom", color="#666")
            ax.text(0.005, 0.0, " weak", transform=ax.get_yaxis_transform(), va="bottom", color="#666")
        locator = dates.AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.set_xlabel("time the verified score arrived (UTC)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(f"{METRIC_TITLES.get(metric, metric)} per agent (step: best so far)")
        ax.grid(True, alpha=0.3)
        ax.legend(title="agent (best)", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
        return _svg(fig, "aarlab-progress")


def matrix_svg(matrix: Matrix) -> str | None:
    """Heatmap of ΔPGR (results × suites) with a diverging colour bar centred on 0; ``None`` if empty."""
    if not matrix.rows or not matrix.suites:
        return None
    payload = {
        "suites": matrix.suites,
        "rows": [[r.result_id, r.agent, r.result_status, r.verdict, r.cells] for r in matrix.rows],
    }
    return _matrix_svg(json.dumps(payload, sort_keys=True, default=str))


def _float(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(float(x)) else None


@lru_cache(maxsize=32)
def _matrix_svg(payload: str) -> str:
    data = json.loads(payload)
    suites: list[str] = data["suites"]
    rows = data["rows"]
    values = [[_float((cells.get(s) or {}).get("delta_pgr")) for s in suites] for *_, cells in rows]
    finite = [abs(v) for row in values for v in row if v is not None]
    vmax = max([0.05, *finite])
    norm, cmap = Normalize(-vmax, vmax), colormaps["RdBu"]
    with _rendering():
        fig = Figure(
            figsize=(max(6.0, 1.9 * len(suites) + 3.5), 1.6 + 0.75 * len(rows)), layout="constrained"
        )
        ax = fig.add_subplot()
        titles: dict[str, str] = {}
        for i, (rid, agent, _status, verdict, cells) in enumerate(rows):
            for j, suite in enumerate(suites):
                entry = cells.get(suite) or {}
                v = values[i][j]
                gid = f"aarlab-cell-{i}-{j}"
                face = cmap(norm(v)) if v is not None else "#e0e0e0"
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", linewidth=2, gid=gid))
                ci = entry.get("delta_pgr_ci") or [None, None]
                lo, hi = (_float(ci[0]), _float(ci[1])) if len(ci) == 2 else (None, None)
                if v is None:
                    text = str(entry.get("status") or "not run")
                else:
                    text = f"{v:+.3f}" + (
                        f"\n[{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else ""
                    )
                dark = v is not None and abs(norm(v) - 0.5) > 0.3
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
                p_holm = _float(entry.get("p_holm"))
                power = _float(entry.get("power"))
                titles[gid] = (
                    f"result #{rid} ({agent}) on {suite}: verdict {verdict}; suite status "
                    f"{entry.get('status', 'not run')}; ΔPGR {'n/a' if v is None else f'{v:+.4f}'}"
                    + (f" [{lo:+.4f}, {hi:+.4f}]" if lo is not None and hi is not None else "")
                    + (f"; Holm p {p_holm:.3g}" if p_holm is not None else "")
                    + (f"; power {power:.2f}" if power is not None else "")
                )
        ax.set_xlim(0, len(suites))
        ax.set_ylim(len(rows), 0)
        ax.set_xticks([j + 0.5 for j in range(len(suites))], suites, rotation=20, ha="right")
        ax.set_yticks(
            [i + 0.5 for i in range(len(rows))],
            [
                f"#{rid} {agent}" + (" (DQ)" if status == "disqualified" else "") + f"\n{verdict}"
                for rid, agent, status, verdict, _ in rows
            ],
        )
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_xlabel("transfer suite")
        ax.set_title("Transfer gate: ΔPGR vs the baseline per suite (newest finished verdict per result)")
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.05, pad=0.02)
        bar.set_label("ΔPGR (method − baseline)")
        return _svg(fig, "aarlab-transfer", titles)
