"""The ``lm`` model backend: Hugging Face causal LMs with LoRA adapters.

``config`` (settings, device), ``loaded`` (the shared frozen base), ``student`` (a LoRA student) and
``backend`` (``prepare_lm``, which wires them into the pipeline).

Importing this package imports torch, transformers and peft and registers the backend, so the pipeline
imports it only when ``backend="lm"`` is asked for: ``import aarlab.testbed.pipeline`` stays light.
"""

from aarlab.testbed.lm.backend import prepare_lm
from aarlab.testbed.lm.config import LMConfig
from aarlab.testbed.lm.loaded import LoadedLM, load_lm
from aarlab.testbed.lm.prompts import PromptFormat
from aarlab.testbed.lm.resolve import SMOLLM2_REF, resolve_model
from aarlab.testbed.lm.student import LMStudent
from aarlab.testbed.pipeline import register_backend

register_backend("lm", prepare_lm)

__all__ = [
    "SMOLLM2_REF",
    "LMConfig",
    "LMStudent",
    "LoadedLM",
    "PromptFormat",
    "load_lm",
    "prepare_lm",
    "resolve_model",
]
