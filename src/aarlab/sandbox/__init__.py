"""The confinement layer every run of submitted code goes through (public facade).

Verification runs, each ablation, each transfer-gate suite and the agents' shell build a
:class:`Confinement` and run through :func:`run_confined`; there is one place to get isolation right.
"""

from aarlab.sandbox.namespaces import (
    INSECURE_ENV,
    Bind,
    Confinement,
    SandboxUnavailable,
    confined_argv,
    insecure_allowed,
    namespace_support,
    require_confinement,
)
from aarlab.sandbox.process import Limits, ProcessOutcome, apply_limits, run_confined, scrubbed_env

__all__ = [
    "INSECURE_ENV",
    "Bind",
    "Confinement",
    "Limits",
    "ProcessOutcome",
    "SandboxUnavailable",
    "apply_limits",
    "confined_argv",
    "insecure_allowed",
    "namespace_support",
    "require_confinement",
    "run_confined",
    "scrubbed_env",
]
