"""The LLM judge's prompts and the strict parsing of its answers.

Pure functions on plain values: the services build the context (the same train-side history
and item the explanations were written from) and store what comes back. An answer that does
not follow the requested format exactly is *unparsed*: it is stored with the reason and
counted, never guessed at and never dropped.

Pairwise prompts show two explanations as "Explanation 1" and "Explanation 2"; each pair is
judged in both orders, so a verdict here is about slots (``first``/``second``/``tie``), and the
caller maps slots back to explanations.

Answered by likelihood, the same questions are closed: the options of the strict format are
scored after its answer prefix (``Winner:`` then `` 1``, `` 2``, `` tie``; ``<criterion>:`` then
each point of the scale, every criterion on its own, as G-Eval does), and the most likely option
is the parsed answer, so every answer parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from explanations.llm import Messages, OptionScores

# The study's rubric: the original LLMXRec human evaluation's three criteria, plus faithfulness.
# Campaigns show it to annotators and the Likert judge asks it in the same words.
DEFAULT_RUBRIC: list[dict[str, Any]] = [
    {
        "name": "reasonability",
        "question": "Is the explanation reasonable: does it give sensible reasons why this user would like this item?",
        "anchors": {"1": "Not reasonable at all", "10": "Completely reasonable"},
    },
    {
        "name": "attractiveness",
        "question": "Does the explanation make the item attractive: would it make this user want to try it?",
        "anchors": {"1": "Not attractive at all", "10": "Very attractive"},
    },
    {
        "name": "non_redundancy",
        "question": "Is the explanation free of repetition and filler?",
        "anchors": {"1": "Mostly repetition or filler", "10": "No repetition at all"},
    },
    {
        "name": "faithfulness",
        "question": "Does it only claim what the user's history and the item's details show?",
        "anchors": {"1": "Mostly unsupported claims", "10": "Every claim is supported"},
    },
]


def default_rubric(*, scale_min: int = 1, scale_max: int = 10) -> list[dict[str, Any]]:
    """The original study's three criteria plus faithfulness, on ``scale_min`` to ``scale_max``."""
    return [criterion | {"scale_min": scale_min, "scale_max": scale_max} for criterion in DEFAULT_RUBRIC]


JUDGE_SYSTEM = (
    "You are an impartial expert judge of recommendation explanations. Judge only from the "
    "facts given: the person's history and the recommended item. Do not let the order in which "
    "explanations are shown, their length, or their politeness influence you."
)

