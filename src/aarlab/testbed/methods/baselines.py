"""Importing this module registers every built-in baseline method."""

from aarlab.testbed.methods import (  # noqa: F401
    bootstrap,
    confident,
    logconf,
    prior_consistency,
    probe_relabel,
    vanilla,
)
