"""``execute_runs``: bundles written ahead by one trusted thread, children one at a time, each child bound to
its own bundle only, and no bundle left behind, whatever fails."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aarlab.testbed.bundle import WEAK
from aarlab.testbed.schema import PairwiseRecord
from aarlab.verify import execute
from aarlab.verify.execute import MethodRun, execute_runs
from aarlab.verify.sandbox import Limits, SandboxOutcome


@pytest.fixture(autouse=True)
def method_dir(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    return tmp_path / "m"


def _runs(n: int) -> list[MethodRun]:
    recs = [PairwiseRecord(id=f"r{i}", prompt=f"q{i}", first="a", second="b", label="A") for i in range(8)]
    feats = np.ones((16, 4), dtype=np.float32)
    return [
        MethodRun(f"run{k}", k, {"schema": "pairwise"}, recs, np.full(8, 0.7), recs, feats, np.full(16, 0.6))
        for k in range(n)
    ]


def test_children_run_one_at_a_time_each_on_its_own_bundle(tmp_path, monkeypatch):
    active, seen, lock = [0], [], threading.Lock()

    def fake_run(entry: str, kwargs: dict[str, Any], *, binds, **_: Any) -> SandboxOutcome:
        with lock:
            active[0] += 1
            assert active[0] == 1  # never two children at once
        bundle = Path(binds[1].source)
        assert (bundle / WEAK).is_file()  # written before its child starts
        seen.append(bundle)
        with lock:
            active[0] -= 1
        return SandboxOutcome("ok", "", result={}, seconds=0.0)

    monkeypatch.setattr(execute, "run_sandboxed", fake_run)
    out = execute_runs(_runs(5), tmp_path / "m", None, tmp_path / "w", limits=Limits())
    assert sorted(out) == [f"run{k}" for k in range(5)]
    assert len(set(seen)) == 5  # a fresh folder per child
    assert all(r.status == "error" for r in out.values())  # {} is no predictions: refused, not scored
    assert list((tmp_path / "w").iterdir()) == []  # every bundle removed


def test_a_failure_leaves_no_bundle_behind(tmp_path, monkeypatch):
    calls = [0]

    def failing_run(*_: Any, **__: Any) -> SandboxOutcome:
        calls[0] += 1
        raise RuntimeError("the sandbox broke")

    monkeypatch.setattr(execute, "run_sandboxed", failing_run)
    with pytest.raises(RuntimeError, match="sandbox broke"):
        execute_runs(_runs(5), tmp_path / "m", None, tmp_path / "w", limits=Limits())
    assert calls[0] == 1 and list((tmp_path / "w").iterdir()) == []  # bundles written ahead are gone too

    real_write = execute.write_bundle
    writes = [0]

    def failing_write(*args: Any, **kwargs: Any):
        writes[0] += 1
        if writes[0] == 3:
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(execute, "write_bundle", failing_write)
    monkeypatch.setattr(execute, "run_sandboxed", lambda *a, **k: SandboxOutcome("ok", "", result={}))
    with pytest.raises(OSError, match="disk full"):
        execute_runs(_runs(5), tmp_path / "m", None, tmp_path / "w2", limits=Limits())
    assert list((tmp_path / "w2").iterdir()) == []
