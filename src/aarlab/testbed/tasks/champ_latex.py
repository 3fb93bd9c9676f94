"""CHAMP answer matching, step 1: LaTeX and spelled-out numbers to plain text (see ``champ_matcher``)."""

from __future__ import annotations

import re
from functools import lru_cache

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
def normalized_problem(problem: str) -> str:
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


def words_to_digits(text: str) -> str:
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


#: A hedge ("cannot be determined", "may", "not necessarily"): the summary gives no answer.
HEDGE = re.compile(
    r"cannot\s+be\s+(?:determined|concluded|answered|established)|can't\s+be\s+determined|"
    r"not\s+(?:readily\s+)?(?:apparent|clear|known|determined|obvious|straightforward)|undetermined|"
    r"further\s+(?:analysis|investigation|work)|need(?:s|ed)?\s+to\b|requires?\b|unclear|unknown|"
    r"more\s+information|to\s+determine\b|it\s+depends|inconclusive|difficult\s+to|hard\s+to|"
    r"not\s+possible\s+to\s+(?:determine|say|know|conclude|tell)|without\s+(?:further|more|additional)|"
    r"\bmay\b|\bmight\b|\bpossibly\b|\bperhaps\b|would\s+depend|\bdepends?\s+on\b|not\s+necessarily",
    re.I,
)
