"""User-facing errors. Each message says what was wrong and how to fix it; the CLI prints them plainly."""

from __future__ import annotations


class AarlabError(Exception):
    """Base class for errors caused by the user's input or environment (not bugs)."""


class DataFormatError(AarlabError):
    """A data file is malformed; the message names the file, line and field."""


class UnknownNameError(AarlabError, KeyError):
    """A task, encoder or method name is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class GapNotResolvableError(AarlabError):
    """ceiling − weak is inside seed noise, so a PGR would be meaningless."""


class OfflineModelError(AarlabError):
    """A model is not available offline; the message names the package or command that provides it."""


def unknown(kind: str, name: str, known: list[str]) -> UnknownNameError:
    """Build an UnknownNameError that lists what *is* available."""
    return UnknownNameError(f"unknown {kind} {name!r}; available: {', '.join(sorted(known)) or '(none)'}")
