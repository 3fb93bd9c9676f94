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

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

_BINOP_SWAPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Add, ast.FloorDiv),
    ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mod),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
    ast.LShift: (ast.RShift,),
    ast.RShift: (ast.LShift,),
    ast.BitAnd: (ast.BitOr,),
    ast.BitOr: (ast.BitAnd,),
    ast.BitXor: (ast.BitOr,),
}
_CMP_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
_NAME_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
_ATTR_SWAPS = {
    "lower": "upper",
    "upper": "lower",
    "islower": "isupper",
    "isupper": "islower",
    "startswith": "endswith",
    "endswith": "startswith",
    "isdigit": "isalpha",
    "isalpha": "isdigit",
    "lstrip": "rstrip",
    "rstrip": "lstrip",
    "find": "rfind",
    "rfind": "find",
}
_STMT_FIELDS = ("body", "orelse", "finalbody")

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


def _docstring_stmt(fn: FunctionNode) -> ast.stmt | None:
    first = fn.body[0] if fn.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        return first if isinstance(first.value.value, str) else None
    return None


def find_function(tree: ast.Module, name: str | None = None) -> FunctionNode:
    """The top-level function called ``name`` (the last top-level function when ``name`` is None)."""
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if name is not None:
        funcs = [f for f in funcs if f.name == name]
    if not funcs:
        raise ValueError(f"no top-level function {name!r} in the source" if name else "no top-level function")
    return funcs[-1]


class _Index:
    """Every editable place inside one function, in a fixed order (re-derived on each fresh copy)."""

    def __init__(self, fn: FunctionNode) -> None:
        self.fn = fn
        doc = _docstring_stmt(fn)
        #: (statement list, position) for every statement, docstring excluded.
        self.slots: list[tuple[list[ast.stmt], int]] = []
        self.nodes: list[ast.AST] = []
        self.parent: dict[int, tuple[ast.AST, str, int | None]] = {}
        top = [s for s in fn.body if s is not doc]
        for stmt in top:
            self._walk(stmt)
        self._collect_slots(fn, doc)

    def _walk(self, root: ast.AST) -> None:
        stack: list[ast.AST] = [root]
        while stack:
            node = stack.pop()
            self.nodes.append(node)
            children: list[ast.AST] = []
            for field, value in ast.iter_fields(node):
                if isinstance(value, list):
                    for i, v in enumerate(value):
                        if isinstance(v, ast.AST):
                            self.parent[id(v)] = (node, field, i)
                            children.append(v)
                elif isinstance(value, ast.AST):
                    self.parent[id(value)] = (node, field, None)
                    children.append(value)
            stack.extend(reversed(children))

    def _collect_slots(self, owner: ast.AST, doc: ast.stmt | None) -> None:
        for field in _STMT_FIELDS:
            body = getattr(owner, field, None)
            if isinstance(body, list):
                for i, stmt in enumerate(body):
                    if stmt is doc:
                        continue
                    self.slots.append((body, i))
                    self._collect_slots(stmt, None)
        for handler in getattr(owner, "handlers", []):
            self._collect_slots(handler, None)
        for case in getattr(owner, "cases", []):
            self._collect_slots(case, None)

    def of(self, kind: type[ast.AST]) -> list[ast.AST]:
        return [n for n in self.nodes if isinstance(n, kind)]

    def replace(self, node: ast.AST, new: ast.AST) -> None:
        parent, field, pos = self.parent[id(node)]
        if pos is None:
            setattr(parent, field, new)
        else:
            getattr(parent, field)[pos] = new


def _shift(expr: ast.expr, delta: int) -> ast.expr:
    op: ast.operator = ast.Add() if delta > 0 else ast.Sub()
    return ast.BinOp(left=expr, op=op, right=ast.Constant(abs(delta)))


def _int_constants(ix: _Index) -> list[ast.Constant]:
    return [n for n in ix.of(ast.Constant) if isinstance(n, ast.Constant) and type(n.value) is int]


def _bool_constants(ix: _Index) -> list[ast.Constant]:
    return [n for n in ix.of(ast.Constant) if isinstance(n, ast.Constant) and type(n.value) is bool]


def _compare_ops(ix: _Index) -> list[tuple[ast.Compare, int]]:
    return [
        (n, i)
        for n in ix.of(ast.Compare)
        if isinstance(n, ast.Compare)
        for i, op in enumerate(n.ops)
        if type(op) in _CMP_SWAPS
    ]


def _binops(ix: _Index) -> list[ast.BinOp | ast.AugAssign]:
    return [n for n in ix.nodes if isinstance(n, ast.BinOp | ast.AugAssign) and type(n.op) in _BINOP_SWAPS]


