"""Final-answer matching for CHAMP: is a model's one-sentence answer summary right?

CHAMP (``champ-dataset``) gives each problem a free-text reference answer and each model conversation a
final one-sentence summary, but no correctness label. These pure functions turn (reference, problem,
summary) into ``True``/``False``, or ``None`` when a careful reader could not tell. Abstaining is the
point: a wrong label silently poisons a weak-to-strong experiment, a missing one only shrinks the pool.

Scope (RECIPES.md, then a hand audit): only references that are one rational number ("239", "5/14, or
approximately 35.7%", "0 is the only possible value", "The limit exists and is equal to 2/3") or a bare
Yes/No, plus the "No integer solutions" / "No such values" family, which is a No to "does one exist?".
Lists, formulas in ``n``, irrational numbers and compound answers are out of scope (``None``).

- **Numbers.** LaTeX is normalised first (``\\frac{a}{b}``, ``\\boxed``, ``2{,}001``, ``2^{10}``). The
  candidate's number is the one in its summary that does *not* occur in the problem (summaries restate
  the problem's numbers), else the one right after the last "is/are/=/equals". Several new numbers, a
  new number inside an unevaluated expression, or none at all give ``None``. Comparison is exact
  (``fractions.Fraction``); a decimal that is not exact counts only when it is the reference correctly
  rounded to its written precision with at least three significant digits ("approximately 0.357").
- **Yes/No.** An explicit leading "Yes"/"No" (or "the answer is yes/no") decides. Otherwise the main
  clause (after ", so"/"then", before "because"/"since"/", which") is read: a negation there is a No, an
  affirmative cue ("it is possible", "there exists", "always", "can be", ...) without negation is a Yes.
  Hedges ("cannot be determined", "further analysis") and exceptions ("other than", "except") abstain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
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
    r"\left", r"\right", r"\displaystyle", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr", r"\big", r"\Big",
    r"\,", r"\!", r"\;", r"\:", r"\quad", r"\qquad",
)
_SYMBOLS = {
    r"\cdot": "*", r"\times": "*", r"\div": "/", r"\neq": "≠", r"\ne": "≠", r"\leq": "≤", r"\le": "≤",
    r"\geq": "≥", r"\ge": "≥", r"\approx": "≈", r"\ldots": "...", r"\cdots": "...", r"\dots": "...",
    r"\dotsb": "...", r"\pm": "±", r"\infty": "∞", r"\%": "%", r"\pmod": " mod ", r"\bmod": " mod ",
    r"\mod": " mod ", r"\sqrt": "sqrt", r"\dfrac": r"\frac", r"\tfrac": r"\frac",
}
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}
# "one" is also a pronoun ("one of the", "one can show"): only read it as 1 when a noun-ish word follows.
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


def _normalize_inner(text: str) -> str:
    return normalize_latex(text).strip()


def normalize_latex(text: str) -> str:
    """Plain-text form of a summary or problem: LaTeX commands rendered, math delimiters dropped.

    Both the problem and the candidate go through this, so "which numbers does the problem mention"
    is asked in one notation.
    """
    s = text.replace("−", "-").replace("–", "-").replace("\u00a0", " ")  # noqa: RUF001
    s = s.replace("{,}", ",").replace("\\{", "{").replace("\\}", "}")
    s = re.sub(r"\\[()\[\]]", " ", s)
    s = s.replace("$", " ")
    for token in _DROP:
        s = s.replace(token, " ")
    for src in sorted(_SYMBOLS, key=len, reverse=True):
        s = re.sub(re.escape(src) + r"(?![A-Za-z])", lambda _m, dst=_SYMBOLS[src]: dst, s)
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
        tok = m.group(0)
        if m.group("sqrt"):
            out.append(Number(None, start, end, None, tok))
            continue
        if after.isalpha() or after == "(":  # 2n, 3rd, 3x, 2(n+1): not answers
            continue
        opaque = after in "^!" or (after == "/" and not m.group("frac")) or before in "^/"
        sign = -1 if _is_negative(text, start) else 1
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


_COPULA = re.compile(r"\b(?:is|are|was|be|equals?|equal\s+to|becomes|gives)\b|=|:", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:[\s(]|\b(?:exactly|approximately|about|around|roughly|only|just|precisely|equal|to|given|by|"
    r"at|most|least|the|value|number|answer|of)\b|≈)*$",
    re.IGNORECASE,
)


def _after_copula(text: str, numbers: list[Number]) -> Number | None:
    """The number right after the last "is/are/=/equals" that is directly followed by one."""
    found: Number | None = None
    for m in _COPULA.finditer(text):
        for num in numbers:
            if num.start >= m.end():
                gap = text[m.end() : num.start]
                if "-" in gap:
                    gap = gap.replace("-", "")
                if _FILLER.match(gap):
                    found = num
                break
    return found


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
    ("the remainder ... is 0"), so the number after the last "is/are/=" is taken.
    """
    text = _prepare(summary)
    numbers = extract_numbers(text)
    problem_numbers = extract_numbers(_prepare(problem))
    known = {n.value for n in problem_numbers if n.value is not None}
    # An opaque number (the 2 of x^2) is a restatement when its digits occur in the problem at all.
    known_digits = set(re.findall(r"\d+(?:\.\d+)?", _prepare(problem)))
    novel = [
        n
        for n in numbers
        if (n.value is None and _digits(n.text) - known_digits) or (n.value is not None and n.value not in known)
    ]
    values = {n.value for n in novel}
    pick: Number | None
    if len(values) == 1:
        pick = novel[-1]
    elif len(values) > 1:
        tail = _after_copula(text, numbers)
        pick = tail if tail is not None and tail in novel else None
        # A trailing opaque part (2^(n-1), sqrt(3)) right after the chosen number makes it unsafe.
    else:
        pick = _after_copula(text, numbers)
    if pick is None or pick.value is None:
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
    r"not\s+possible\s+to\s+(?:determine|say|know|conclude|tell)|without\s+(?:further|more|additional)",
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
    r"results?\s+in|is\s+greater|is\s+less|is\s+divisible|divides|holds?)\b",
    re.I,
)
# For "find all solutions" problems whose reference is "none": giving solutions is an affirmative.
_SOLUTIONS = re.compile(
    r"\b(?:solutions?|values?|pairs?|numbers?|primes?)\b[^.]*?\b(?:is|are)\b|=\s*-?\d|\bexists?\b|"
    r"\b(?:solutions?|values?)\s+(?:is|are|exists?)\b",
    re.I,
)


