"""Prompts for the ``lm`` backend: every item becomes a text that ends right before a label token.

The answer is read from (and trained on) a single next token, as in the reference study: " True" /
" False" for single items, " A" / " B" for pairwise ones. Keeping the answer one token makes training a
two-way cross-entropy on the renormalised label-token logits and prediction one forward pass, and lets
the untrained model's label-token probabilities serve as its zero-shot prior.

Items carry only texts (no question/answer fields, by design: see ``schema.py``). A pairwise item's two
texts are ``prompt + "\\n" + response``; the shared prompt is recovered as their common prefix up to a
line break, so the model reads the prompt once and the two responses side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from aarlab.testbed.errors import AarlabError
from aarlab.testbed.schema import Item


@dataclass(frozen=True)
class PromptFormat:
    """Templates and label words. Label words must be single tokens for the model's tokenizer."""

    single: str = "{text}\nQuestion: Is the statement above true? Answer True or False.\nAnswer:"
    pairwise: str = (
        "{prompt}\n\nResponse A:\n{first}\n\nResponse B:\n{second}\n\n"
        "Question: Which response is better, A or B?\nAnswer:"
    )
    pairwise_no_prompt: str = (
        "Response A:\n{first}\n\nResponse B:\n{second}\n\n"
        "Question: Which response is better, A or B?\nAnswer:"
    )
    #: (positive, negative): P(label = True) is the positive word's share of the two.
    single_labels: tuple[str, str] = (" True", " False")
    pairwise_labels: tuple[str, str] = (" A", " B")


def split_pair(first: str, second: str) -> tuple[str, str, str]:
    """(shared prompt, first response, second response) from two ``prompt\\nresponse`` texts."""
    n = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        n += 1
    common = first[:n]
    cut = common.rfind("\n")
    if cut <= 0:
        return "", first, second
    return first[:cut], first[cut + 1 :], second[cut + 1 :]


def item_prompt(item: Item, fmt: PromptFormat) -> str:
    """The model's input for one item (ending right before the label token)."""
    if len(item.texts) == 1:
        return fmt.single.format(text=item.texts[0])
    if len(item.texts) == 2:
        prompt, first, second = split_pair(*item.texts)
        if prompt:
            return fmt.pairwise.format(prompt=prompt, first=first, second=second)
        return fmt.pairwise_no_prompt.format(first=first, second=second)
    raise AarlabError(f"item {item.id!r} has {len(item.texts)} texts; expected 1 (single) or 2 (pairwise)")


def label_words(item: Item, fmt: PromptFormat) -> tuple[str, str]:
    """(positive, negative) label words for the item's schema."""
    return fmt.single_labels if len(item.texts) == 1 else fmt.pairwise_labels
