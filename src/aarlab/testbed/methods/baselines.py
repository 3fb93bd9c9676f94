"""Importing this module registers every built-in method; ``BASELINES`` are the reference ones."""

from aarlab.testbed.methods import (  # noqa: F401
    bootstrap,
    compose,
    confident,
    critic,
    logconf,
    prior_consistency,
    probe_relabel,
    vanilla,
)

#: The reference baselines every report shows (``compose`` is the search space; ``critic`` needs ``lm``).
BASELINES = [
    "vanilla-hard",
    "vanilla-soft",
    "confident",
    "logconf",
    "bootstrap-product",
    "probe-relabel",
    "prior-consistency",
]
