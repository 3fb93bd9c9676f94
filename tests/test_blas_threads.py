"""The probe fits' BLAS thread policy (aarlab.testbed.blas): one thread unless the user chose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, numpy as np
from threadpoolctl import threadpool_info
from aarlab.testbed.models import ProbeHead
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 16)); y = (X[:, 0] > 0).astype(float)
ProbeHead().fit(X, y)
print(json.dumps(sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})))
"""


def blas_threads_after_fit(env: dict[str, str]) -> list[int]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    base.pop("AARLAB_BLAS_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_fit_limits_blas_to_one_thread_by_default() -> None:
    assert blas_threads_after_fit({}) == [1]


def test_the_setting_picks_the_count() -> None:
    assert blas_threads_after_fit({"AARLAB_BLAS_THREADS": "3"}) == [3]


@pytest.mark.parametrize("var", ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"])
def test_an_explicit_thread_variable_wins(var: str) -> None:
    assert blas_threads_after_fit({var: "2"}) == [2]
