"""Frozen encoders (the ``embed`` model backend's feature extractors) and their feature cache."""

from aarlab.testbed.encoders.base import (
    Encoder,
    EncoderSpec,
    encode_texts,
    encoder_specs,
    featurize,
    get_encoder,
    register_encoder,
)

__all__ = [
    "Encoder",
    "EncoderSpec",
    "encode_texts",
    "encoder_specs",
    "featurize",
    "get_encoder",
    "register_encoder",
]
