"""Report an exception raised by a method's own code: its frames, not aarlab's.

A method that raises deep inside the pipeline would otherwise print a long traceback through aarlab's
internals; the author needs the frames of *their* files (the method file and its folder) and one line
saying what aarlab was doing when it called them.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from aarlab.testbed.errors import AarlabError

#: The most method frames shown (the innermost ones).
MAX_FRAMES = 12


class MethodFailedError(AarlabError):
    """The method's own code raised; the message holds its frames and one line of context.

    ``original`` is the exception the method raised (also chained as ``__cause__``).
    """

    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


_PACKAGE = Path(__file__).resolve().parents[2]


def is_user_method(source: str) -> bool:
    """Whether a method's source file is the user's (not one of aarlab's built-in methods)."""
    return bool(source) and not Path(source).resolve().is_relative_to(_PACKAGE)


def method_frames(exc: BaseException, source: str) -> list[traceback.FrameSummary]:
    """The traceback frames of ``exc`` that lie in the method's folder (``source``: its file)."""
    folder = Path(source).resolve().parent if source else None
    frames = traceback.extract_tb(exc.__traceback__)
    if folder is None:
        return []
    return [f for f in frames if Path(f.filename).resolve().is_relative_to(folder)]


def method_failed(name: str, source: str, exc: BaseException, doing: str) -> MethodFailedError:
    """A MethodFailedError for ``exc`` raised by method ``name`` (file ``source``) while aarlab was
    ``doing`` something (one line, e.g. "running it on seed 0 of task 'x'")."""
    frames = method_frames(exc, source)[-MAX_FRAMES:]
    what = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    lines = [f"method {name!r} raised {what}"]
    if frames:
        lines.append("Traceback (the method's own frames, most recent call last):")
        lines.extend(s.rstrip("\n") for s in traceback.format_list(frames))
    lines.append(f"(aarlab: raised while {doing})")
    return MethodFailedError("\n".join(lines), exc)
