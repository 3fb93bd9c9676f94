"""Checks a reference-format task's three splits for duplicate ids and for overlap between splits.

A W2S measurement is meaningful only if the evaluation split is new to every model: a test split that
repeats training texts inflates the ceiling (a test identical to ``train_unlabel`` gives ceiling 1.0)
and makes PGR look resolvable when it is not. ``check_splits`` refuses what breaks the measurement and
returns warnings, with counts, for what only weakens it:

* refused (``DataFormatError``): an id repeated within a split or shared by two splits (ids key dev
  submissions and verification), and a test split whose texts appear in a training split for more than
  ``MAX_TEST_TEXT_OVERLAP`` of its records;
* warned: any smaller test/train text overlap, text overlap between the two training splits, entities
  (the split key: ``entity``, else ``group``, else the id) shared between splits, and texts repeated
  within a split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from aarlab.testbed.errors import DataFormatError
from aarlab.testbed.schema import Record, record_texts

#: The largest share of test records whose texts may also be in a training split before a task is refused.
MAX_TEST_TEXT_OVERLAP = 0.10
_TRAIN = ("train_label", "train_unlabel")


def _ids(records: Sequence[Record], split: str) -> list[str]:
    # the id an item gets when the record has none is unique by construction
    return [r.id or f"{split}-{i}" for i, r in enumerate(records)]


def _entities(records: Sequence[Record], split: str) -> set[str]:
    return {r.entity or r.group or r.id or f"{split}-{i}" for i, r in enumerate(records)}


def _examples(values: Sequence[str] | set[str], n: int = 3) -> str:
    shown = [repr(v[:60]) for v in sorted(values)[:n]]
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def check_ids(splits: Mapping[str, Sequence[Record]]) -> None:
    """Refuse ids repeated within a split or shared by two splits (the message names them and where)."""
    seen: dict[str, str] = {}
    for split, records in splits.items():
        ids = _ids(records, split)
        counts = Counter(ids)
        dups = {k: c for k, c in counts.items() if c > 1}
        if dups:
            first = min(dups)
            where = [i + 1 for i, k in enumerate(ids) if k == first]
            raise DataFormatError(
                f"{split}.jsonl: {len(dups)} id(s) appear more than once ({sum(dups.values())} records, "
                f"{len(counts)} unique ids of {len(ids)}), e.g. {first!r} in records "
                f"{', '.join(map(str, where[:5]))}; give every record its own id (or omit ids)"
            )
        for k in ids:
            if k in seen:
                raise DataFormatError(
                    f"id {k!r} is in both {seen[k]}.jsonl and {split}.jsonl; an id names one record of "
                    "one split: rename it in one of them"
                )
            seen[k] = split


def check_overlap(splits: Mapping[str, Sequence[Record]]) -> list[str]:
    """Refuse a test split that mostly repeats training texts; return warnings for smaller overlaps.

    Texts are compared exactly as an encoder sees them (``record_texts``). Raises ``DataFormatError``
    when more than ``MAX_TEST_TEXT_OVERLAP`` of the test records repeat a training text.
    """
    warnings: list[str] = []
    texts = {s: [record_texts(r) for r in recs] for s, recs in splits.items()}
    sets = {s: set(t) for s, t in texts.items()}
    test = texts.get("test", [])
    for train in _TRAIN:
        if train not in sets or not test:
            continue
        shared = [t for t in test if t in sets[train]]
        if not shared:
            continue
        share = len(shared) / len(test)
        what = (
            f"{len(shared)} of {len(test)} test records ({share:.0%}) repeat a text of {train}.jsonl "
            f"(e.g. {_examples({' / '.join(t) for t in shared}, 2)})"
        )
        if len(set(test)) == len(sets[train]) == len(shared) and set(test) == sets[train]:
            what = f"test.jsonl has the same texts as {train}.jsonl ({len(test)} records)"
        if share > MAX_TEST_TEXT_OVERLAP:
            raise DataFormatError(
                f"{what}: the test split must be new to the models (overlap inflates the ceiling and "
                f"makes PGR meaningless; at most {MAX_TEST_TEXT_OVERLAP:.0%} is tolerated). Remove the "
                "repeated records from one of the splits"
            )
        warnings.append(f"{what}; scores on them measure memory, not transfer")
    if all(s in sets for s in _TRAIN):
        both = sets["train_label"] & sets["train_unlabel"]
        if both:
            warnings.append(
                f"{len(both)} texts are in both train_label.jsonl and train_unlabel.jsonl "
                f"(e.g. {_examples({' / '.join(t) for t in both}, 2)})"
            )
    names = list(splits)
    ents = {s: _entities(splits[s], s) for s in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = ents[a] & ents[b]
            if common:
                warnings.append(
                    f"{len(common)} entities (the split key: entity, else group, else id) are in both "
                    f"{a}.jsonl and {b}.jsonl (e.g. {_examples(common)}); records sharing an entity "
                    "should stay in one split"
                )
    for s, t in texts.items():
        repeated = {k: c for k, c in Counter(t).items() if c > 1}
        if repeated:
            warnings.append(
                f"{s}.jsonl: {len(repeated)} texts appear more than once ({sum(repeated.values())} records)"
            )
    return warnings


def check_splits(splits: Mapping[str, Sequence[Record]]) -> list[str]:
    """Every check above: raises ``DataFormatError`` for what is refused, returns the warnings."""
    check_ids(splits)
    return check_overlap(splits)
