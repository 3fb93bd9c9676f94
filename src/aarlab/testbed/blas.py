"""One BLAS thread per process for probe fits, unless the user chose otherwise.

A probe fit is a few thousand rows of 384–1,024 features: multi-threaded BLAS buys little there, and
where the cores are shared (N agents, verification workers, a test run beside them) OpenBLAS threads
spin against each other. Measured on 2 cores (``bench/throughput.py``'s machine), three newton-cg
logistic fits of 1,200 × 768 beside two busy processes: 0.10–0.13 s with one BLAS thread against
0.54–0.61 s with two; during a ``pip install`` beside them, 0.06–0.14 s against 1.75–2.57 s. On a quiet
machine the two are within noise. Source of the remedy: threadpoolctl
(scikit-learn's own way to limit native thread pools at run time).

The limit is set once per process, at the first fit, and never restored (restoring from one thread
while another fits would race). ``AARLAB_BLAS_THREADS=0`` leaves BLAS as it is; an explicit
``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` wins over the setting.
"""

from __future__ import annotations

import os
import threading

from aarlab.config import get_settings

#: Environment variables that are an explicit thread choice of whoever started the process.
EXPLICIT = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_lock = threading.Lock()
_done = False
_limiter: object | None = None  # kept alive: the limit stays for the life of the process


def limit_blas_threads() -> int | None:
    """Apply the process's BLAS thread limit once; returns the limit set (``None``: left as it is)."""
    global _done, _limiter
    with _lock:
        if _done:
            return None
        _done = True
        n = get_settings().blas_threads
        if n <= 0 or any(os.environ.get(k) for k in EXPLICIT):
            return None
        from threadpoolctl import threadpool_limits

        _limiter = threadpool_limits(limits=n, user_api="blas")
        return n
