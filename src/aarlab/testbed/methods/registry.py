"""The method registry: built-in baselines and methods loaded from a file or folder.

A method is a function ``run(ctx) -> np.ndarray`` plus a pydantic config model (its hyperparameters,
validated before the run so a bad config fails fast with the field named).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from aarlab.registry import Registry
from aarlab.testbed.context import MethodContext
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.methods.failure import method_failed

RunFn = Callable[[MethodContext[Any]], np.ndarray]


class NoConfig(BaseModel):
    """For methods without hyperparameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method."""

    name: str
    run: RunFn
    config: type[BaseModel]
    description: str
    #: False for methods that deliberately ignore the teacher (strong-prior methods): oversight labels them.
    uses_teacher: bool = True
    source: str = ""

    def make_config(self, values: dict[str, Any] | None = None) -> BaseModel:
        try:
            return self.config.model_validate(values or {})
        except ValidationError as e:
            fields = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise AarlabError(f"bad config for method {self.name!r}: {fields}") from None

    @property
    def code_hash(self) -> str:
        """Hash of the method's source: part of every cache key that involves the method."""
        try:
            src = inspect.getsource(sys.modules[self.run.__module__])
        except (OSError, TypeError, KeyError):
            src = self.name
        return hashlib.sha256(src.encode()).hexdigest()[:16]


#: The built-in methods by name; each registers itself with :func:`method` beside its ``run``.
METHODS: Registry[MethodSpec] = Registry("method", builtins=("aarlab.testbed.methods.baselines",))


def method(
    name: str, config: type[BaseModel] = NoConfig, *, uses_teacher: bool = True
) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``run`` as a built-in method under ``name`` (a taken name raises ValueError)."""

    def deco(fn: RunFn) -> RunFn:
        doc = inspect.getdoc(fn) or ""
        METHODS.register(name, MethodSpec(name, fn, config, doc.split("\n")[0], uses_teacher, fn.__module__))
        return fn

    return deco


def method_names() -> list[str]:
    """The built-in method names, sorted."""
    return METHODS.names()


def get_method(name_or_path: str) -> MethodSpec:
    """A built-in method by name, or a method file/folder (``method.py`` defining ``run``); raises
    ``UnknownNameError`` listing the built-in names when ``name_or_path`` is neither."""
    if name_or_path in METHODS:
        return METHODS.get(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".py" or path.is_dir():
        return load_method_file(path)
    return METHODS.get(name_or_path)


def load_method_file(path: Path) -> MethodSpec:
    """Import ``run`` (and optional ``Config``) from a method file, or ``method.py`` in a folder."""
    file = path / "method.py" if path.is_dir() else path
    if not file.is_file():
        raise AarlabError(
            f"{file}: no such method file (a method folder needs a method.py defining run(ctx))"
        )
    mod_name = "aarlab_method_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, file)
    if spec is None or spec.loader is None:
        raise AarlabError(f"{file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: its own frames, not a bare traceback through ours
        raise method_failed(file.stem, str(file), e, f"importing {file}") from e
    finally:
        sys.path.remove(str(file.parent))
    run = getattr(module, "run", None)
    if not callable(run):
        raise AarlabError(f"{file}: defines no function run(ctx) -> predictions")
    cfg = getattr(module, "Config", NoConfig)
    if not (isinstance(cfg, type) and issubclass(cfg, BaseModel)):
        raise AarlabError(f"{file}: Config must be a pydantic BaseModel subclass")
    doc = inspect.getdoc(module) or inspect.getdoc(run) or ""
    return MethodSpec(
        file.stem if file.stem != "method" else file.parent.name,
        run,
        cfg,
        doc.split("\n")[0],
        bool(getattr(module, "USES_TEACHER", True)),
        str(file),
    )
