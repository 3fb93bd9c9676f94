"""Shared fixtures: an isolated AARLAB_HOME per test session, and a tiny real task.

The tiny task is a real truth-cities pool (170 cities + 20 capitals, 380 statements) encoded with the
default pair (MiniLM-L6 → mpnet; ~10 s once per session), so every baseline runs end to end in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aarlab.config import get_settings


@pytest.fixture(scope="session", autouse=True)
def aarlab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """All caches of this test session live in one temp dir (features are encoded once per session)."""
    home = tmp_path_factory.mktemp("aarlab-home")
    old = os.environ.get("AARLAB_HOME")
    os.environ["AARLAB_HOME"] = str(home)
    get_settings.cache_clear()
    yield home
    if old is None:
        os.environ.pop("AARLAB_HOME", None)
    else:
        os.environ["AARLAB_HOME"] = old
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def tiny_task():  # type: ignore[no-untyped-def]
    from aarlab.testbed.tasks import Task, TaskSpec
    from aarlab.testbed.tasks.truth_cities import TRUTH_HYPOTHESES, build_truth_cities

    records = build_truth_cities(n_cities=170, n_capitals=20)
    spec = TaskSpec(
        name="tiny-cities",
        description="test",
        schema="single",
        build=lambda: records,
        weak="minilm-l6",
        strong="mpnet",
        prior_hypotheses=TRUTH_HYPOTHESES,
    )
    return Task(name="tiny-cities", schema="single", records=records, spec=spec)


@pytest.fixture(scope="session")
def tiny_prepared(tiny_task):  # type: ignore[no-untyped-def]
    from aarlab.testbed.pipeline import prepare

    return prepare(tiny_task, show_progress=False)
