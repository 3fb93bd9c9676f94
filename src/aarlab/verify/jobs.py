"""Trusted entry functions that run *inside* the sandbox child (after the audit hook is on).

They load the method from the snapshot folder and run it on a label-free bundle through the ordinary
method contract. The child cannot tell a real run from an ablation: every run gets the same paths
(``/sandbox/method``, ``/sandbox/bundle``), the same manifest and the same arguments; the ablated
teacher or student is already in the bundle the trusted parent wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aarlab.testbed.bundle import load_bundle, run_method_on_bundle


def method_job(bundle: str, method: str, config: dict[str, Any] | None, seed: int) -> dict[str, float]:
    """Predictions {bundle id: P(True)} of the method on the bundle."""
    return run_method_on_bundle(load_bundle(Path(bundle)), method, config, seed=seed)[0]