def _nots(ix: _Index) -> list[ast.UnaryOp]:
    return [n for n in ix.of(ast.UnaryOp) if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)]


def _conditions(ix: _Index) -> list[ast.If | ast.While | ast.IfExp]:
    return [n for n in ix.nodes if isinstance(n, ast.If | ast.While | ast.IfExp)]


def _builtin_names(ix: _Index) -> list[ast.Name]:
    return [n for n in ix.of(ast.Name) if isinstance(n, ast.Name) and n.id in _NAME_SWAPS]


def _attributes(ix: _Index) -> list[ast.Attribute]:
    return [n for n in ix.of(ast.Attribute) if isinstance(n, ast.Attribute) and n.attr in _ATTR_SWAPS]


def _operand_pairs(ix: _Index) -> list[ast.BinOp | ast.Compare]:
    """Binary operations and single-operator comparisons whose operands can be swapped."""
    return [
        n for n in ix.nodes if isinstance(n, ast.BinOp) or (isinstance(n, ast.Compare) and len(n.ops) == 1)
    ]


def _keyword_calls(ix: _Index) -> list[ast.Call]:
    return [n for n in ix.of(ast.Call) if isinstance(n, ast.Call) and n.keywords]


def _unwrappable(ix: _Index) -> list[ast.Call]:
    """One-argument calls (``f(x)``, ``obj.m(x)``) that can be replaced by their argument."""
    return [
        n
        for n in ix.of(ast.Call)
        if isinstance(n, ast.Call)
        and len(n.args) == 1
        and not n.keywords
        and not isinstance(n.args[0], ast.Starred)
        and id(n) in ix.parent
    ]


def _filters(ix: _Index) -> list[ast.comprehension]:
    return [n for n in ix.of(ast.comprehension) if isinstance(n, ast.comprehension) and n.ifs]


def _strings(ix: _Index) -> list[ast.Constant]:
    """String literals (not docstrings, not parts of f-strings)."""
    inside_fstring = {id(v) for n in ix.of(ast.JoinedStr) if isinstance(n, ast.JoinedStr) for v in n.values}
    return [
        n
        for n in ix.of(ast.Constant)
        if isinstance(n, ast.Constant) and type(n.value) is str and id(n) not in inside_fstring
    ]


def _range_calls(ix: _Index) -> list[ast.Call]:
    return [
        n
        for n in ix.of(ast.Call)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id == "range"
        and 1 <= len(n.args) <= 3
        and not n.keywords
    ]


def _slice_bounds(ix: _Index) -> list[tuple[ast.Slice, str]]:
    return [
        (n, field)
        for n in ix.of(ast.Slice)
        if isinstance(n, ast.Slice)
        for field in ("lower", "upper")
        if getattr(n, field) is not None
    ]


def _indexes(ix: _Index) -> list[ast.Subscript]:
    """Subscripts with a computed (non-literal) index: ``x[i]`` → ``x[i ± 1]``."""
    return [
        n
        for n in ix.of(ast.Subscript)
        if isinstance(n, ast.Subscript)
        and isinstance(n.ctx, ast.Load)
        and isinstance(n.slice, ast.Name | ast.BinOp | ast.UnaryOp | ast.Call)
    ]


def _early_slots(ix: _Index) -> list[tuple[list[ast.stmt], int]]:
    """Positions for an inserted ``return``: after each top-level statement but the last (and not right
    before a ``return``, which would only duplicate it), and at the start of every loop body."""
    doc = _docstring_stmt(ix.fn)
    body = ix.fn.body
    first = 1 if doc is not None else 0
    places: list[tuple[list[ast.stmt], int]] = [
        (body, i + 1) for i in range(first, len(body) - 1) if not isinstance(body[i + 1], ast.Return)
    ]
    places += [(n.body, 0) for n in ix.nodes if isinstance(n, ast.For | ast.While | ast.AsyncFor)]
    return places


def _return_value(fn: FunctionNode) -> ast.expr | None:
    """What the function returns at its end (the last top-level ``return``), copied for reuse."""
    for stmt in reversed(fn.body):
        if isinstance(stmt, ast.Return):
            return copy.deepcopy(stmt.value)
    return None


