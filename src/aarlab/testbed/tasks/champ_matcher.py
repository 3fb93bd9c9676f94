"""Final-answer matching for CHAMP: is a model's one-sentence answer summary right?

CHAMP (``champ-dataset``) gives each problem a free-text reference answer and each model conversation a
final one-sentence summary, but no correctness label. These pure functions turn (reference, problem,
summary) into ``True``/``False``, or ``None`` when a careful reader could not tell. Abstaining is the
point: a wrong label silently poisons a weak-to-strong experiment, a missing one only shrinks the pool.
A hand audit (``data/champ_audit.jsonl``, ``scripts/champ_audit.py``) measures the agreement.

Scope (RECIPES.md, then the audit): only references that are one rational number ("239", "5/14, or
approximately 35.7%", "0 is the only possible value", "The limit exists and is equal to 2/3") or a bare
Yes/No, plus the "No integer solutions" / "No such values" family, which is a No to "does one exist?".
Lists, formulas in ``n``, irrational numbers and compound answers are out of scope (``None``).

- **Numbers.** LaTeX is normalised first (``\\frac{a}{b}``, ``\\boxed``, ``2{,}001``, ``2^{10}``) and
  small number words become digits. Only the *answer clause* is read: what follows a justification
  ("because", ", which", ", as") or, once a number was given, a condition ("when a = b") is ignored.
  The candidate's number is the one there that does *not* occur in the problem (summaries restate the
  problem's numbers), else the one right after the last "is/are/=/equals". Several new numbers, a
  number inside an unevaluated expression (``2^(n-1)``, ``C(n+1, 2)``, ``sqrt(3)``), an enumeration
  ("0, 3 and 21", "0 and k") or a hedge give ``None``. For "how many" problems, "has no real zeros"
  is a count of 0. Comparison is exact (``fractions.Fraction``); a decimal that is not exact counts only
  when it is the reference rounded (or truncated) at its written precision with at least three
  significant digits ("approximately 0.357" for 5/14).
- **Yes/No.** An explicit leading "Yes"/"No" (or "the answer is yes/no") decides. Otherwise the main
  clause (after ", so"/"then"/a leading "Since ...,", before "because"/", which"/a second sentence) is
  read: one negation that does not merely restate the problem is a No; an affirmative cue ("it is
  possible", "there exists", "always", "can be", "is divisible", ...) without negation is a Yes; for
  existence questions ("Are there ...?", "Find all ...") stating solutions ("x = 3", "(9, 4)") is a
  Yes. Hedges ("cannot be determined", "may", "not necessarily"), exceptions ("other than"), double
  negations and questions that are themselves negated ("Must x_n != 0?") abstain unless the answer
  starts with an explicit Yes/No.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Literal

__all__ = [
    "Number",
    "Reference",
    "candidate_number",
    "candidate_polarity",
    "extract_numbers",
    "match_answer",
    "normalize_latex",
    "parse_reference",
]

# ----------------------------------------------------------------------------------------------------
# LaTeX / text normalisation
# ----------------------------------------------------------------------------------------------------

_BRACE_COMMANDS = ("boxed", "text", "textbf", "mathrm", "mathbf", "textit", "mbox", "operatorname")
_DROP = (
    r"\left",
    r"\right",
    r"\displaystyle",
    r"\bigl",
    r"\bigr",
    r"\Bigl",
    r"\Bigr",
    r"\big",
    r"\Big",
    r"\,",
    r"\!",
    r"\;",
    r"\:",
    r"\quad",
    r"\qquad",
)
_SYMBOLS = {
    r"\cdot": "*",
    r"\times": "*",
    r"\div": "/",
    r"\neq": "≠",
    r"\ne": "≠",
    r"\leq": "≤",
    r"\le": "≤",
    r"\geq": "≥",
    r"\ge": "≥",
    r"\approx": "≈",
    r"\ldots": "...",
    r"\cdots": "...",
    r"\dots": "...",
    r"\dotsb": "...",
    r"\pm": "±",
    r"\infty": "∞",
    r"\%": "%",
    r"\pmod": " mod ",
    r"\bmod": " mod ",
    r"\mod": " mod ",
    r"\sqrt": "sqrt",
    r"\dfrac": r"\frac",
    r"\tfrac": r"\frac",
}
_SYMBOL_RE = re.compile(
    "|".join(re.escape(k) for k in sorted(_SYMBOLS, key=len, reverse=True)) + r"(?![A-Za-z])"
)
_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
# "one" is also a pronoun ("one of the", "one can show"): it stays a word before such verbs/prepositions.
_PRONOUN_ONE = re.compile(
    r"\bone\s+(?=(of|can|may|must|might|could|would|should|has|is|another|needs?|gets?|obtains?|"
    r"finds?|sees?|checks?|notes?)\b)",
    re.IGNORECASE,
)


def _brace_arg(text: str, start: int) -> tuple[str, int] | None:
    """The ``{...}`` group opening at ``start`` (nested braces allowed) and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def _expand_command(text: str, command: str, render: int) -> str:
    """Replace ``\\command{a}`` (render=1) or ``\\command{a}{b}`` (render=2) with plain text.

    One-argument commands keep their argument; ``\\frac``/``\\binom`` become ``(a)/(b)``/``C(a, b)``,
    written as bare ``a/b`` when both parts are integers so that the number reader sees one fraction.
    """
    out: list[str] = []
    i = 0
    pattern = "\\" + command
    while True:
        j = text.find(pattern, i)
        if j < 0:
            out.append(text[i:])
            break
        after = j + len(pattern)
        if after < len(text) and text[after].isalpha():  # a longer command name (\textbf vs \text)
            out.append(text[i:after])
            i = after
            continue
        k = after
        while k < len(text) and text[k] == " ":
            k += 1
        first = _brace_arg(text, k)
        if first is None:
            out.append(text[i:after])
            i = after
            continue
        arg1, k = first
        out.append(text[i:j])
        if render == 1:
            out.append(arg1)
            i = k
            continue
        while k < len(text) and text[k] == " ":
            k += 1
        second = _brace_arg(text, k)
        if second is None:
            out.append(arg1)
            i = k
            continue
        arg2, k = second
        a, b = _normalize_inner(arg1), _normalize_inner(arg2)
        if command == "binom":
            out.append(f"C({a}, {b})")
        elif re.fullmatch(r"-?\d+", a) and re.fullmatch(r"\d+", b):
            out.append(f"{a}/{b}")
        else:
            out.append(f"({a})/({b})")
        i = k
    return "".join(out)


