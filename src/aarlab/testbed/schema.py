"""The two reference data schemas, and the label-free item view the rest of the testbed uses.

A *record* is one line of a reference-format JSONL file (validated with pydantic). An *item* is what a
model sees: an id, one text (single schema) or two texts (pairwise), a consistency group, and the entity
used to split without leakage. Labels are kept apart from items on purpose: a method only ever receives
items, so no attribute chain from a method's context can reach a label.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

SchemaName = Literal["single", "pairwise"]


def _reference_group(data: object) -> object:
    """Accept the reference release's ``consistency_id`` as the record's ``group``.

    The reference data ties the candidates of one question (or the two replies of one conversation)
    with an integer ``consistency_id``; aarlab calls that a ``group`` (a string). Both may be given only
    when they agree.
    """
    if not isinstance(data, dict) or "consistency_id" not in data:
        return data
    out = dict(data)
    cid = out.pop("consistency_id")
    if cid is None:
        return out
    if isinstance(cid, bool) or not isinstance(cid, int | str):
        raise ValueError(
            f"consistency_id must be an integer or a string (it names the record's group), got {cid!r}"
        )
    group = out.get("group")
    if group is not None and str(group) != str(cid):
        raise ValueError(
            f"group {group!r} and consistency_id {cid!r} disagree; give one of them (they mean the same)"
        )
    out["group"] = str(cid)
    return out


class SingleRecord(BaseModel):
    """``{question, choice, label, group?}``: is ``choice`` a correct answer to ``question``?

    The reference release's own fields load unchanged: ``consistency_id`` (int or str) becomes ``group``
    (so it also becomes the split entity when no ``entity`` is given), ``subset`` is kept as metadata.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    choice: str
    label: bool | None = None
    group: str | None = Field(default=None, description="ties candidates of one question (consistency)")
    id: str | None = None
    entity: str | None = Field(default=None, description="split key: records sharing it never cross splits")
    subset: str | None = Field(default=None, description="the reference data's source subset (metadata)")

    @model_validator(mode="before")
    @classmethod
    def _consistency_id(cls, data: object) -> object:
        return _reference_group(data)


class PairwiseRecord(BaseModel):
    """``{prompt, first, second, label: "A"|"B"}``: which of two responses is the better/correct one?

    ``consistency_id`` and ``subset`` are accepted as in :class:`SingleRecord`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    first: str
    second: str
    label: Literal["A", "B"] | None = None
    group: str | None = None
    id: str | None = None
    entity: str | None = None
    subset: str | None = Field(default=None, description="the reference data's source subset (metadata)")

    @model_validator(mode="before")
    @classmethod
    def _consistency_id(cls, data: object) -> object:
        return _reference_group(data)


Record = SingleRecord | PairwiseRecord


def record_label(record: Record) -> bool | None:
    """The binary label of a record: ``True`` for a correct single choice or a pairwise ``"A"``."""
    if isinstance(record, SingleRecord):
        return record.label
    return None if record.label is None else record.label == "A"


def record_texts(record: Record) -> tuple[str, ...]:
    """The texts an encoder sees: one for single records, (prompt+first, prompt+second) for pairs."""
    if isinstance(record, SingleRecord):
        return (f"{record.question}\n{record.choice}" if record.question else record.choice,)
    return (f"{record.prompt}\n{record.first}", f"{record.prompt}\n{record.second}")


@dataclass(frozen=True, slots=True)
class Item:
    """One label-free example as a model sees it."""

    id: str
    texts: tuple[str, ...]
    group: str | None = None
    entity: str | None = None


def item_from_record(record: Record, default_id: str) -> Item:
    """Drop the label: the only way records become items."""
    return Item(
        id=record.id or default_id,
        texts=record_texts(record),
        group=record.group,
        entity=record.entity or record.group or record.id or default_id,
    )


@dataclass(frozen=True)
class Inputs:
    """An ordered, label-free collection of items (what ``ctx.unlabeled`` and ``ctx.test`` are)."""

    items: tuple[Item, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, index: int) -> Item:
        return self.items[index]

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    @property
    def texts(self) -> list[tuple[str, ...]]:
        return [it.texts for it in self.items]

    @property
    def groups(self) -> list[str | None]:
        return [it.group for it in self.items]

    def subset(self, index: Sequence[int] | np.ndarray) -> Inputs:
        """A new ``Inputs`` with the items at ``index`` (a list of positions or a boolean mask)."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Inputs(tuple(self.items[int(i)] for i in idx))


@dataclass(frozen=True)
class LabeledSet:
    """Items with their labels: held by the pipeline and the server, never handed to a method."""

    items: tuple[Item, ...]
    labels: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.items) != len(self.labels):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def inputs(self) -> Inputs:
        return Inputs(self.items)

    @property
    def positive_rate(self) -> float:
        return float(np.mean(self.labels)) if len(self.labels) else float("nan")