def _main_clause(text: str) -> str:
    """The part of a summary that carries its verdict, without reasons or preambles.

    "Since X, we have Y" and "X, so Y" conclude Y; "Y because X" / "Y, which X" / "Y since X" assert Y.
    """
    s = text
    for conn in (r",\s*so\s+", r",\s*therefore,?\s+", r",\s*hence,?\s+", r",\s*thus,?\s+", r"\bthen\s+"):
        parts = re.split(conn, s, flags=re.I)
        if len(parts) > 1:
            s = parts[-1]
    s = re.split(
        r"\bbecause\b|\bsince\b|\bdue\s+to\b|,\s*which\b|,\s*as\b|\bas\s+(?:it|the|they|this|we|shown)\b|"
        r";|\s-\s|—|\bwhere\b|\bgiven\s+that\b|\bby\b|\bafter\b|\bimplying\b|\bshowing\b|,\s*since\b",
        s,
        maxsplit=1,
        flags=re.I,
    )[0]
    return s


def _strip_problem_negations(clause: str, problem: str) -> list[str]:
    """Negations in ``clause`` that are not just a restatement of a negation in the problem.

    A negation counts with the word after it ("no x_n=0" in a problem that says "there are no x_n=0"
    is a restatement, not a verdict).
    """
    prob = normalize_latex(problem).lower()
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
    if _HEDGE.search(text):
        return None
    clause = _main_clause(text)
    if not clause.strip():
        return None
    negations = _strip_problem_negations(clause, problem)
    exception = _EXCEPTION.search(text) is not None
    if negations:
        if exception or len(negations) > 1:
            return None  # "no solutions other than (0, 0)", double negation: do not guess
        return False
    if exception:
        return None
    if _AFFIRM.search(clause):
        return True
    if existence and _SOLUTIONS.search(clause):
        return True
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
