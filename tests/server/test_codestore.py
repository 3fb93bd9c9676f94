"""Code store: safe extraction, immutability, and the S3 backend against a local moto server."""

from __future__ import annotations

import io
import tarfile

import pytest

from aarlab.api.archive import UnsafeArchiveError, pack_folder, safe_extract, validate_archive
from aarlab.server.codestore import CodeStore


def _tar(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.size = kind, linkname, 1 if kind == tarfile.REGTYPE else 0
    return m


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        (_member("/etc/evil"), "absolute"),
        (_member("a/../../evil"), "'..'"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_member("hard", tarfile.LNKTYPE, "method.py"), "link"),
        (_member("dev", tarfile.CHRTYPE), "device"),
        (_member("fifo", tarfile.FIFOTYPE), "device"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path, member, fragment):
    data = _tar(_member("method.py"), member)
    with pytest.raises(UnsafeArchiveError, match=fragment):
        validate_archive(data)
    with pytest.raises(UnsafeArchiveError, match=fragment):
        safe_extract(data, tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*"))
    assert not (tmp_path / "evil").exists()


def test_pack_and_extract_round_trip(tmp_path):
    src = tmp_path / "m"
    (src / "pkg").mkdir(parents=True)
    (src / "method.py").write_text("def run(ctx): ...\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    (src / "link.py").symlink_to(src / "method.py")  # links are left out when packing
    data = pack_folder(src)
    assert data == pack_folder(src)  # deterministic: same folder, same sha
    written = safe_extract(data, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["method.py", "pkg/util.py"]


def test_local_store_is_content_addressed(tmp_path):
    store = CodeStore(str(tmp_path / "code"))
    data = _tar(_member("method.py"))
    sha = store.put(data)
    assert store.put(data) == sha and store.get(sha) == data and store.exists(sha)
    (tmp_path / "code" / sha[:2] / f"{sha}.tar.gz").write_bytes(b"tampered")
    with pytest.raises(Exception, match="corrupt"):
        store.get(sha)


@pytest.fixture(scope="module")
def moto_s3() -> object:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_store_against_moto(moto_s3, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket="aarlab-code")
    store = CodeStore("s3://aarlab-code/snapshots", {"endpoint_url": moto_s3, "skip_instance_cache": "true"})
    data = _tar(_member("method.py"))
    sha = store.put(data)
    assert store.exists(sha) and store.get(sha) == data and store.put(data) == sha
    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=moto_s3).list_objects_v2(Bucket="aarlab-code")["Contents"]
    ]
    assert keys == [f"snapshots/{sha[:2]}/{sha}.tar.gz"]
