"""Both executors run the same sandboxed jobs and return the same results, in order."""

from __future__ import annotations

import os

import pytest

from aarlab.testbed.errors import UnknownNameError
from aarlab.verify.executors import get_executor
from aarlab.verify.probes import echo_job


@pytest.fixture(params=["local", "ray"])
def executor(request, monkeypatch):  # type: ignore[no-untyped-def]
    if request.param == "ray":
        pytest.importorskip("ray", reason="ray is not installed")
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        os.environ["RAY_AUTH_MODE"] = "disabled"
    ex = get_executor(request.param, num_cpus=2, workers=2)
    yield ex
    ex.close()


def test_same_results_in_order(executor, tmp_path):
    results = executor.map(echo_job, [(str(tmp_path), i) for i in range(4)])
    assert [r[1] for r in results] == [0, 10, 20, 30]
    assert all(r[0] == "ok" for r in results)


def test_unknown_executor():
    with pytest.raises(UnknownNameError, match="unknown executor 'slurm'"):
        get_executor("slurm")