PAIRWISE_FORMAT = "Answer with exactly one line and nothing else: `Winner: 1`, `Winner: 2` or `Winner: tie`."
_WINNER = re.compile(r"^winner\s*:\s*(1|2|tie)\s*\.?$", re.IGNORECASE)
_SCORE = re.compile(r"^([a-z][a-z0-9_]*)\s*:\s*(-?\d+)\s*\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """A parsed answer (``value``) or the reason it could not be parsed (``error``)."""

    value: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _context_text(context: dict[str, Any]) -> str:
    lines = []
    if context.get("profile_text"):
        lines.append(f"The person is {context['profile_text']}.")
    lines.append(f"The {context.get('domain_plural', 'items')} they {context.get('verb_past', 'chose')} most recently:")
    for entry in context.get("history", []):
        details = f" ({entry['attributes_text']})" if entry.get("attributes_text") else ""
        rating = f": rated {entry['rating']}" if entry.get("rating") else ""
        lines.append(f"- {entry['title']}{details}{rating}")
    item = context["item"]
    details = f" ({item['attributes_text']})" if item.get("attributes_text") else ""
    lines.append(f"Recommended {context.get('domain', 'item')}: {item['title']}{details}")
    return "\n".join(lines)


def _criteria_text(rubric: list[dict[str, Any]], *, scale: bool) -> str:
    lines = []
    for criterion in rubric:
        line = f"- {criterion['name']}: {criterion['question']}"
        if scale:
            anchors = criterion.get("anchors") or {}
            low, high = criterion.get("scale_min", 1), criterion.get("scale_max", 10)
            labels = "; ".join(f"{point} = {anchors[str(point)]}" for point in (low, high) if str(point) in anchors)
            line += f" (from {low} to {high}{'; ' + labels if labels else ''})"
        lines.append(line)
    return "\n".join(lines)


def pairwise_messages(context: dict[str, Any], first: str, second: str, rubric: list[dict[str, Any]]) -> Messages:
    """Ask which of two explanations of the same recommendation is better overall, on the
    rubric's criteria (worded as the annotators see them)."""
    user = (
        f"{_context_text(context)}\n\n"
        f"Explanation 1:\n{first.strip()}\n\nExplanation 2:\n{second.strip()}\n\n"
        "Which explanation is better for this person, taking these questions into account?\n"
        f"{_criteria_text(rubric, scale=False)}\n\n{PAIRWISE_FORMAT}"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def likert_messages(context: dict[str, Any], text: str, rubric: list[dict[str, Any]]) -> Messages:
    """Ask for one score per rubric criterion, with the same questions and anchors humans see."""
    names = ", ".join(f"`{criterion['name']}: <score>`" for criterion in rubric)
    user = (
        f"{_context_text(context)}\n\nExplanation:\n{text.strip()}\n\n"
        f"Rate the explanation on each question:\n{_criteria_text(rubric, scale=True)}\n\n"
        f"Answer with exactly one line per question, in this order, and nothing else: {names}."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def answer_lines(text: str) -> list[str]:
    # Tolerated: surrounding whitespace, blank lines and Markdown back-ticks or bold around a
    # line. Anything else (prose before or after, a second verdict) makes the answer unparsed.
    return [line.strip().strip("`*").strip() for line in text.strip().splitlines() if line.strip()]


def parse_pairwise(text: str) -> Parsed:
    """``first``, ``second`` or ``tie`` from an answer that is exactly one ``Winner: …`` line."""
    lines = answer_lines(text)
    if len(lines) != 1:
        return Parsed(error=f"expected one line, got {len(lines)}")
    match = _WINNER.match(lines[0])
    if match is None:
        return Parsed(error=f"not a verdict: {lines[0][:80]!r}")
    return Parsed({"1": "first", "2": "second"}.get(match[1].lower(), "tie"))


def pairwise_answer(winner: str) -> str:
    """The answer line in the strict format for a ``first``/``second``/``tie`` verdict: what
    ``parse_pairwise`` reads back (a tuned judge learns to write it)."""
    return {"first": "Winner: 1", "second": "Winner: 2", "tie": "Winner: tie"}[winner]


def parse_likert(text: str, rubric: list[dict[str, Any]]) -> Parsed:
    """``{criterion: score}`` from an answer with exactly one ``name: score`` line per
    criterion, each score within its criterion's scale."""
    expected = {criterion["name"]: criterion for criterion in rubric}
    scores: dict[str, int] = {}
    for line in answer_lines(text):
        match = _SCORE.match(line)
        if match is None:
            return Parsed(error=f"not a score line: {line[:80]!r}")
        name, value = match[1].lower(), int(match[2])
        if name not in expected:
            return Parsed(error=f"unknown criterion {name!r}")
        if name in scores:
            return Parsed(error=f"{name} scored twice")
        low, high = expected[name].get("scale_min", 1), expected[name].get("scale_max", 10)
        if not low <= value <= high:
            return Parsed(error=f"{name}: {value} is outside {low} to {high}")
        scores[name] = value
    missing = [name for name in expected if name not in scores]
    if missing:
        return Parsed(error=f"missing {', '.join(missing)}")
    return Parsed(scores)


PAIRWISE_PREFIX = "Winner:"
PAIRWISE_OPTIONS = {" 1": "first", " 2": "second", " tie": "tie"}


def likert_questions(rubric: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(answer prefix, options) per criterion, in rubric order: ``"name:"`` and each point of
    its scale, written as the strict format writes it (``" 7"``)."""
    return [
        (
            f"{criterion['name']}:",
            [
                f" {point}"
                for point in range(int(criterion.get("scale_min", 1)), int(criterion.get("scale_max", 10)) + 1)
            ],
        )
        for criterion in rubric
    ]


def pairwise_from_scores(scores: OptionScores) -> tuple[dict[str, str], dict[str, float]]:
    """``parsed`` (the most likely slot) and ``probabilities`` (slot → P) of a pairwise verdict
    scored on ``PAIRWISE_OPTIONS``."""
    probabilities = {PAIRWISE_OPTIONS[o]: p for o, p in zip(scores.options, scores.probabilities, strict=True)}
    return {"winner": PAIRWISE_OPTIONS[scores.options[scores.best]]}, probabilities


def likert_from_scores(
    rubric: list[dict[str, Any]], scores: list[OptionScores]
) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    """``parsed`` (the most likely score per criterion) and ``probabilities`` (per criterion,
    the distribution over its scale and the expected score, the probability-weighted mean that
    G-Eval reports) from one ``OptionScores`` per criterion in rubric order."""
    parsed: dict[str, int] = {}
    probabilities: dict[str, Any] = {}
    for criterion, score in zip(rubric, scores, strict=True):
        points = [int(option) for option in score.options]
        parsed[criterion["name"]] = points[score.best]
        probabilities[criterion["name"]] = {
            "distribution": {str(point): p for point, p in zip(points, score.probabilities, strict=True)},
            "expected": sum(point * p for point, p in zip(points, score.probabilities, strict=True)),
        }
    return {"scores": parsed}, probabilities


def combine_orders(first_order: str | None, second_order: str | None) -> str:
    """The outcome for explanation A from its two verdicts: ``first_order`` with A shown
    first, ``second_order`` with B shown first. A wins only if both orders pick A (``first``
    then ``second``), loses only if both pick B; any disagreement or tie is a tie; a missing
    (unparsed) verdict makes the pair ``unparsed``."""
    if first_order is None or second_order is None:
        return "unparsed"
    if first_order == "first" and second_order == "second":
        return "a"
    if first_order == "second" and second_order == "first":
        return "b"
    return "tie"


# The automatic claim checker: one claim of an explanation against the facts its generator had.
CLAIM_PREFIX = "Supported:"
CLAIM_OPTIONS = (" yes", " no")
CLAIM_FORMAT = "Answer with exactly one line and nothing else: `Supported: yes` or `Supported: no`."
_SUPPORTED = re.compile(r"^supported\s*:\s*(yes|no)\s*\.?$", re.IGNORECASE)


def claim_messages(context: dict[str, Any], claim: str) -> Messages:
    """Ask whether the facts (history, recommended item, the profile if the prompt had it)
    support one claim of an explanation written from them."""
    user = (
        f"{_context_text(context)}\n\nA claim from an explanation of this recommendation:\n{claim.strip()}\n\n"
        "Do the facts above support this claim? A claim that states something the facts do not show, "
        f"or contradicts them, is not supported.\n\n{CLAIM_FORMAT}"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_claim_verdict(text: str) -> Parsed:
    """``yes`` or ``no`` from an answer that is exactly one ``Supported: …`` line."""
    lines = answer_lines(text)
    if len(lines) != 1:
        return Parsed(error=f"expected one line, got {len(lines)}")
    match = _SUPPORTED.match(lines[0])
    if match is None:
        return Parsed(error=f"not a verdict: {lines[0][:80]!r}")
    return Parsed(match[1].lower())
