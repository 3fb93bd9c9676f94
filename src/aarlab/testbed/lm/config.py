"""Settings of an lm student (``LMConfig``) and where it runs (device, dtype, threads)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

#: ``fit`` keyword arguments that only mean something to the embed backend's probe heads. Methods written
#: for the embed backend pass them (``head=..., C=...``); the lm backend ignores them so they run unchanged.
PROBE_ONLY_OPTIONS = frozenset({"head", "C", "hidden", "max_iter"})


class LMConfig(BaseModel):
    """Training and inference settings of an lm student (also the ``fit(**overrides)`` vocabulary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=2, ge=0, description="passes over the training inputs per fit")
    lr: float = Field(default=2e-4, gt=0, description="AdamW learning rate of the LoRA weights")
    batch_size: int = Field(default=16, ge=1, description="examples per optimizer step")
    micro_batch_size: int = Field(
        default=8, ge=1, description="examples per forward pass (gradient accumulation)"
    )
    eval_batch_size: int = Field(default=32, ge=1, description="examples per forward pass when predicting")
    weight_decay: float = Field(default=0.0, ge=0)
    lora_rank: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    #: None: peft's default modules for the architecture (q_proj/v_proj for Llama/Qwen), else all linear.
    target_modules: tuple[str, ...] | None = None
    max_length: int = Field(
        default=256, ge=8, description="prompt tokens kept (the start is cut, the question kept)"
    )
    #: Hidden layer for ``features``; None = the middle layer (RECIPES.md: middle layers carry the truth
    #: direction; the last layer does much worse).
    features_layer: int | None = None
    max_new_tokens: int = Field(default=48, ge=1, description="default length of ``generate``")
    #: Wrap ``generate`` prompts in the tokenizer's chat template when it has one (instruct models).
    chat_generation: bool = True


def pick_device(requested: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless a device is named."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, *, gguf: bool = False) -> torch.dtype:
    """bf16 on GPUs that support it (half the memory, native speed); float32 elsewhere (CPU bf16 is slow).

    A GGUF checkpoint is always float32: transformers keeps its weights packed and dequantises them in
    float32 kernels, so bf16 only adds a cast around every matmul (SmolLM2-135M on an H200 with bf16:
    53 training examples/s, fewer generated tokens/s than 16 CPU threads)."""
    if gguf:
        return torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32

