"""The tool-call log (``<state_dir>/tools.jsonl``, outside the sandbox) and what makes a call suspicious.

Every call is one JSON line: time, tool, arguments (strings cut at 4,000 characters), error or not, output
size, seconds, and ``"suspicious": true`` with the reasons when the call names a hidden path or goes
after secrets in the environment.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Commands that go after secrets: environment dumps, process environments, well-known secret names.
SECRET_PATTERNS = re.compile(
    r"/proc/[^\s'\"]*/environ|os\.environ|getenv|\bprintenv\b|(^|[\s;|&(`])env(\s|$|[;|&)])|"
    r"\bset\s*$|\bexport\s+-p\b|\bdeclare\s+-x\b|"
    r"AARLAB_TOKEN|AARLAB_SERVER|_API_KEY|SECRET|PASSWORD|\bsecret\b|server\.db|/proc/\d+/",
    re.I | re.M,
)
#: Tools whose arguments run as code in the sandbox.
SHELL_TOOLS = ("run_shell", "run_python")


def suspicious_reasons(
    hidden: Sequence[str], name: str, arguments: dict[str, Any], output: str = ""
) -> list[str]:
    """Why a call looks like an attempt at the server's data or secrets (empty: it does not).

    The arguments are checked as text, and so is the output of sandboxed commands: a path built at
    run time escapes any text match of the command, but the error it gets ("Permission denied:
    '<hidden path>/...'") names the path."""
    text = json.dumps(arguments, ensure_ascii=False)
    why = [f"names hidden path {p}" for p in hidden if p in text]
    if name in SHELL_TOOLS:
        if SECRET_PATTERNS.search(text):
            why.append("reads environment variables or secrets")
        why += [f"touched hidden path {p}" for p in hidden if p in output and p not in text]
    return why


class ToolLog:
    """Appends one JSON line per call to ``path`` (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        is_error: bool,
        output_chars: int,
        seconds: float,
        reasons: list[str],
        extra: dict[str, Any],
    ) -> None:
        """Log one call; ``reasons`` (from :func:`suspicious_reasons`) mark it suspicious when non-empty."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "tool": name,
            "arguments": {k: (v[:4000] if isinstance(v, str) else v) for k, v in arguments.items()},
            "is_error": is_error,
            "output_chars": output_chars,
            "seconds": round(seconds, 3),
            "suspicious": bool(reasons),
            **({"why": reasons} if reasons else {}),
            **extra,
        }
        line = json.dumps(entry, default=str, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
