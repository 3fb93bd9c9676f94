"""The method contract: ``run(ctx) -> test probabilities``.

``MethodContext`` is everything a method may touch. By construction it holds no label: the weak
teacher's soft labels on ``unlabeled``, label-free inputs, the strong student, the seed, groups and the
method's validated config. The pipeline (and the server) keep labels elsewhere; a test walks the
context's whole object graph to prove no label is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from pydantic import BaseModel

from aarlab.testbed.models import StudentModel
from aarlab.testbed.schema import Inputs

C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True)
class WeakLabels:
    """The weak teacher's output: P(label = True) for every ``ctx.unlabeled`` item, in order."""

    proba: np.ndarray

    @property
    def hard(self) -> np.ndarray:
        return (self.proba > 0.5).astype(float)


@dataclass
class MethodContext(Generic[C]):
    """What a W2S method receives. Nothing here can reach a ground-truth label."""

    weak: WeakLabels
    unlabeled: Inputs
    test: Inputs
    strong: StudentModel
    seed: int
    config: C
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> list[str | None]:
        """Consistency groups of ``unlabeled`` items (candidates of one question share a group)."""
        return self.unlabeled.groups

    @property
    def rng(self) -> np.random.Generator:
        """A generator seeded from ``ctx.seed`` (each access restarts it, for reproducibility)."""
        return np.random.default_rng(self.seed)

    def log(self, **values: Any) -> None:
        """Record diagnostics (label-free numbers) that the pipeline reports with the run."""
        self.notes.update(values)
