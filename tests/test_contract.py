"""The method contract: nothing in ctx reaches a label; outputs and configs are validated."""

from __future__ import annotations

import gc
import types

import numpy as np
import pytest

from aarlab.testbed.context import MethodContext
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.methods import get_method, load_method_file
from aarlab.testbed.pipeline import run_method, seed_baseline, validate_predictions
from aarlab.testbed.schema import LabeledSet


def _reachable(root: object, limit: int = 200_000) -> list[object]:
    """Every object reachable from ``root`` through references (attributes, containers, closures)."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type)):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return list(seen.values())


def test_no_label_reachable_from_ctx(tiny_prepared):
    prep = tiny_prepared
    base = seed_baseline(prep, 0)
    captured: list[MethodContext] = []

    def spy(ctx):  # type: ignore[no-untyped-def]
        captured.append(ctx)
        return np.full(len(ctx.test), 0.5)

    spec = get_method("vanilla")
    spy_spec = type(spec)("spy", spy, spec.config, "spy")
    run_method(prep, base, spy_spec, None, 0)
    ctx = captured[0]
    objects = _reachable(ctx)
    assert not any(isinstance(o, LabeledSet) for o in objects), "a LabeledSet is reachable from ctx"
    label_arrays = [base.splits.train_label.labels, base.splits.train_unlabel.labels, base.splits.test.labels]
    for o in objects:
        if isinstance(o, np.ndarray) and o.dtype == bool:
            for lab in label_arrays:
                assert not (o.shape == lab.shape and np.array_equal(o, lab)), (
                    "a label array is reachable from ctx"
                )
        assert not any(o is lab for lab in label_arrays)
    # what a method *does* get
    assert len(ctx.weak.proba) == len(ctx.unlabeled)
    assert ctx.strong.features(ctx.test).shape[0] == len(ctx.test)
    assert not hasattr(ctx.unlabeled.items[0], "label")


def test_ctx_inputs_are_label_free_records():
    from aarlab.testbed.schema import Item

    assert "label" not in Item.__dataclass_fields__


@pytest.mark.parametrize(
    ("pred", "msg"),
    [
        (np.zeros(3), r"shape \(3,\); expected \(4,\)"),
        (np.zeros((4, 2)), r"\(n, 2\) array"),
        (np.array([0.1, np.nan, 0.2, 0.3]), "NaN"),
        (np.array([0.1, 2.0, 0.2, 0.3]), r"outside \[0, 1\]"),
        ("abc", "return an array"),
    ],
)
def test_validate_predictions(pred, msg):
    with pytest.raises(AarlabError, match=msg):
        validate_predictions(pred, 4, "method 'x'")


def test_bad_config_names_the_field():
    spec = get_method("confident")
    with pytest.raises(AarlabError, match="keep_fraction"):
        spec.make_config({"keep_fraction": 2})
    with pytest.raises(AarlabError, match="typo"):
        spec.make_config({"typo": 1})


def test_method_file_runs_through_contract(tmp_path, tiny_prepared):
    folder = tmp_path / "my_method"
    folder.mkdir()
    (folder / "method.py").write_text(
        '"""Fit on hard weak labels, with a configurable C."""\n'
        "from pydantic import BaseModel\n"
        "class Config(BaseModel):\n    C: float = 0.01\n"
        "def run(ctx):\n"
        "    ctx.strong.fit(ctx.unlabeled, ctx.weak.hard, C=ctx.config.C)\n"
        "    return ctx.strong.predict_proba(ctx.test)\n"
    )
    spec = load_method_file(folder)
    assert spec.name == "my_method"
    base = seed_baseline(tiny_prepared, 0)
    pred, _ = run_method(tiny_prepared, base, spec, {"C": 0.1}, 0)
    assert pred.shape == (len(base.splits.test),)


def test_method_file_errors(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(AarlabError, match="defines no function run"):
        load_method_file(bad)
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_xyz\n")
    with pytest.raises(AarlabError) as err:  # the method's own frame and one line of ours
        load_method_file(broken)
    msg = str(err.value)
    assert "raised ModuleNotFoundError: No module named 'not_a_module_xyz'" in msg
    assert f'File "{broken}", line 1, in <module>' in msg
    assert f"(aarlab: raised while importing {broken})" in msg
    with pytest.raises(AarlabError, match="no such method file"):
        load_method_file(tmp_path / "missing.py")


def test_inputs_outside_task_are_rejected(tiny_prepared):
    from aarlab.testbed.schema import Inputs, Item

    model = tiny_prepared.strong_model(0)
    with pytest.raises(AarlabError, match="not part of this task"):
        model.features(Inputs((Item("x", ("made up text",)),)))
