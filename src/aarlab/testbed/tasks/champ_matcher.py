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
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from aarlab.testbed.tasks.champ_latex import normalize_latex
from aarlab.testbed.tasks.champ_numbers import Number, candidate_number, extract_numbers
from aarlab.testbed.tasks.champ_polarity import candidate_polarity

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