@lru_cache(maxsize=1024)
def _normalized_problem(problem: str) -> str:
    """``normalize_latex`` of a problem statement, cached (problems repeat, summaries do not)."""
    return normalize_latex(problem)


def _normalize_inner(text: str) -> str:
    return normalize_latex(text).strip()


def normalize_latex(text: str) -> str:
    """Plain-text form of a summary or problem: LaTeX commands rendered, math delimiters dropped.

    Both the problem and the candidate go through this, so "which numbers does the problem mention"
    is asked in one notation.
    """
    s = text.replace("−", "-").replace("–", "-").replace("\u00a0", " ")
    s = s.replace("{,}", ",").replace("\\{", "{").replace("\\}", "}")
    s = re.sub(r"\\[()\[\]]", " ", s)
    s = re.sub(r"\\sqrt\s*\[[^\]]*\]", r"\\sqrt", s)  # \sqrt[3]{x}: the index is not a number
    s = s.replace("$", " ")
    for token in _DROP:
        s = s.replace(token, " ")
    s = _SYMBOL_RE.sub(lambda m: _SYMBOLS[m.group(0)], s)
    for cmd in _BRACE_COMMANDS:
        s = _expand_command(s, cmd, 1)
    s = _expand_command(s, "frac", 2)
    s = _expand_command(s, "binom", 2)
    s = re.sub(r"\^\{(-?\d+)\}", r"^\1", s)  # 2^{10} -> 2^10
    s = re.sub(r"_\{([^{}]*)\}", r"_(\1)", s)  # x_{100} -> x_(100): still a subscript
    s = s.replace("{", "(").replace("}", ")")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # 2,001,000 -> 2001000 (never "1, 2, 3")
    s = re.sub(r"\\([A-Za-z]+)", r"\1", s)  # remaining commands: keep the name (\pi -> pi)
    s = re.sub(r"[ \t\r\n]+", " ", s)
    return s.strip()


