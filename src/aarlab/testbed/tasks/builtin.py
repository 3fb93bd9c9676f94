"""Importing this module registers every built-in task."""

from aarlab.testbed.tasks import truth_cities  # noqa: F401
