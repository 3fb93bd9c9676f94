"""Read and write reference-format task directories (``train_label/train_unlabel/test.jsonl``).

The format is the one of the reference W2S release, so its data drops in. Every malformed line fails
with the file, the line number and the offending field, and nothing is half-loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from aarlab.testbed.errors import DataFormatError
from aarlab.testbed.files import atomic_path
from aarlab.testbed.schema import PairwiseRecord, Record, SchemaName, SingleRecord

SPLIT_FILES = ("train_label", "train_unlabel", "test")
_SINGLE_KEYS = {"question", "choice"}
_PAIR_KEYS = {"prompt", "first", "second"}


#: One validator per schema for a whole file at once (pydantic-core parses and validates the JSON
#: without a Python object per field: 3-4x faster than a ``json.loads`` + ``model_validate`` per line).
_FILE_ADAPTERS: dict[SchemaName, TypeAdapter[Any]] = {
    "single": TypeAdapter(list[SingleRecord]),
    "pairwise": TypeAdapter(list[PairwiseRecord]),
}


def _read_fast(text: str, schema: SchemaName, require_labels: bool) -> list[Record] | None:
    """Every line of ``text`` validated in one call, or None when anything is off (the line-by-line
    reader then finds the line and says what is wrong). One record per non-empty line, as there."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return None
    try:
        records: list[Record] = _FILE_ADAPTERS[schema].validate_json("[" + ",".join(lines) + "]")
    except ValidationError:
        return None
    if len(records) != len(lines) or (require_labels and any(r.label is None for r in records)):
        return None
    return records


def detect_schema(obj: dict[str, object]) -> SchemaName | None:
    """Which schema a JSON object is written in, judged by its required keys."""
    if obj.keys() >= _PAIR_KEYS:
        return "pairwise"
    if obj.keys() >= _SINGLE_KEYS:
        return "single"
    return None


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(record)"
        parts.append(f"field {loc!r}: {e['msg']}")
    return "; ".join(parts)


def read_jsonl(
    path: Path, schema: SchemaName | None = None, *, require_labels: bool = True
) -> tuple[SchemaName, list[Record]]:
    """Parse one JSONL file into validated records; raise DataFormatError naming file, line, field."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found (a task directory needs {', '.join(SPLIT_FILES)})")
    text = decode_utf8(path)
    if schema is not None:  # the common case (a bundle, a known task): the whole file in one call
        fast = _read_fast(text, schema, require_labels)
        if fast is not None:
            return schema, fast
    records: list[Record] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        found = detect_schema(obj)
        if found is None:
            raise DataFormatError(
                f"{path}:{lineno}: cannot tell the schema: a single record needs fields "
                f"'question' and 'choice', a pairwise record 'prompt', 'first' and 'second'"
            )
        if schema is None:
            schema = found
        elif found != schema:
            raise DataFormatError(
                f"{path}:{lineno}: {found} record in a {schema} task (one task uses one schema)"
            )
        try:
            rec: Record = (SingleRecord if schema == "single" else PairwiseRecord).model_validate(obj)
        except ValidationError as e:
            raise DataFormatError(f"{path}:{lineno}: {_format_validation(e)}") from None
        if require_labels and rec.label is None:
            raise DataFormatError(f"{path}:{lineno}: field 'label': missing (this file needs labels)")
        records.append(rec)
    if schema is None or not records:
        raise DataFormatError(
            f"{path}: no records (the file is empty); every split needs at least one record, one JSON "
            "object per line"
        )
    return schema, records


def _guess_encoding(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 (it starts with a UTF-16 byte-order mark)"
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return "an unknown 8-bit encoding"
    return "Latin-1 / Windows-1252"


def decode_utf8(path: Path) -> str:
    """The text of ``path``, which must be UTF-8 (a UTF-8 byte-order mark is allowed).

    Raises DataFormatError naming the file, the line and byte of the first invalid sequence, the
    encoding the file seems to be in, and a command that converts it.
    """
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        enc = _guess_encoding(raw)
        src = "UTF-16" if enc.startswith("UTF-16") else "LATIN1"
        raise DataFormatError(
            f"{path}:{line}: the file is not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); it "
            f"looks like {enc}. Save it as UTF-8, e.g. `iconv -f {src} -t UTF-8 {path} > fixed.jsonl`"
        ) from None


def read_task_dir(path: Path) -> tuple[SchemaName, dict[str, list[Record]]]:
    """Load all three split files of a reference-format directory; all must share one schema."""
    if not path.is_dir():
        raise DataFormatError(
            f"{path}: not a directory (expected {', '.join(f + '.jsonl' for f in SPLIT_FILES)})"
        )
    schema: SchemaName | None = None
    splits: dict[str, list[Record]] = {}
    for name in SPLIT_FILES:
        schema, splits[name] = read_jsonl(path / f"{name}.jsonl", schema)
    assert schema is not None
    return schema, splits


def write_jsonl(path: Path, records: Iterable[Record], *, with_labels: bool = True) -> int:
    """Write records as JSONL (optionally without labels); returns the count. Atomic via rename."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            exclude = set() if with_labels else {"label"}
            fh.write(rec.model_dump_json(exclude=exclude, exclude_none=True) + "\n")
            n += 1
    return n