def _words_to_digits(text: str) -> str:
    """Spell-out counts ("exactly two", "zero") as digits, leaving the pronoun "one" alone."""
    text = _PRONOUN_ONE.sub("one\u2060 ", text)  # mark the pronoun so the next pass skips it

    def repl(m: re.Match[str]) -> str:
        return str(_NUMBER_WORDS[m.group(0).lower()])

    # "zero" is also a noun ("one real-valued zero", "a zero of f"): keep it as a word there.
    text = re.sub(
        r"\b((?:real|integer|rational|complex|positive|negative)(?:-valued)?|a|one|simple|double)\s+zero\b",
        lambda m: m.group(0)[:-4] + "zero\u2060",
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b(?!\u2060)", repl, text, flags=re.IGNORECASE)
    return text.replace("\u2060", "")


# ----------------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------------


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
    return _words_to_digits(normalize_latex(text))


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
    if _HEDGE.search(text):
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


# ----------------------------------------------------------------------------------------------------
# Yes / No
# ----------------------------------------------------------------------------------------------------

_LEADING = re.compile(r"^[\s*_\"'(]*(?:the\s+answer\s+is\s*:?\s*|answer\s*:\s*)?(yes|no)\b(?!\s+two\b)", re.I)
_ANSWER_IS = re.compile(r"\bthe\s+answer\s+(?:to\s+the\s+question\s+)?is\s*:?\s*\"?(yes|no)\b", re.I)
_HEDGE = re.compile(
    r"cannot\s+be\s+(?:determined|concluded|answered|established)|can't\s+be\s+determined|"
    r"not\s+(?:readily\s+)?(?:apparent|clear|known|determined|obvious|straightforward)|undetermined|"
    r"further\s+(?:analysis|investigation|work)|need(?:s|ed)?\s+to\b|requires?\b|unclear|unknown|"
    r"more\s+information|to\s+determine\b|it\s+depends|inconclusive|difficult\s+to|hard\s+to|"
    r"not\s+possible\s+to\s+(?:determine|say|know|conclude|tell)|without\s+(?:further|more|additional)|"
    r"\bmay\b|\bmight\b|\bpossibly\b|\bperhaps\b|would\s+depend|\bdepends?\s+on\b|not\s+necessarily",
    re.I,
)
_EXCEPTION = re.compile(
    r"\b(?:other\s+than|except|besides|apart\s+from|trivial|unless|but\s+(?:there|it|the)|however)\b", re.I
)
_NEGATION = re.compile(
    r"\b(?:not|no|cannot|never|none|neither|nor|impossible|nonexistent)\b|n't\b|\bfails?\s+to\b", re.I
)
_AFFIRM = re.compile(
    r"\b(?:it\s+is\s+possible|is\s+possible|are\s+possible|there\s+(?:exists?|is|are)|exists?|"
    r"always|can\s+be|could\s+be|can|could|must|will|does|do|is\s+(?:a\s+)?(?:prime|perfect|composite)|"
    r"results?\s+in|(?:is|are)\s+(?:also\s+)?divisible|divides|holds?|"
    r"infinitely\s+many)\b",
    re.I,
)
# For "find all solutions" problems whose reference is "none": claiming or listing solutions is a Yes.
_SOLUTIONS_CLAIMED = re.compile(
    r"\b(?:solutions?|values?|pairs?|numbers?|primes?)\b[^.]*?\b(?:is|are|include)\b|"
    r"\bexists?\b|\b(?:has|have)\s+(?:infinitely\s+many|\d+|a|an|integer|positive|solutions?)\b",
    re.I,
)
# Explicit solutions: "x = 3", "(x, y) = (9, 4)", "are 2 and 5" (checked against the problem's text).
_SOLUTIONS_LISTED = re.compile(
    r"\b[a-z]\s*=\s*[-±(]?\s*\d|\(\s*[-±]?\d+\s*,\s*[-±]?\d+|\b(?:is|are)\s+[-±]?\d", re.I
)


def _lists_solutions(clause: str, problem: str) -> bool:
    """Whether ``clause`` writes out a solution that the problem statement does not already contain."""
    prob = re.sub(r"\s+", "", _normalized_problem(problem))
    return any(re.sub(r"\s+", "", m.group(0)) not in prob for m in _SOLUTIONS_LISTED.finditer(clause))


_PREAMBLE = re.compile(
    r"^(?:if|given|since|because|as|after|when|although|using|by|under|considering|assuming|from|based)"
    r"\b[^,]*,\s*(?:then\s+)?",
    re.I,
)
_CONCLUSION = re.compile(
    r",\s*(?:and\s+)?(?:so|therefore|hence|thus|consequently)\b,?\s*|;\s*(?:so|therefore|hence|thus)\b,?"
    r"\s*|\bthen\s+|\bit\s+is\s+concluded\s+that\s+|\bwe\s+(?:conclude|find|see)\s+that\s+",
    re.I,
)
_REASON = re.compile(
    r"\bbecause\b|\bsince\b|\bdue\s+to\b|,\s*which\b|,\s*as\b|\bas\s+(?:it|the|they|this|we|shown)\b|"
    r";|—|\s--\s|,?\s*where\b|,\s*given\s+that\b|,\s*implying\b|,\s*showing\b|\.\s+[A-Z]",
    re.I,
)
# "X, which has 1961 zeros, is not prime": the relative clause is an aside, the verdict follows it.
_APPOSITIVE = re.compile(
    r",\s*(?:which|that|where)\s+[^,]*,\s*(?=(?:is|are|has|have|does|do|can|cannot|will|must)\b)", re.I
)
_COMPARISON = re.compile(r"\b(?:greater|less|more|larger|smaller)\s+than\b|[<>≤≥]", re.I)
_COMPARES = re.compile(r"\b(?:is|are)\s+(?:greater|less|more|larger|smaller)\b", re.I)
_QUESTION_NEGATION = re.compile(r"\b(?:not|no|never|none|without)\b|n't\b|≠", re.I)


def _question(problem: str) -> str:
    """The sentence(s) of a problem that ask the question, without "(i.e., ...)" glosses."""
    text = re.sub(r"\([^()]*\)", " ", _normalized_problem(problem))
    asked = [q for q in re.split(r"(?<=[.?!])\s+", text) if "?" in q]
    return " ".join(asked) if asked else text


_ASKS_EXISTENCE = re.compile(
    r"\b(?:are\s+there|is\s+there|do(?:es)?\s+(?:there\s+)?exists?|can\s+there\s+(?:be|exist)|find\s+all)\b",
    re.I,
)


def _main_clause(text: str) -> str:
    """The part of a summary that carries its verdict, without reasons, preambles or side remarks.

    "Since X, Y", "If X, then Y" and "X, so Y" conclude Y; "Y because X", "Y, which X", "Y, where X"
    and a second sentence only justify Y.
    """
    s = _APPOSITIVE.sub(" ", text.strip())
    parts = _CONCLUSION.split(s)
    if len(parts) > 1 and parts[-1].strip():
        s = parts[-1]
    s = _PREAMBLE.sub("", s, count=1)
    return _REASON.split(s, maxsplit=1)[0]


def _strip_problem_negations(clause: str, problem: str) -> list[str]:
    """Negations in ``clause`` that are not just a restatement of a negation in the problem.

    A negation counts with the word after it ("no x_n=0" in a problem that says "there are no x_n=0"
    is a restatement, not a verdict).
    """
    prob = _normalized_problem(problem).lower()
    out = []
    for m in _NEGATION.finditer(clause):
        nxt = re.match(r"\s*([\w^()=]+)", clause[m.end() :])
        phrase = m.group(0).lower() + (" " + nxt.group(1).lower() if nxt else "")
        if phrase in prob:
            continue
        out.append(m.group(0).lower())
    return out


def candidate_polarity(summary: str, problem: str, existence: bool = False) -> bool | None:
    """Whether a summary answers a yes/no question with Yes (``True``), No (``False``), or unclearly.

    ``existence`` marks "find all solutions" problems whose reference says there are none: a summary
    that lists solutions or values is then an affirmative ("some exist"), which a bare Yes/No question
    does not allow.
    """
    text = normalize_latex(summary)
    lead = _LEADING.match(text)
    if lead:
        return lead.group(1).lower() == "yes"
    stated = _ANSWER_IS.search(text)
    if stated:
        return stated.group(1).lower() == "yes"
    question = _question(problem)
    if _QUESTION_NEGATION.search(question):
        # "Must x_n != 0?": "x_n is never 0" is a Yes, so negations say nothing about the verdict.
        return None
    clause = _main_clause(text)
    if not clause.strip() or _HEDGE.search(clause):
        return None
    negations = _strip_problem_negations(clause, problem)
    exception = _EXCEPTION.search(text) is not None
    # Existence questions ("Are there integer solutions ...?", "Find all ...") are answered Yes by
    # listing or claiming solutions; for other questions ("Is A > 0.1?") a number is not a verdict.
    existence = existence or _ASKS_EXISTENCE.search(_normalized_problem(problem)) is not None
    listed = existence and _lists_solutions(clause, problem)
    if negations:
        # "no solutions other than (0, 0)", "solutions x = ... if m is even, and none if m is odd", or a
        # double negation: the verdict is not a plain No.
        if exception or len(negations) > 1 or listed:
            return None
        return False
    if exception:
        return None
    if listed or (existence and _SOLUTIONS_CLAIMED.search(clause)) or _AFFIRM.search(clause):
        return True
    if _COMPARISON.search(question) and _COMPARES.search(clause):
        return True  # "Is A greater than 1/15?" - "A is greater than 1/15."
    return None


# ----------------------------------------------------------------------------------------------------
# References and the verdict
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference answer the matcher can judge against: a rational number or a Yes/No verdict."""

    kind: Literal["number", "yesno"]
    number: Fraction | None = None
    yes: bool | None = None
    #: "No integer solutions"-style references: a No to "do solutions exist?" (find-all questions).
    existence: bool = False


_RATIONAL = r"-?\d+(?:/\d+)?(?:\^\d+)?"
_REF_NUMBER_FORMS = (
    rf"(?P<n>{_RATIONAL})",
    rf".+, or equivalently (?P<n>{_RATIONAL})",
    rf"(?P<n>{_RATIONAL}), or approximately .+",
    rf"(?P<n>{_RATIONAL}) \((?:i\.e\., )?(?:all|none|no) [^()]*\)",
    rf"(?P<n>{_RATIONAL}) is the only possible value",
    rf"(?P<n>{_RATIONAL}) (?:values|inequalities|pairs|roots)",
    rf"the limit exists and is equal to (?P<n>{_RATIONAL})",
    rf"the only possible value for the limit is (?P<n>{_RATIONAL})",
    rf"the function is periodic, with a period of (?P<n>{_RATIONAL})",
    rf"at most (?P<n>{_RATIONAL}) [\w-]+(?: [\w-]+)? \(i\.e\., no [^()]*\)",
)
_NONE_EXIST = re.compile(
    r"no (?:integer |positive integer |possible )?(?:solutions|such values)", re.IGNORECASE
)


def _rational(text: str) -> Fraction:
    if "^" in text:
        base, exp = text.split("^")
        return Fraction(base) ** int(exp)
    return Fraction(text)


def parse_reference(answer: str) -> Reference | None:
    """The judgeable form of a CHAMP reference answer, or ``None`` if it is out of scope.

    In scope: a single rational number in one of the dataset's phrasings, a bare "Yes"/"No", and "No
    (integer|positive integer|possible) solutions" / "No such values" (a No on existence). Everything
    else (lists, formulas in n, sqrt(2), "At least 1 number", "Yes, and the sequence is ...") is out:
    judging it needs more than one number or one bit.
    """
    a = answer.strip().rstrip(".")
    low = a.lower()
    if low in ("yes", "no"):
        return Reference("yesno", yes=low == "yes")
    if _NONE_EXIST.fullmatch(a):
        return Reference("yesno", yes=False, existence=True)
    for form in _REF_NUMBER_FORMS:
        m = re.fullmatch(form, a, flags=re.IGNORECASE)
        if m:
            return Reference("number", number=_rational(m.group("n")))
    return None


def _numbers_agree(candidate: Number, reference: Fraction) -> bool:
    """Exact equality, or a decimal approximation that rounds the reference at its written precision."""
    assert candidate.value is not None
    if candidate.value == reference:
        return True
    if candidate.places is None or reference.denominator == 1:
        return False
    # Only a decimal that cannot be the exact value (1/3 -> 0.333) may be an approximation, and only
    # with three significant digits, so "0.3" is not accepted for 1/3.
    digits = re.sub(r"\D", "", candidate.text).lstrip("0")
    if len(digits) < 3:
        return False
    quant = Decimal(1).scaleb(-candidate.places)
    ref_dec = Decimal(reference.numerator) / Decimal(reference.denominator)
    rounded = ref_dec.quantize(quant, rounding=ROUND_HALF_UP)
    truncated = ref_dec.quantize(quant, rounding=ROUND_DOWN)
    cand_dec = Decimal(candidate.value.numerator) / Decimal(candidate.value.denominator)
    cand_q = cand_dec.quantize(quant, rounding=ROUND_HALF_UP)
    return cand_q in (rounded, truncated)


def match_answer(reference: str, problem: str, summary: str) -> bool | None:
    """Is ``summary`` a correct final answer to ``problem`` given its ``reference``? ``None``: can't tell.

    Returns ``None`` for out-of-scope references (see :func:`parse_reference`) and for summaries with no
    single readable answer, so the caller can drop them rather than guess.
    """
    ref = parse_reference(reference)
    if ref is None or not summary or not summary.strip():
        return None
    if ref.kind == "yesno":
        verdict = candidate_polarity(summary, problem, existence=ref.existence)
        return None if verdict is None else verdict == ref.yes
    assert ref.number is not None
    num = candidate_number(summary, problem)
    if num is None:
        return None
    return _numbers_agree(num, ref.number)