def _variants(kind: str, ix: _Index) -> list[int]:
    """How many variants each site of ``kind`` has, in site order."""
    if kind == "delete":
        return [1] * len(ix.slots)
    if kind == "constant":
        return [2] * len(_int_constants(ix))
    if kind == "return_early":
        return [1] * len(_early_slots(ix))
    if kind == "binop":
        return [len(_BINOP_SWAPS[type(n.op)]) for n in _binops(ix)]
    if kind == "compare":
        return [len(_CMP_SWAPS[type(n.ops[i])]) for n, i in _compare_ops(ix)]
    if kind == "boolop":
        return [1] * len(ix.of(ast.BoolOp))
    if kind == "not":
        return [1] * len(_nots(ix))
    if kind == "negate":
        return [1] * len(_conditions(ix))
    if kind == "bool_constant":
        return [1] * len(_bool_constants(ix))
    if kind == "builtin":
        return [1] * len(_builtin_names(ix))
    if kind == "attribute":
        return [1] * len(_attributes(ix))
    if kind == "operands":
        return [1] * len(_operand_pairs(ix))
    if kind == "keyword":
        return [len(c.keywords) for c in _keyword_calls(ix)]
    if kind == "unwrap":
        return [1] * len(_unwrappable(ix))
    if kind == "filter":
        return [len(c.ifs) for c in _filters(ix)]
    if kind == "string":
        return [1] * len(_strings(ix))
    if kind == "range":
        return [2 * min(len(c.args), 2) for c in _range_calls(ix)]
    if kind == "slice":
        return [2] * len(_slice_bounds(ix))
    if kind == "index":
        return [2] * len(_indexes(ix))
    raise ValueError(f"unknown mutation kind {kind!r}")


def _apply(site: _Site, ix: _Index) -> None:
    """Apply one edit in place on a fresh copy of the tree."""
    k, v = site.index, site.variant
    delta = 1 if v % 2 == 0 else -1
    if site.kind == "delete":
        body, pos = ix.slots[k]
        del body[pos]
        if not body:
            body.append(ast.Pass())
    elif site.kind == "constant":
        const = _int_constants(ix)[k]
        assert isinstance(const.value, int | float)
        const.value = const.value + delta
    elif site.kind == "return_early":
        body, pos = _early_slots(ix)[k]
        body.insert(pos, ast.Return(value=_return_value(ix.fn)))
    elif site.kind == "binop":
        node = _binops(ix)[k]
        node.op = _BINOP_SWAPS[type(node.op)][v]()
    elif site.kind == "compare":
        cmp, i = _compare_ops(ix)[k]
        cmp.ops[i] = _CMP_SWAPS[type(cmp.ops[i])][v]()
    elif site.kind == "boolop":
        boolop = ix.of(ast.BoolOp)[k]
        assert isinstance(boolop, ast.BoolOp)
        boolop.op = ast.Or() if isinstance(boolop.op, ast.And) else ast.And()
    elif site.kind == "not":
        unary = _nots(ix)[k]
        ix.replace(unary, unary.operand)
    elif site.kind == "negate":
        cond = _conditions(ix)[k]
        cond.test = ast.UnaryOp(op=ast.Not(), operand=cond.test)
    elif site.kind == "bool_constant":
        flag = _bool_constants(ix)[k]
        flag.value = not flag.value
    elif site.kind == "builtin":
        name = _builtin_names(ix)[k]
        name.id = _NAME_SWAPS[name.id]
    elif site.kind == "attribute":
        attr = _attributes(ix)[k]
        attr.attr = _ATTR_SWAPS[attr.attr]
    elif site.kind == "operands":
        pair = _operand_pairs(ix)[k]
        if isinstance(pair, ast.BinOp):
            pair.left, pair.right = pair.right, pair.left
        else:
            pair.left, pair.comparators[0] = pair.comparators[0], pair.left
    elif site.kind == "keyword":
        del _keyword_calls(ix)[k].keywords[v]
    elif site.kind == "unwrap":
        call = _unwrappable(ix)[k]
        ix.replace(call, call.args[0])
    elif site.kind == "filter":
        del _filters(ix)[k].ifs[v]
    elif site.kind == "string":
        text = _strings(ix)[k]
        assert isinstance(text.value, str)
        text.value = text.value[:-1] if text.value else " "
    elif site.kind == "range":
        call = _range_calls(ix)[k]
        # One argument is the stop; with two or more, args[0] is the start and args[1] the stop.
        pos = (0 if len(call.args) == 1 else 1) if v < 2 else 0
        call.args[pos] = _shift(call.args[pos], delta)
    elif site.kind == "slice":
        sl, field = _slice_bounds(ix)[k]
        setattr(sl, field, _shift(getattr(sl, field), delta))
    elif site.kind == "index":
        sub = _indexes(ix)[k]
        sub.slice = _shift(sub.slice, delta)  # type: ignore[arg-type]
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
    ix = _Index(fn)
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
    ix = _Index(find_function(tree, target))
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
        _apply(site, _Index(find_function(fresh, target)))
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
