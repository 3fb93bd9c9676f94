"""Bad input never crashes or lies: empty and non-UTF-8 split files, duplicate ids, overlap between
splits, and CLI paths that used to end in a traceback or in silent success (issue 15)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.server.app import create_app
from aarlab.server.auth import add_agent
from aarlab.server.datadir import init_task, task_dir
from aarlab.server.db import session_scope
from aarlab.server.settings import ServerSettings
from aarlab.testbed.errors import DataFormatError
from aarlab.testbed.loader import read_jsonl
from aarlab.testbed.split_checks import MAX_TEST_TEXT_OVERLAP
from aarlab.testbed.tasks import load_task

runner = CliRunner()


def rec(i: int, *, label: bool | None = None, id: str | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "question": f"Is city {i} in country {i % 7}?",
        "choice": "yes" if i % 2 else "no",
        "label": bool(i % 3) if label is None else label,
    }
    if id is not None:
        out["id"] = id
    return out | kw


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task_dir_with(root: Path, **splits: list[dict[str, Any]]) -> Path:
    """A reference-format directory: 30 / 30 / 30 distinct records unless a split is given."""
    default = {
        "train_label": [rec(i) for i in range(0, 30)],
        "train_unlabel": [rec(i) for i in range(30, 60)],
        "test": [rec(i) for i in range(60, 90)],
    }
    for name, rows in (default | splits).items():
        write(root / f"{name}.jsonl", rows)
    return root


def invoke(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    text = res.output  # stdout and stderr
    assert "Traceback (most recent call last)" not in text, text
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, text


# --- split files ---


def test_empty_split_file_is_refused_naming_it(tmp_path: Path) -> None:
    d = task_dir_with(tmp_path / "t", test=[])
    with pytest.raises(DataFormatError, match=r"test.jsonl: no records \(the file is empty\)"):
        load_task(str(d))
    code, out = invoke("server", "init-task", "--data-dir", str(tmp_path / "data"), "--task", str(d))
    assert code == 2 and "test.jsonl: no records" in out
    assert not (tmp_path / "data").exists()  # nothing half-written, not even the secret


def test_non_utf8_file_names_the_file_and_the_encoding(tmp_path: Path) -> None:
    d = task_dir_with(tmp_path / "t")
    bad = d / "train_unlabel.jsonl"
    rows = [json.dumps(rec(i)) for i in range(30, 33)]
    rows[2] = json.dumps(rec(32) | {"question": "Is São Paulo in Brazil?"}, ensure_ascii=False)
    bad.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(DataFormatError) as err:
        read_jsonl(bad)
    msg = str(err.value)
    assert f"{bad}:3:" in msg and "not UTF-8" in msg and "Latin-1" in msg and "iconv" in msg
    code, out = invoke("server", "init-task", "--data-dir", str(tmp_path / "data"), "--task", str(d))
    assert code == 2 and "train_unlabel.jsonl:3" in out and "not UTF-8" in out
    # a UTF-8 byte-order mark is fine
    bom = write(tmp_path / "bom.jsonl", [rec(1)])
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    assert len(read_jsonl(bom)[1]) == 1


def test_duplicate_ids_are_refused_by_init_task(tmp_path: Path) -> None:
    rows = [rec(i, id=f"r{i}") for i in range(60, 90)]
    rows[5]["id"] = rows[4]["id"] = "r64"
    rows[9]["id"] = "r60"  # 30 records, 28 unique ids
    d = task_dir_with(tmp_path / "t", test=rows)
    code, out = invoke("server", "init-task", "--data-dir", str(tmp_path / "data"), "--task", str(d))
    assert code == 2 and "test.jsonl: 2 id(s) appear more than once" in out and "28 unique ids of 30" in out
    assert "'r60'" in out
    # an id shared by two splits is refused too
    d2 = task_dir_with(
        tmp_path / "t2",
        train_label=[rec(i, id=f"x{i}") for i in range(30)],
        test=[rec(i, id=f"x{i - 60}") for i in range(60, 90)],
    )
    with pytest.raises(DataFormatError, match=r"id 'x0' is in both train_label.jsonl and test.jsonl"):
        load_task(str(d2))


def test_test_split_identical_to_train_unlabel_is_refused(tmp_path: Path) -> None:
    same = [rec(i) for i in range(30, 60)]
    d = task_dir_with(tmp_path / "t", test=same)
    with pytest.raises(DataFormatError, match="test.jsonl has the same texts as train_unlabel.jsonl"):
        load_task(str(d))
    code, out = invoke("baseline", "--task", str(d), "--seeds", "1", "--weak", "tfidf", "--strong", "tfidf")
    assert code == 2 and "same texts as train_unlabel.jsonl" in out and "PGR" in out


def test_partial_overlap_refused_above_the_limit_and_warned_below(tmp_path: Path) -> None:
    n_big = int(30 * MAX_TEST_TEXT_OVERLAP) + 1  # 4 of 30 test records repeat train_label texts
    big = [rec(i) for i in range(60, 90 - n_big)] + [rec(i) for i in range(n_big)]
    with pytest.raises(
        DataFormatError, match=rf"{n_big} of 30 test records \(13%\) repeat a text of train_label"
    ):
        load_task(str(task_dir_with(tmp_path / "big", test=big)))
    small = [rec(i) for i in range(60, 89)] + [rec(0)]
    ents = [rec(i, entity=f"e{i % 40}") for i in range(30, 60)]  # e30..e39 and e0..e19
    task = load_task(
        str(
            task_dir_with(
                tmp_path / "small",
                test=small,
                train_unlabel=ents,
                train_label=[rec(i, entity=f"e{i}") for i in range(30)],
            )
        )
    )
    text = "\n".join(task.warnings)
    assert "1 of 30 test records (3%) repeat a text of train_label.jsonl" in text
    assert "20 entities" in text and "train_label.jsonl and train_unlabel.jsonl" in text
    # init-task stores and prints the warnings
    code, out = invoke(
        "server", "init-task", "--data-dir", str(tmp_path / "data"), "--task", str(tmp_path / "small")
    )
    assert code == 0 and "warning: 1 of 30 test records" in out
    meta = json.loads((tmp_path / "data" / "tasks" / "small" / "task.json").read_text())
    assert any("repeat a text of train_label" in w for w in meta["data_warnings"])


# --- the server with broken task data ---


def test_broken_task_never_takes_the_server_down_or_500s(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_task(data, str(task_dir_with(tmp_path / "good")), name="good")
    init_task(data, str(task_dir_with(tmp_path / "dups")), name="dups")
    # what an older aarlab let through: repeated ids in the stored test split, and an empty split
    path = task_dir(data, "dups") / "test.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    lines[1] = json.dumps(json.loads(lines[1]) | {"id": first["id"]})
    path.write_text("\n".join(lines) + "\n")
    init_task(data, str(task_dir_with(tmp_path / "empty")), name="empty")
    (task_dir(data, "empty") / "test.jsonl").write_text("")
    settings = ServerSettings(data_dir=data, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    server = create_app(settings)  # used to raise for the whole data directory
    with TestClient(server) as tc:
        with session_scope(server.state.aarlab.sessions) as s:
            token = add_agent(s, "a")
        h = {"Authorization": f"Bearer {token}"}
        assert [t["name"] for t in tc.get("/api/v1/tasks", headers=h).json()] == ["good"]
        for name, why in (("dups", "appear more than once"), ("empty", "no records")):
            r = tc.post(f"/api/v1/tasks/{name}/dev/submissions", json={"predictions": {"x": 0.5}}, headers=h)
            assert r.status_code == 503 and why in r.json()["detail"] and "unavailable" in r.json()["detail"]
        items = tc.get("/api/v1/tasks/good/dev", headers=h).json()["items"]
        r = tc.post(
            "/api/v1/tasks/good/dev/submissions",
            json={"predictions": {it["id"]: 0.5 for it in items}},
            headers=h,
        )
        assert r.status_code == 200
    server.state.aarlab.engine.dispose()


# --- CLI paths ---


def test_a_method_that_raises_shows_its_own_frames(tmp_path: Path) -> None:
    method = tmp_path / "m" / "method.py"
    method.parent.mkdir()
    method.write_text("def helper(x):\n    return 1 / x\n\n\ndef run(ctx):\n    return helper(0)\n")
    d = task_dir_with(tmp_path / "t")
    code, out = invoke(
        "baseline", "--task", str(d), "--method", str(method.parent), "--seeds", "1",
        "--weak", "tfidf", "--strong", "tfidf",
    )  # fmt: skip
    assert code == 2
    assert "raised ZeroDivisionError: division by zero" in out
    assert f'File "{method}", line 6, in run' in out and f'File "{method}", line 2, in helper' in out
    assert "aarlab/testbed" not in out and "site-packages" not in out  # none of our frames
    assert "(aarlab: raised while running run(ctx) on seed" in out
    assert len(out.strip().splitlines()) <= 12


def test_data_dir_that_is_a_file_or_missing_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    missing = tmp_path / "typo"
    for args in (
        ["serve", "--data-dir", "{}"],
        ["admin", "add-agent", "bob", "--data-dir", "{}"],
        ["verify", "--once", "--data-dir", "{}"],
        ["export-sandbox", str(tmp_path / "out"), "--data-dir", "{}", "--task", "t"],
    ):
        code, out = invoke(*[a.replace("{}", str(f)) for a in args])
        assert code == 2 and "is a file, not a directory" in out, (args, out)
        code, out = invoke(*[a.replace("{}", str(missing)) for a in args])
        assert code == 2 and "does not exist" in out and "init-task" in out, (args, out)
        assert not missing.exists()  # never created silently
    code, out = invoke(
        "server", "init-task", "--data-dir", str(f), "--task", str(task_dir_with(tmp_path / "t"))
    )
    assert code == 2 and "is a file, not a directory" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = invoke("serve", "--data-dir", str(empty))
    assert code == 2 and "not an aarlab data directory" in out


def test_verify_once_says_when_nothing_is_queued(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_task(data, str(task_dir_with(tmp_path / "t")), name="t")
    code, out = invoke("verify", "--once", "--no-transfers", "--data-dir", str(data))
    assert code == 0 and "nothing queued to verify" in out


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_port_out_of_range_is_a_usage_error(tmp_path: Path, port: str) -> None:
    code, out = invoke("serve", "--data-dir", str(tmp_path), "--port", port)
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", out).split())  # the usage error is drawn in a box
    assert code == 2 and "Invalid value for '--port'" in flat
    # 0 asks the OS for any free port (aarlab serve prints the one it got)
    assert ("less than or equal to 65535" if port == "99999" else "greater than or equal to 0") in flat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"http://127.0.0.1:{_free_port()}", "cannot reach the server at http://127.0.0.1:"),
        ("127.0.0.1:8000", "has no scheme; use http:// or https://, e.g. 'http://127.0.0.1:8000'"),
        ("ftp://lab:8000", "uses the scheme 'ftp'"),
        ("http://lab:99999", "bad port"),
    ],
)
def test_review_against_a_down_server_or_a_bad_url(url: str, expected: str) -> None:
    code, out = invoke("review", "list", "--server", url, "--token", "t")
    assert code == 2 and expected in out, out


# --- numbers an agent sends ---


@pytest.fixture
def api(tmp_path: Path) -> Any:
    data = tmp_path / "data"
    init_task(data, str(task_dir_with(tmp_path / "t")), name="t")
    settings = ServerSettings(data_dir=data, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    server = create_app(settings)
    with TestClient(server) as tc:
        with session_scope(server.state.aarlab.sessions) as s:
            tc.headers["Authorization"] = f"Bearer {add_agent(s, 'a')}"
            tc.headers["X-Overseer"] = add_agent(s, "boss", "overseer")
        yield tc
    server.state.aarlab.engine.dispose()


SHA = "a" * 64


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ('{"claimed": {"dev_acc": NaN}}', "claimed.dev_acc", "finite"),
        ('{"claimed": {"pgr": Infinity}}', "claimed.pgr", "finite"),
        ('{"claimed": {"dev_acc": 1.5}}', "claimed.dev_acc", "outside [0, 1]"),
        ('{"claimed": {"sealed_acc": -0.1}}', "claimed.sealed_acc", "outside [0, 1]"),
        ('{"claimed": {"pgr": 1e300}}', "claimed.pgr", "too large"),
        ('{"config": {"C": NaN}}', "config.C", "finite"),
        ('{"config": {"head": {"lr": -Infinity}}}', "config.head.lr", "finite"),
        ('{"config": {"rounds": 100000000000000000000000000}}', "config.rounds", "too large"),
        ('{"config": {"seeds": [1, 2, NaN]}}', "config.seeds[2]", "finite"),
    ],
)
def test_result_numbers_are_checked_at_the_boundary(api: Any, body: str, field: str, why: str) -> None:
    base = {"task": "t", "snapshot_sha": SHA}
    payload = json.dumps(base)[:-1] + ", " + body[1:]
    r = api.post("/api/v1/results", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"] and why in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"dollars": NaN}', "dollars"),
        ('{"seconds": Infinity}', "seconds"),
        ('{"tokens_in": 100000000000000000000000000000}', "tokens_in"),
        ('{"submissions": -1}', "submissions"),
    ],
)
def test_usage_and_budget_numbers_are_checked(api: Any, body: str, field: str) -> None:
    r = api.put(
        "/api/v1/agents/a/usage",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api.headers['X-Overseer']}"},
    )
    assert r.status_code == 422 and field in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("option", "value"),
    [("--hours", "nan"), ("--hours", "inf"), ("--max-dollars", "nan"), ("--max-dollars", "-1")],
)
def test_research_budgets_must_be_finite(option: str, value: str) -> None:
    code, out = invoke("research", "--agents", "1", option, value, "--json")
    assert code == 2 and option in out and "must be" in out


# --- long texts and encoder windows ---

LONG_PROMPT = "def add(a, b):\n    " + " ".join(
    f'"""Step {i}: check the inputs carefully."""' for i in range(60)
)


@pytest.mark.parametrize("encoder_id", ["minilm-l3", "minilm-l6"])
def test_long_prompt_never_hides_the_candidate(encoder_id: str, caplog: pytest.LogCaptureFixture) -> None:
    from aarlab.testbed.encoders import encode_texts, get_encoder

    texts = [f"{LONG_PROMPT}\nreturn a + b", f"{LONG_PROMPT}\nreturn a - b"]  # correct vs broken
    with caplog.at_level("WARNING"):
        vecs = encode_texts(get_encoder(encoder_id), texts, show_progress=False)
    # cut at the end, both candidates vanished and the two vectors were identical
    assert not np.allclose(vecs[0], vecs[1], atol=1e-4)
    assert f"encoder {encoder_id}: 2 of 2 texts are longer than its" in caplog.text
    assert "the candidate answer or response) is kept" in caplog.text


def test_other_data_dir_and_number_options(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    code, out = invoke("transfer", "1", "--data-dir", str(tmp_path / "typo"))
    assert code == 2 and "does not exist" in out
    code, out = invoke("transfer", "--method", "vanilla", "--min-effect", "nan")
    assert code == 2 and "--min-effect must be a finite" in out
    code, out = invoke("research", "--data-dir", str(f), "--json")
    assert code == 2 and "is a file, not a directory" in out
    code, out = invoke("tasks", "export", "truth-cities", str(f / "sub"))  # a path under a file
    assert code == 2 and str(f) in out and "Not a directory" in out


def test_non_utf8_directions_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dirs.yaml"
    path.write_bytes('- {name: café, summary: "try the prior"}\n'.encode("latin-1"))
    code, out = invoke("research", "--agents", "1", "--directions", str(path), "--json")
    assert code == 2 and f"{path}:1: the file is not UTF-8" in out.replace("\n", "") and "Latin-1" in out


@pytest.mark.parametrize(
    ("var", "value", "args", "says"),
    [
        ("AARLAB_BLAS_THREADS", "abc", ["baseline", "--seeds", "1"], "valid integer"),
        ("AARLAB_SERVER_DB_BUSY_TIMEOUT_S", "0", ["serve", "--data-dir", "{data}"], "greater than 0"),
    ],
)
def test_a_bad_setting_in_the_environment_is_one_line_naming_the_variable(
    monkeypatch, tmp_path, var, value, args, says
):
    from aarlab.config import get_settings

    data = tmp_path / "data"
    init_task(data, "truth-cities")
    monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    try:
        r = runner.invoke(app, [a.replace("{data}", str(data)) for a in args])
    finally:
        monkeypatch.delenv(var)
        get_settings.cache_clear()
    assert r.exit_code == 2, r.output
    assert var in r.output and repr(value) in r.output and says in r.output
    assert "Traceback" not in r.output
