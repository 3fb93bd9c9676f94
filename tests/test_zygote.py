"""The zygote (issue #16): a run forked from a preloaded zygote is as confined as an exec'd one, gives the
same results, and every failure of the zygote ends on the exec path, never unconfined."""

from __future__ import annotations

import pytest

from aarlab.sandbox import zygote_client as zc
from aarlab.sandbox.namespaces import namespace_support
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.sandbox import SANDBOX, Limits, run_sandboxed

pytestmark = pytest.mark.skipif(bool(namespace_support()), reason="kernel confinement unavailable")


@pytest.fixture(autouse=True)
def fresh_zygote(monkeypatch):
    monkeypatch.delenv(zc.ZYGOTE_ENV, raising=False)
    zc.shutdown()
    yield
    zc.shutdown()


def _run(entry: str, limits: Limits | None = None, **kwargs):
    policy = AuditPolicy(sandbox=SANDBOX, read_roots=default_read_roots())
    return run_sandboxed(
        f"aarlab.verify.probes:{entry}", kwargs, binds=(), policy=policy, limits=limits or Limits(wall_s=60)
    )


def _zygote_pid() -> int | None:
    return zc._zygote.proc.pid if zc._zygote is not None and zc._zygote.alive() else None


def test_runs_through_the_zygote_and_gives_the_same_result_as_exec(monkeypatch):
    out = _run("echo", value={"a": [1, 2]})
    assert out.status == "ok" and out.result == {"a": [1, 2]}, out.detail
    assert _zygote_pid() is not None
    monkeypatch.setenv(zc.ZYGOTE_ENV, "0")
    ref = _run("echo", value={"a": [1, 2]})
    assert ref.status == "ok" and ref.result == out.result
