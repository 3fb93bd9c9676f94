"""Where a single-edit mutant can edit a function: its statements and expressions, by kind, in order.

``SiteIndex`` walks a function once (docstring excluded); each ``*`` finder lists the nodes one edit kind
can change. ``mutants.py`` turns these sites into edited copies.
"""

from __future__ import annotations

import ast
import copy

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

BINOP_SWAPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
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
CMP_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
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
NAME_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
ATTR_SWAPS = {
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
STMT_FIELDS = ("body", "orelse", "finalbody")


def docstring_stmt(fn: FunctionNode) -> ast.stmt | None:
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


class SiteIndex:
    """Every editable place inside one function, in a fixed order (re-derived on each fresh copy)."""

    def __init__(self, fn: FunctionNode) -> None:
        self.fn = fn
        doc = docstring_stmt(fn)
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
        for field in STMT_FIELDS:
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


def shift(expr: ast.expr, delta: int) -> ast.expr:
    op: ast.operator = ast.Add() if delta > 0 else ast.Sub()
    return ast.BinOp(left=expr, op=op, right=ast.Constant(abs(delta)))


def int_constants(ix: SiteIndex) -> list[ast.Constant]:
    return [n for n in ix.of(ast.Constant) if isinstance(n, ast.Constant) and type(n.value) is int]


def bool_constants(ix: SiteIndex) -> list[ast.Constant]:
    return [n for n in ix.of(ast.Constant) if isinstance(n, ast.Constant) and type(n.value) is bool]


def compare_ops(ix: SiteIndex) -> list[tuple[ast.Compare, int]]:
    return [
        (n, i)
        for n in ix.of(ast.Compare)
        if isinstance(n, ast.Compare)
        for i, op in enumerate(n.ops)
        if type(op) in CMP_SWAPS
    ]


def binops(ix: SiteIndex) -> list[ast.BinOp | ast.AugAssign]:
    return [n for n in ix.nodes if isinstance(n, ast.BinOp | ast.AugAssign) and type(n.op) in BINOP_SWAPS]


def nots(ix: SiteIndex) -> list[ast.UnaryOp]:
    return [n for n in ix.of(ast.UnaryOp) if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)]


def conditions(ix: SiteIndex) -> list[ast.If | ast.While | ast.IfExp]:
    return [n for n in ix.nodes if isinstance(n, ast.If | ast.While | ast.IfExp)]


def builtin_names(ix: SiteIndex) -> list[ast.Name]:
    return [n for n in ix.of(ast.Name) if isinstance(n, ast.Name) and n.id in NAME_SWAPS]


def attributes(ix: SiteIndex) -> list[ast.Attribute]:
    return [n for n in ix.of(ast.Attribute) if isinstance(n, ast.Attribute) and n.attr in ATTR_SWAPS]


def operand_pairs(ix: SiteIndex) -> list[ast.BinOp | ast.Compare]:
    """Binary operations and single-operator comparisons whose operands can be swapped."""
    return [
        n for n in ix.nodes if isinstance(n, ast.BinOp) or (isinstance(n, ast.Compare) and len(n.ops) == 1)
    ]


def keyword_calls(ix: SiteIndex) -> list[ast.Call]:
    return [n for n in ix.of(ast.Call) if isinstance(n, ast.Call) and n.keywords]


def unwrappable(ix: SiteIndex) -> list[ast.Call]:
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


def filters(ix: SiteIndex) -> list[ast.comprehension]:
    return [n for n in ix.of(ast.comprehension) if isinstance(n, ast.comprehension) and n.ifs]


def strings(ix: SiteIndex) -> list[ast.Constant]:
    """String literals (not docstrings, not parts of f-strings)."""
    inside_fstring = {id(v) for n in ix.of(ast.JoinedStr) if isinstance(n, ast.JoinedStr) for v in n.values}
    return [
        n
        for n in ix.of(ast.Constant)
        if isinstance(n, ast.Constant) and type(n.value) is str and id(n) not in inside_fstring
    ]


def range_calls(ix: SiteIndex) -> list[ast.Call]:
    return [
        n
        for n in ix.of(ast.Call)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id == "range"
        and 1 <= len(n.args) <= 3
        and not n.keywords
    ]


def slice_bounds(ix: SiteIndex) -> list[tuple[ast.Slice, str]]:
    return [
        (n, field)
        for n in ix.of(ast.Slice)
        if isinstance(n, ast.Slice)
        for field in ("lower", "upper")
        if getattr(n, field) is not None
    ]


def indexes(ix: SiteIndex) -> list[ast.Subscript]:
    """Subscripts with a computed (non-literal) index: ``x[i]`` → ``x[i ± 1]``."""
    return [
        n
        for n in ix.of(ast.Subscript)
        if isinstance(n, ast.Subscript)
        and isinstance(n.ctx, ast.Load)
        and isinstance(n.slice, ast.Name | ast.BinOp | ast.UnaryOp | ast.Call)
    ]


def early_slots(ix: SiteIndex) -> list[tuple[list[ast.stmt], int]]:
    """Positions for an inserted ``return``: after each top-level statement but the last (and not right
    before a ``return``, which would only duplicate it), and at the start of every loop body."""
    doc = docstring_stmt(ix.fn)
    body = ix.fn.body
    first = 1 if doc is not None else 0
    places: list[tuple[list[ast.stmt], int]] = [
        (body, i + 1) for i in range(first, len(body) - 1) if not isinstance(body[i + 1], ast.Return)
    ]
    places += [(n.body, 0) for n in ix.nodes if isinstance(n, ast.For | ast.While | ast.AsyncFor)]
    return places


def return_value(fn: FunctionNode) -> ast.expr | None:
    """What the function returns at its end (the last top-level ``return``), copied for reuse."""
    for stmt in reversed(fn.body):
        if isinstance(stmt, ast.Return):
            return copy.deepcopy(stmt.value)
    return None
