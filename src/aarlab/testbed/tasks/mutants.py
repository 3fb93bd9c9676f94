"""Deterministic single-edit AST mutants of one function's body (for code-correctness tasks).

Each mutant applies exactly one edit inside the target function (never to its docstring, never outside
it): delete a statement, change a number by ±1, return early, swap a binary / augmented /
comparison / boolean operator, swap the operands of a binary operator or a comparison, drop a ``not``,
negate a condition, flip ``True``/``False``, swap ``min``/``max``, ``any``/``all`` or a string method
(``lower``/``upper``, ``startswith``/``endswith``, ...), drop a keyword argument of a call, replace a
one-argument call by its argument (``len(set(x))`` → ``len(x)``), drop a comprehension's ``if``, edit
a string literal, shift a ``range`` bound, a slice bound or an index by ±1.

A mutant is *not* a bug by construction: many edits are harmless (a dead statement, an unreached
branch, a bound the tests never reach). Label mutants by running their tests.

Every edit site is enumerated in a fixed traversal order; ``seed`` only shuffles the sites (round-robin
over edit kinds, so a small ``limit`` still mixes kinds). The result is deterministic for a given
source, seed and limit, and every mutant is rendered with ``ast.unparse``.
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aarlab.testbed.tasks.mutant_sites import (
    ATTR_SWAPS,
    BINOP_SWAPS,
    CMP_SWAPS,
    NAME_SWAPS,
    SiteIndex,
    attributes,
    binops,
    bool_constants,
    builtin_names,
    compare_ops,
    conditions,
    early_slots,
    filters,
    find_function,
    indexes,
    int_constants,
    keyword_calls,
    nots,
    operand_pairs,
    range_calls,
    return_value,
    shift,
    slice_bounds,
    strings,
    unwrappable,
)

__all__ = ["KINDS", "enumerate_sites", "find_function", "mutants"]

KINDS = (
    "delete",
    "constant",
    "return_early",
    "binop",
    "compare",
    "boolop",
    "not",
    "negate",
    "bool_constant",
    "builtin",
    "attribute",
    "operands",
    "keyword",
    "unwrap",
    "filter",
    "string",
    "range",
    "slice",
    "index",
)


@dataclass(frozen=True, slots=True)
class _Site:
    kind: str
    index: int
    variant: int


def _variants(kind: str, ix: SiteIndex) -> list[int]:
    """How many variants each site of ``kind`` has, in site order."""
    if kind == "delete":
        return [1] * len(ix.slots)
    if kind == "constant":
        return [2] * len(int_constants(ix))
    if kind == "return_early":
        return [1] * len(early_slots(ix))
    if kind == "binop":
        return [len(BINOP_SWAPS[type(n.op)]) for n in binops(ix)]
    if kind == "compare":
        return [len(CMP_SWAPS[type(n.ops[i])]) for n, i in compare_ops(ix)]
    if kind == "boolop":
        return [1] * len(ix.of(ast.BoolOp))
    if kind == "not":
        return [1] * len(nots(ix))
    if kind == "negate":
        return [1] * len(conditions(ix))
    if kind == "bool_constant":
        return [1] * len(bool_constants(ix))
    if kind == "builtin":
        return [1] * len(builtin_names(ix))
    if kind == "attribute":
        return [1] * len(attributes(ix))
    if kind == "operands":
        return [1] * len(operand_pairs(ix))
    if kind == "keyword":
        return [len(c.keywords) for c in keyword_calls(ix)]
    if kind == "unwrap":
        return [1] * len(unwrappable(ix))
    if kind == "filter":
        return [len(c.ifs) for c in filters(ix)]
    if kind == "string":
        return [1] * len(strings(ix))
    if kind == "range":
        return [2 * min(len(c.args), 2) for c in range_calls(ix)]
    if kind == "slice":
        return [2] * len(slice_bounds(ix))
    if kind == "index":
        return [2] * len(indexes(ix))
    raise ValueError(f"unknown mutation kind {kind!r}")


def _apply(site: _Site, ix: SiteIndex) -> None:
    """Apply one edit in place on a fresh copy of the tree."""
    k, v = site.index, site.variant
    delta = 1 if v % 2 == 0 else -1
    if site.kind == "delete":
        body, pos = ix.slots[k]
        del body[pos]
        if not body:
            body.append(ast.Pass())
    elif site.kind == "constant":
        const = int_constants(ix)[k]
        assert isinstance(const.value, int | float)
        const.value = const.value + delta
    elif site.kind == "return_early":
        body, pos = early_slots(ix)[k]
        body.insert(pos, ast.Return(value=return_value(ix.fn)))
    elif site.kind == "binop":
        node = binops(ix)[k]
        node.op = BINOP_SWAPS[type(node.op)][v]()
    elif site.kind == "compare":
        cmp, i = compare_ops(ix)[k]
        cmp.ops[i] = CMP_SWAPS[type(cmp.ops[i])][v]()
    elif site.kind == "boolop":
        boolop = ix.of(ast.BoolOp)[k]
        assert isinstance(boolop, ast.BoolOp)
        boolop.op = ast.Or() if isinstance(boolop.op, ast.And) else ast.And()
    elif site.kind == "not":
        unary = nots(ix)[k]
        ix.replace(unary, unary.operand)
    elif site.kind == "negate":
        cond = conditions(ix)[k]
        cond.test = ast.UnaryOp(op=ast.Not(), operand=cond.test)
    elif site.kind == "bool_constant":
        flag = bool_constants(ix)[k]
        flag.value = not flag.value
    elif site.kind == "builtin":
        name = builtin_names(ix)[k]
        name.id = NAME_SWAPS[name.id]
    elif site.kind == "attribute":
        attr = attributes(ix)[k]
        attr.attr = ATTR_SWAPS[attr.attr]
    elif site.kind == "operands":
        pair = operand_pairs(ix)[k]
        if isinstance(pair, ast.BinOp):
            pair.left, pair.right = pair.right, pair.left
        else:
            pair.left, pair.comparators[0] = pair.comparators[0], pair.left
    elif site.kind == "keyword":
        del keyword_calls(ix)[k].keywords[v]
    elif site.kind == "unwrap":
        call = unwrappable(ix)[k]
        ix.replace(call, call.args[0])
    elif site.kind == "filter":
        del filters(ix)[k].ifs[v]
    elif site.kind == "string":
        text = strings(ix)[k]
        assert isinstance(text.value, str)
        text.value = text.value[:-1] if text.value else " "
    elif site.kind == "range":
        call = range_calls(ix)[k]
        # One argument is the stop; with two or more, args[0] is the start and args[1] the stop.
        pos = (0 if len(call.args) == 1 else 1) if v < 2 else 0
        call.args[pos] = shift(call.args[pos], delta)
    elif site.kind == "slice":
        sl, field = slice_bounds(ix)[k]
        setattr(sl, field, shift(getattr(sl, field), delta))
    elif site.kind == "index":
        sub = indexes(ix)[k]
        sub.slice = shift(sub.slice, delta)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown mutation kind {site.kind!r}")


def _interleave(groups: list[list[_Site]]) -> Iterator[_Site]:
    """Round-robin over the groups: one site of each kind in turn."""
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        for g in groups:
            if i < len(g):
                yield g[i]


def enumerate_sites(source: str, target: str | None = None) -> list[tuple[str, int, int]]:
    """Every possible single edit of ``target`` in ``source`` as ``(kind, site, variant)``."""
    fn = find_function(ast.parse(source), target)
    ix = SiteIndex(fn)
    return [(kind, i, v) for kind in KINDS for i, n in enumerate(_variants(kind, ix)) for v in range(n)]


def mutants(
    source: str,
    seed: int,
    limit: int,
    *,
    target: str | None = None,
    kinds: tuple[str, ...] = KINDS,
    is_valid: Callable[[str], bool] | None = None,
) -> list[str]:
    """Up to ``limit`` distinct single-edit mutants of function ``target`` (default: the last top-level
    function), each the whole module re-rendered with ``ast.unparse``.

    Every mutant compiles and differs from ``ast.unparse`` of the original. ``is_valid`` is an optional
    extra filter on the mutant's source. Deterministic for a given ``source``, ``seed`` and ``limit``.
    """
    if limit <= 0:
        return []
    tree = ast.parse(source)
    original = ast.unparse(tree)
    ix = SiteIndex(find_function(tree, target))
    rng = random.Random(seed)
    order = list(kinds)
    rng.shuffle(order)
    groups: list[list[_Site]] = []
    for kind in order:
        sites = [_Site(kind, i, v) for i, n in enumerate(_variants(kind, ix)) for v in range(n)]
        rng.shuffle(sites)
        groups.append(sites)
    seen = {original}
    out: list[str] = []
    for site in _interleave(groups):
        fresh = copy.deepcopy(tree)
        _apply(site, SiteIndex(find_function(fresh, target)))
        try:
            text = ast.unparse(ast.fix_missing_locations(fresh))
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError, RecursionError):
            continue
        if text in seen or (is_valid is not None and not is_valid(text)):
            continue
        seen.add(text)
        out.append(text)
        if len(out) >= limit:
            break
    return out
