"""The one typed registry (aarlab.registry) and the registries built on it."""

from __future__ import annotations

import threading

import pytest

from aarlab.registry import Registry
from aarlab.testbed.errors import UnknownNameError


def test_register_get_and_names() -> None:
    reg: Registry[int] = Registry("widget")
    assert reg.register("b", 2) == 2

    @reg.decorator("a")
    def one() -> int:
        return 1

    assert reg.get("b") == 2
    assert reg.get("a") is one
    assert reg.names() == ["a", "b"] == list(reg)
    assert [n for n, _ in reg.items()] == ["b", "a"]  # registration order
    assert "a" in reg and "c" not in reg and len(reg) == 2


def test_a_taken_name_is_refused() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 2)
    assert reg.get("a") == 1


def test_an_unknown_name_lists_the_valid_ones() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("beta", 1)
    reg.register("alpha", 2)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'gamma'; available: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(KeyError):  # UnknownNameError is a KeyError too
        reg.get("gamma")


def test_builtins_load_once_on_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    reg: Registry[str] = Registry("gadget", builtins=("aarlab_test_gadgets",))
    loads = []

    def load() -> None:
        loads.append(1)
        reg.register("built-in", "x")
        assert reg.names() == ["built-in"]  # a lookup while loading does not recurse

    monkeypatch.setattr("importlib.import_module", lambda name: load())
    assert loads == []  # nothing is imported before the first lookup
    threads = [threading.Thread(target=reg.names) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reg.get("built-in") == "x"
    assert loads == [1]


def test_a_failed_builtin_import_is_retried() -> None:
    reg: Registry[str] = Registry("gadget", builtins=("aarlab_no_such_module_here",))
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError):
            reg.names()


@pytest.mark.parametrize(
    ("lookup", "kind"),
    [
        ("aarlab.testbed.tasks:get_spec", "task"),
        ("aarlab.testbed.methods:get_method", "method"),
        ("aarlab.testbed.encoders:get_encoder", "encoder"),
        ("aarlab.verify.executors:get_executor", "executor"),
        ("aarlab.agents.llm:get_backend", "LLM backend"),
        ("aarlab.agents.directions:get_direction", "direction"),
    ],
)
def test_every_registry_answers_an_unknown_name_with_the_choices(lookup: str, kind: str) -> None:
    import importlib

    module, _, fn = lookup.partition(":")
    with pytest.raises(UnknownNameError, match=rf"unknown {kind} 'no-such-thing'; available: \S"):
        getattr(importlib.import_module(module), fn)("no-such-thing")


def test_the_pipeline_names_its_backends() -> None:
    from aarlab.testbed.pipeline import BACKENDS

    assert "embed" in BACKENDS
    with pytest.raises(UnknownNameError, match="unknown backend 'nope'; available: embed"):
        BACKENDS.get("nope")
