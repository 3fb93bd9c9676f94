"""CHAMP answer matching, step 2: the single number a summary gives as its answer (see ``champ_matcher``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

from aarlab.testbed.tasks.champ_latex import HEDGE, normalize_latex, words_to_digits


@dataclass(frozen=True, slots=True)
class Number:
    """One number read from text.

    ``value`` is ``None`` for a number we can see but not evaluate exactly (``sqrt(3)``, ``2^(n-1)``):
    it still counts as "a number was given", so the matcher can abstain instead of guessing.
    ``places`` is the count of written decimal places (``None`` for integers and fractions); it decides
    whether a decimal is an approximation that may be compared after rounding.
    """

    value: Fraction | None
    start: int
    end: int
    places: int | None = None
    text: str = ""


_NUM = r"\d+(?:\.\d+)?"
_TOKEN = re.compile(
    rf"(?P<sqrt>sqrt\s*\(?\s*{_NUM}\s*\)?)"
    rf"|(?P<pow>{_NUM}\s*\^\s*(?:\(\s*)?-?\d+(?:\s*\))?)"
    rf"|(?P<frac>{_NUM}\s*/\s*{_NUM})"
    rf"|(?P<num>{_NUM})"
)
_MAX_EXPONENT = 20000


def _parse_plain(text: str) -> tuple[Fraction, int | None] | None:
    try:
        value = Fraction(Decimal(text))
    except (InvalidOperation, ValueError):
        return None
    places = len(text.split(".")[1]) if "." in text else None
    return value, places


def _is_negative(text: str, start: int) -> bool:
    """Whether the ``-`` right before ``start`` is a sign rather than a subtraction.

    A minus after a word ("is -1"), an operator or an opening bracket is a sign; after a digit, a one-
    letter variable or a closing bracket ("n - 1", "x^2-1") it is a subtraction.
    """
    j = start - 1
    while j >= 0 and text[j] == " ":
        j -= 1
    if j < 0 or text[j] != "-":
        return False
    j -= 1
    while j >= 0 and text[j] == " ":
        j -= 1
    if j < 0:
        return True
    prev = text[j]
    if prev.isdigit() or prev in ")]":
        return False
    if prev.isalpha():
        k = j
        while k >= 0 and text[k].isalpha():
            k -= 1
        return j - k >= 2  # a word such as "is", not a variable such as "n"
    return True


def _inside_call(text: str, start: int) -> bool:
    """Whether position ``start`` is inside the arguments of a call such as ``C(n+1, 2)`` or ``f(1)``."""
    depth = 0
    for i in range(start - 1, -1, -1):
        ch = text[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            if depth == 0:
                return i > 0 and text[i - 1].isalpha()
            depth -= 1
    return False


def extract_numbers(text: str) -> list[Number]:
    """Every standalone number in normalised ``text``, in order, with exact values where possible.

    Skipped on purpose: subscripts (``x_100``, ``a_(9000)``), digits glued to letters (``2n``, ``3rd``,
    ``x2``) and coefficients before a bracket (``2(n+1)``), because none of them is an answer. A number
    that is part of an unevaluated expression (``2^(n-1)``, ``sqrt(3)``, ``3!``) is kept with
    ``value=None``.
    """
    out: list[Number] = []
    for m in _TOKEN.finditer(text):
        start, end = m.start(), m.end()
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        if before.isalnum() or before in "_.":
            continue
        if before == "(" and start >= 2 and text[start - 2] == "_":
            continue
        in_call = _inside_call(text, start)
        tok = m.group(0)
        if m.group("sqrt"):
            out.append(Number(None, start, end, None, tok))
            continue
        if after.isalpha() or after == "(":  # 2n, 3rd, 3x, 2(n+1): not answers
            continue
        # Part of a larger expression ("2^(n-1)", "(1)/(x)", "6w + 8", "3!"): seen, but not a value.
        rest = text[end:].lstrip(")] ")
        lead = text[:start].rstrip("([ ")
        opaque = (
            after in "^!"
            or rest[:1] in ("^", "/", "*", "+", "!")
            or (rest.startswith(("- ", "-(")) and not rest.startswith("- -"))
            or lead[-1:] in ("^", "/", "*", "+")
            or in_call
        )
        if re.match(r"\s+[a-zA-Z](?![a-zA-Z])", text[end:]):
            opaque = True  # "2 a_0", "3 x 5": a coefficient or a dimension, not a value
        sign = -1 if _is_negative(text, start) else 1
        if sign == 1 and lead.endswith("-"):
            opaque = True  # the 1 of "2^n - 1" or "n-1"
        value: Fraction | None = None
        places: int | None = None
        if m.group("pow"):
            base_s, exp_s = re.split(r"\s*\^\s*", tok, maxsplit=1)
            exp_s = exp_s.strip("() ")
            parsed = _parse_plain(base_s)
            exp = int(exp_s)
            if parsed is not None and abs(exp) <= _MAX_EXPONENT:
                value = parsed[0] ** exp
        elif m.group("frac"):
            num_s, den_s = re.split(r"\s*/\s*", tok, maxsplit=1)
            num, den = _parse_plain(num_s), _parse_plain(den_s)
            if num is not None and den is not None and den[0] != 0:
                value = num[0] / den[0]
        else:
            parsed = _parse_plain(tok)
            if parsed is not None:
                value, places = parsed
                if text[end:].lstrip().startswith("%"):
                    value /= 100
                    places = (places or 0) + 2
                    tok += "%"
        if opaque:
            value = None
        out.append(Number(None if value is None else sign * value, start, end, places, tok))
    return out


_COPULA = re.compile(r"\b(?:is|are|was|be|equals?|equal\s+to|becomes|gives)\b|=|≡|:", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:[\s(]|\b(?:exactly|approximately|about|around|roughly|only|just|precisely|equal|to|given|by|"
    r"at|most|least|the|value|number|answer|of|always)\b|≈)*$",
    re.IGNORECASE,
)
# Where the answer clause ends. A justification ("because", ", as", ", which") always ends it; a
# condition ("when", "where", "if", "achieved") only once an answer number has been given, since in
# "The remainder when p(x^7) is divided by p(x) is 1" the condition belongs to the subject.
_REASON_MARK = re.compile(
    r",\s*(?:which|since|as|because|showing|implying|so\s+that|for\s+example|e\.g\.|i\.e\.)\b|"
    r"\s(?:because|since|due\s+to|as\s+shown|as\s+(?:it|they|this|we)\s+(?!is\b|are\b))\b|;|—",
    re.IGNORECASE,
)
_CONDITION_MARK = re.compile(
    r",\s*(?:where|when|achieved|attained|obtained|occurring|with|given|if|specifically|namely|for)\b|"
    r"\s(?:which\s+(?:occurs|is\s+achieved|happens)|when|where|if|achieved|attained)\b",
    re.IGNORECASE,
)
_LIST_AFTER = re.compile(
    r"^\s*(?:,|\band\b|\bor\b)\s*(?:and\s+|or\s+)?(?:[±-]?\s*\d|[a-zA-Z]\s*=|[a-zA-Z](?![a-zA-Z]))"
)
_LIST_BEFORE = re.compile(r"\d\s*(?:,|\band\b|\bor\b)\s*(?:and\s+|or\s+)?(?:[a-zA-Z]\s*=\s*)?[±-]?\s*$")
_ZERO_COUNT = re.compile(
    r"\b(?:there\s+(?:is|are|exist)\s+no|has\s+no|have\s+no|none|not\s+(?:have|possess)\s+any|"
    r"no\s+(?:[\w-]+\s+){0,3}(?:values?|solutions?|roots?|zeros?|zeroes|ways?|pairs?|numbers?|integers?|"
    r"sequences?|selections?|terms?|n)\b)",
    re.IGNORECASE,
)
_HOW_MANY = re.compile(r"\bhow\s+many\b", re.IGNORECASE)


def _says_none(clause: str, problem_text: str) -> bool:
    """Whether ``clause`` states a count of zero ("has no real zeros") not copied from the problem."""
    flat = re.sub(r"\s+", " ", problem_text.lower())
    return any(m.group(0).lower() not in flat for m in _ZERO_COUNT.finditer(clause))


def _answer_clause_end(text: str, numbers: list[Number]) -> int:
    """Index where the answer clause of a summary ends ("is 0, which occurs when a = b" -> after "0")."""
    copulas = [m.end() for m in _COPULA.finditer(text)]
    first_reason = _REASON_MARK.search(text)
    end = first_reason.start() if first_reason else len(text)
    for m in _CONDITION_MARK.finditer(text[:end]):
        answered = any(
            c <= n.start and n.end <= m.start() for c in copulas for n in numbers if n.value is not None
        )
        if answered:
            return m.start()
    return end


def _after_copula(text: str, numbers: list[Number], end: int) -> Number | None:
    """The number directly after the last "is/are/=/equals" before ``end``, if one follows it.

    Only the *last* copula of the answer clause counts: in "the maximum number k with f(k) = 8 is the
    degree of f" the answer is "the degree", not 8.
    """
    last = None
    for m in _COPULA.finditer(text[:end]):
        last = m
    if last is None:
        return None
    for num in numbers:
        if num.start >= last.end():
            gap = text[last.end() : num.start].replace("-", "")
            return num if _FILLER.match(gap) else None
    return None


def _in_list(text: str, num: Number) -> bool:
    """Whether ``num`` is one element of an enumeration ("0, 3, and 21", "376 and 625")."""
    return bool(_LIST_AFTER.match(text[num.end :]) or _LIST_BEFORE.search(text[: num.start]))


@lru_cache(maxsize=1024)
def _problem_numbers(problem: str) -> tuple[str, frozenset[Fraction], frozenset[str]]:
    """A problem's prepared text, the values it mentions, and the digit strings it contains.

    An opaque number in a summary (the 2 of x^2) is a restatement when its digits occur in the problem
    at all. Cached: every problem is judged against 72 summaries.
    """
    text = _prepare(problem)
    values = frozenset(n.value for n in extract_numbers(text) if n.value is not None)
    return text, values, frozenset(_digits(text))


def _digits(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", text))


def _prepare(text: str) -> str:
    return words_to_digits(normalize_latex(text))


def candidate_number(summary: str, problem: str) -> Number | None:
    """The single number a summary gives as its answer, or ``None`` if there is none or several.

    Summaries restate the problem ("There are 144 subsets of {1, ..., 10} ..."), so numbers already in
    the problem are discounted. If exactly one new value remains it is the answer. With several new
    values, the one right after the last "is/are/=" wins if it is among them (a derivation "... = 252"),
    otherwise the summary is ambiguous. With none, the answer may legitimately repeat a problem number
    ("the remainder ... is 0"), so the number after the last "is/are/=" is taken. For a "how many"
    problem, "there are no such values" with no number is a count of 0. A pick inside an enumeration
    is a list answer, and a hedge ("cannot be determined") is no answer: both give ``None``.
    """
    text = _prepare(summary)
    if HEDGE.search(text):
        return None
    numbers = extract_numbers(text)
    problem_text, known, known_digits = _problem_numbers(problem)
    clause_end = _answer_clause_end(text, numbers)
    novel = [
        n
        for n in numbers
        if n.start < clause_end
        and (
            (n.value is None and bool(_digits(n.text) - known_digits))
            or (n.value is not None and n.value not in known)
        )
    ]
    values = {n.value for n in novel}
    tail = _after_copula(text, numbers, clause_end)
    pick: Number | None
    if len(values) == 1:
        pick = novel[-1]
    elif len(values) > 1:
        pick = tail if tail is not None and tail in novel else None
    elif tail is not None:
        pick = tail
    elif _HOW_MANY.search(problem_text) and _says_none(text[:clause_end], problem_text):
        return Number(Fraction(0), 0, 0, None, "no")
    else:
        pick = None
    if pick is None or pick.value is None or _in_list(text, pick):
        return None
    return pick
