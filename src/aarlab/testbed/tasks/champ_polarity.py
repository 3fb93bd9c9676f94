"""CHAMP answer matching, step 2 for Yes/No references: the verdict of a summary (see ``champ_matcher``)."""

from __future__ import annotations

import re

from aarlab.testbed.tasks.champ_latex import HEDGE, normalize_latex, normalized_problem

_LEADING = re.compile(r"^[\s*_\"'(]*(?:the\s+answer\s+is\s*:?\s*|answer\s*:\s*)?(yes|no)\b(?!\s+two\b)", re.I)
_ANSWER_IS = re.compile(r"\bthe\s+answer\s+(?:to\s+the\s+question\s+)?is\s*:?\s*\"?(yes|no)\b", re.I)
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
    prob = re.sub(r"\s+", "", normalized_problem(problem))
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
    text = re.sub(r"\([^()]*\)", " ", normalized_problem(problem))
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
    prob = normalized_problem(problem).lower()
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
    if not clause.strip() or HEDGE.search(clause):
        return None
    negations = _strip_problem_negations(clause, problem)
    exception = _EXCEPTION.search(text) is not None
    # Existence questions ("Are there integer solutions ...?", "Find all ...") are answered Yes by
    # listing or claiming solutions; for other questions ("Is A > 0.1?") a number is not a verdict.
    existence = existence or _ASKS_EXISTENCE.search(normalized_problem(problem)) is not None
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
