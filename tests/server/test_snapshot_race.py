"""Agents that upload the same method at the same moment all get its sha256 (the code store is content-
addressed): the second writer of a snapshot row must not turn into a server error."""

from __future__ import annotations

import io
import tarfile
from concurrent.futures import ThreadPoolExecutor

from aarlab.api.schemas import SnapshotOut
from conftest import AgentFactory


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        body = b"def run(ctx):\n    return None\n"
        info = tarfile.TarInfo("method.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_concurrent_uploads_of_the_same_bytes(make_agent: AgentFactory) -> None:
    clients = [make_agent(f"agent{k}") for k in range(8)]
    data = _tar()
    with ThreadPoolExecutor(len(clients)) as pool:
        outs: list[SnapshotOut] = list(pool.map(lambda c: c.put_snapshot(data), clients * 3))
    assert {o.sha256 for o in outs} == {outs[0].sha256} and all(o.size == len(data) for o in outs)
    assert clients[0].get_snapshot(outs[0].sha256) == data
