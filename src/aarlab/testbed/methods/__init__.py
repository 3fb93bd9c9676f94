"""W2S methods: the registry and the built-in baselines."""

from aarlab.testbed.methods.registry import (
    MethodSpec,
    NoConfig,
    get_method,
    load_method_file,
    method,
    method_names,
)

__all__ = ["MethodSpec", "NoConfig", "get_method", "load_method_file", "method", "method_names"]
