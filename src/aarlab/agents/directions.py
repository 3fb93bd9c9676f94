"""Built-in research directions: distinct starting points in the ``compose`` method space.

Each direction names the :class:`~aarlab.testbed.methods.compose.ComposeConfig` axes it explores and
the config it starts from. The offline ``search`` researcher mutates only its direction's axes, so
agents given different directions explore different parts of the space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from aarlab.registry import Registry


@dataclass(frozen=True)
class Axis:
    """One ComposeConfig field and the range the search samples it from (inside the field's bounds)."""

    name: str
    kind: Literal["float", "int", "choice"]
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()
    log: bool = False

    def sample(self, rng: np.random.Generator, current: Any) -> Any:
        """A new value for this axis, different from ``current`` where the axis allows it."""
        if self.kind == "choice":
            options = [c for c in self.choices if c != current] or list(self.choices)
            return options[int(rng.integers(len(options)))]
        if self.kind == "int":
            options_i = [v for v in range(int(self.low), int(self.high) + 1) if v != current]
            return options_i[int(rng.integers(len(options_i)))] if options_i else int(self.low)
        if self.log:
            value = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        else:
            value = float(rng.uniform(self.low, self.high))
        return float(f"{value:.3g}")


#: Every searchable ComposeConfig field with a sampling range inside its validation bounds.
AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("targets", "choice", choices=("hard", "soft", "sharpen")),
        Axis("temperature", "float", 0.1, 3.0, log=True),
        Axis("prior_weight", "float", 0.0, 2.0),
        Axis("keep_fraction", "float", 0.4, 1.0),
        Axis("relabel", "choice", choices=("none", "oof-filter", "oof-relabel", "product", "em")),
        Axis("folds", "int", 2, 6),
        Axis("margin", "float", 0.0, 0.45),
        Axis("rounds", "int", 1, 4),
        Axis("weighting", "choice", choices=("none", "confidence")),
        Axis("weight_power", "float", 0.25, 3.0, log=True),
        Axis("aux_alpha", "float", 0.0, 0.75),
        Axis("aux_rounds", "int", 1, 6),
        Axis("head", "choice", choices=("logistic", "mlp")),
        Axis("C", "float", 0.001, 10.0, log=True),
        Axis("consistency", "choice", choices=("none", "exclusive", "answer")),
    )
}


@dataclass(frozen=True)
class Direction:
    """A starting direction: what it tries, which axes it mutates and the config it starts from."""

    name: str
    summary: str
    axes: tuple[str, ...]
    start: dict[str, Any] = field(default_factory=dict)


#: The built-in directions by name.
REGISTRY: Registry[Direction] = Registry("direction")

#: The built-in directions, in the order agents are given them (each is registered in ``REGISTRY``).
DIRECTIONS: tuple[Direction, ...] = (
    Direction(
        "strong-prior",
        "Elicit the strong model's own prior (zero-shot) and mix it with the teacher; test-time consistency.",
        ("prior_weight", "consistency", "targets"),
        {"targets": "soft", "prior_weight": 0.5},
    ),
    Direction(
        "reweighting",
        "Down-weight examples the teacher is unsure about (confidence weights and their sharpness).",
        ("weighting", "weight_power", "targets"),
        {"targets": "soft", "weighting": "confidence", "weight_power": 1.0},
    ),
    Direction(
        "noisy-channel-em",
        "Model the teacher as a noisy channel and recover the true labels with EM on out-of-fold beliefs.",
        ("relabel", "rounds", "folds"),
        {"targets": "soft", "relabel": "em", "rounds": 2, "folds": 4},
    ),
    Direction(
        "distillation",
        "Distillation tricks: hard vs soft vs sharpened targets, temperature, auxiliary self-confidence.",
        ("targets", "temperature", "aux_alpha", "aux_rounds"),
        {"targets": "sharpen", "temperature": 0.5},
    ),
    Direction(
        "simplicity-bias",
        "Keep the student simple so it cannot imitate the teacher's errors: regularisation and head.",
        ("C", "head"),
        {"targets": "soft", "C": 0.003},
    ),
    Direction(
        "data-selection",
        "Train only on the teacher's confident examples and drop the ones out-of-fold students dispute.",
        ("keep_fraction", "relabel", "margin", "folds"),
        {"targets": "soft", "keep_fraction": 0.7, "relabel": "oof-filter", "margin": 0.2},
    ),
    Direction(
        "evolutionary",
        "Evolutionary search over every axis of the compose space.",
        tuple(AXES),
        {"targets": "soft"},
    ),
    Direction(
        "representation-probes",
        "Probe the strong representation with different heads and capacities.",
        ("head", "C"),
        {"targets": "hard", "head": "mlp", "C": 0.1},
    ),
)


for _direction in DIRECTIONS:
    REGISTRY.register(_direction.name, _direction)


def direction_names() -> list[str]:
    """The built-in direction names, in the order agents are given them."""
    return [d.name for d in DIRECTIONS]


def get_direction(name: str) -> Direction:
    """The built-in direction called ``name`` (raises ``UnknownNameError``, listing the choices)."""
    return REGISTRY.get(name)
