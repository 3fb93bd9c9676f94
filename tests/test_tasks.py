"""Built-in task construction and split hygiene (no entity in two splits, deterministic per seed)."""

from __future__ import annotations

import pytest

from aarlab.testbed.errors import UnknownNameError
from aarlab.testbed.tasks import load_task, split_by_entity, task_names
from aarlab.testbed.tasks.truth_cities import build_truth_cities


def _entities(ls):  # type: ignore[no-untyped-def]
    return {it.entity for it in ls.items}


def test_registry_lists_builtin_tasks():
    names = task_names()
    assert "truth-cities" in names and "truth-cities-by-country" in names


def test_unknown_task_lists_available():
    with pytest.raises(UnknownNameError, match="unknown task 'nope'; available: .*truth-cities"):
        load_task("nope")


def test_truth_cities_pool_is_balanced_and_deterministic():
    a = build_truth_cities()
    b = build_truth_cities()
    assert a == b
    assert len(a) == 3320
    assert sum(bool(r.label) for r in a) == len(a) // 2
    # every group has exactly one true statement (what consistency methods rely on)
    groups: dict[str, int] = {}
    for r in a:
        groups[r.group] = groups.get(r.group, 0) + int(bool(r.label))  # type: ignore[index]
    assert set(groups.values()) == {1}
    assert len({r.id for r in a}) == len(a)


@pytest.mark.parametrize("name", ["truth-cities", "truth-cities-by-country"])
def test_no_entity_in_two_splits(name):
    task = load_task(name)
    for seed in range(3):
        s = task.split(seed)
        a, b, c = _entities(s.train_label), _entities(s.train_unlabel), _entities(s.test)
        assert not (a & b) and not (a & c) and not (b & c)
        assert len(s.train_label) + len(s.train_unlabel) + len(s.test) == len(task.records)
        # sizes follow the 25/40/35 fractions
        assert abs(len(s.train_label) / len(task.records) - 0.25) < 0.03


def test_by_country_split_keeps_countries_apart():
    task = load_task("truth-cities-by-country")
    s = task.split(0)
    countries = [{r.split(":")[1] for r in _entities(x)} for x in (s.train_label, s.train_unlabel, s.test)]
    assert not (countries[0] & countries[1]) and not (countries[1] & countries[2])


def test_split_is_deterministic_per_seed_and_varies_across_seeds():
    task = load_task("truth-cities")
    assert task.split(3).test.items == task.split(3).test.items
    assert task.split(3).test.items != task.split(4).test.items


def test_split_by_entity_pool_order():
    recs = build_truth_cities(n_cities=30, n_capitals=0)
    parts = split_by_entity(recs, (0.25, 0.4, 0.35), 0)
    for part in parts:
        order = [recs.index(r) for r in part]
        assert order == sorted(order)
