"""Importing this module registers every built-in task."""

from aarlab.testbed.tasks import (
    champ_math,  # noqa: F401
    humaneval_code,  # noqa: F401
    reference,  # noqa: F401
    truth_cities,  # noqa: F401
)
