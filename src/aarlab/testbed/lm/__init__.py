"""The ``lm`` model backend: Hugging Face causal LMs with LoRA adapters (see ``backend.py``).

Importing this package imports torch, transformers and peft and registers the backend, so the pipeline
imports it only when ``backend="lm"`` is asked for: ``import aarlab.testbed.pipeline`` stays light.
"""

from aarlab.testbed.lm.backend import LMConfig, LMStudent, LoadedLM, load_lm, prepare_lm
from aarlab.testbed.lm.prompts import PromptFormat
from aarlab.testbed.lm.resolve import SMOLLM2_REF, resolve_model
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
