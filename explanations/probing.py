"""Local attribute prediction: can an LLM infer a held-out attribute from what a prompt shows?

Targets: the dataset user's age (correct within ±5 years), gender or occupation, the
recommended item's popularity bucket (quintile of interaction counts, 1 = least popular; or, as
the LLMXRec study asked it, ``popularity_fixed``: fewer than 50, 100, 150, 200 interactions or
more), any categorical item attribute (correct if the answer is one of the item's values), or
a numeric item attribute (``number:<attribute>``, e.g. Steam's price; correct within the probe's
tolerance; "free" is 0), or, as the study asked them, the whole ``profile``: age, gender and
occupation in one JSON answer, each field parsed and scored on its own (text answers only).
Each target is asked twice: from the history alone, and from the history plus the explanation; the
difference says whether the explanation carries information about the target.

The held-out value is never in the prompt: the profile is left out for user targets, and the
attribute is removed from the recommended item's details for item targets. Answers are parsed
strictly; an unparsed answer counts as wrong and is reported.

By likelihood, every label is scored after ``Answer:`` and the most likely one is the answer.
Age, an open number as text, becomes bands: ``age_bands`` picks centres 2 * AGE_TOLERANCE + 1
years apart, so each true age is within the tolerance of exactly one centre and "correct" means
the same as for a typed age.
"""

from __future__ import annotations

import json
import re
from typing import Any

from explanations.judging import Parsed, answer_lines
from explanations.llm import Messages
from explanations.prompts import attributes_text

USER_TARGETS = ("age", "gender", "occupation")
PROFILE = "profile"
POPULARITY = "popularity"
POPULARITY_FIXED = "popularity_fixed"
# The LLMXRec study's popularity groups: bucket 1 is fewer than 50 interactions, 5 is 200 or more.
POPULARITY_THRESHOLDS = (50, 100, 150, 200)
ITEM_PREFIX = "item:"
NUMBER_PREFIX = "number:"
# Words that mean a price of nothing (Steam lists free games as "Free to Play", "Free", ...).
FREE_WORDS = ("free", "free to play", "free-to-play", "free to use", "play for free")
AGE_TOLERANCE = 5
POPULARITY_BUCKETS = 5

PROBE_SYSTEM = (
    "You infer facts about people and items from what they {verb}. Always give your single best "
    "guess, even when unsure."
)
# What a probe calls the dataset's items and what people did with them, when the caller does not
# say (the prompts' own DOMAIN_NOUNS give these per dataset domain).
DEFAULT_DOMAIN = ("item", "items", "chose")
ANSWER_PREFIX = "Answer:"
_NUMBER = re.compile(r"^(?:answer\s*:\s*)?(\d{1,3})\s*\.?$", re.IGNORECASE)
_LABEL = re.compile(r"^(?:answer\s*:\s*)?(.+?)\s*\.?$", re.IGNORECASE)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def number_value(value: Any) -> float | None:
    """A numeric attribute or answer as a number: "free" (and its variants) is 0, a currency
    sign and thousands commas are dropped; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().strip("`*\"'").rstrip(".").strip().casefold()
    if text in FREE_WORDS:
        return 0.0
    try:
        return float(text.lstrip("$€£").replace(",", ""))
    except ValueError:
        return None


def hidden_attribute(target: str) -> str | None:
    """The item attribute a target holds out of the prompt (None for user and popularity targets)."""
    for prefix in (ITEM_PREFIX, NUMBER_PREFIX):
        if target.startswith(prefix):
            return target.removeprefix(prefix)
    return None


def profile_question(options: dict[str, list[str]]) -> str:
    """The study's joint question: every profile field in ``options`` (field → its labels; none
    for age) in one JSON object."""
    fields = list(options)
    names = " and ".join([", ".join(fields[:-1]), fields[-1]] if len(fields) > 1 else fields)
    choices = "".join(f"The {field} is one of: {', '.join(labels)}. " for field, labels in options.items() if labels)
    shape = ", ".join(f'"{field}": <years>' if field == "age" else f'"{field}": "<choice>"' for field in fields)
    return f"What are this person's {names}? {choices}Answer with exactly one line of JSON: `{{{shape}}}`."


def question(target: str, options: list[str]) -> str:
    """The question and the answer format for ``target`` (the profile's: ``profile_question``)."""
    if target == "age":
        return "How old is this person? Answer with exactly one line: `Answer: <age in years>`."
    if target == POPULARITY:
        return (
            "How popular is the recommended item among all users, from 1 (least popular fifth of the "
            f"catalogue) to {POPULARITY_BUCKETS} (most popular fifth)? Answer with exactly one line: `Answer: <1-5>`."
        )
    if target.startswith(NUMBER_PREFIX):
        name = target.removeprefix(NUMBER_PREFIX).replace("_", " ")
        return (
            f"What is the recommended item's {name}? Answer with exactly one line: `Answer: <number>` "
            "(0 if it is free)."
        )
    if target == POPULARITY_FIXED:
        low = [f"{number}: fewer than {limit}" for number, limit in enumerate(POPULARITY_THRESHOLDS, 1)]
        high = f"{len(POPULARITY_THRESHOLDS) + 1}: {POPULARITY_THRESHOLDS[-1]} or more"
        return (
            "How many users interacted with the recommended item? "
            f"{', '.join(low)}, {high}. Answer with exactly one line: `Answer: <1-{POPULARITY_BUCKETS}>`."
        )
    subject = "this person's" if target in USER_TARGETS else "the recommended item's"
    name = target.removeprefix(ITEM_PREFIX).replace("_", " ")
    return (
        f"What is {subject} {name}? Choose one of: {', '.join(options)}. "
        "Answer with exactly one line: `Answer: <choice>`."
    )


def probe_messages(
    *,
    target: str,
    history: list[dict[str, Any]],
    item_title: str,
    item_attributes: dict[str, Any],
    options: list[str] | dict[str, list[str]],
    explanation: str | None,
    domain: tuple[str, str, str] = DEFAULT_DOMAIN,
) -> Messages:
    """The probe prompt: history (titles, details, ratings), the recommended item without the
    held-out attribute, optionally the explanation, then the question. ``domain`` is the
    dataset's (noun, plural, verb in the past), so a game or news dataset is not asked about
    "movies watched". The profile target's ``options`` map each field to its labels."""
    _, plural, verb = domain
    hidden = hidden_attribute(target)
    lines = [f"The {plural} this person {verb} most recently:"]
    for entry in history:
        details = attributes_text(entry["attributes"])
        rating = f": rated {entry['rating']}" if entry.get("rating") else ""
        lines.append(f"- {entry['title']}{f' ({details})' if details else ''}{rating}")
    shown = {key: value for key, value in item_attributes.items() if key != hidden}
    details = attributes_text(shown)
    lines.append(f"Recommended item: {item_title}{f' ({details})' if details else ''}")
    if explanation is not None:
        lines.append(f"Explanation given to the person:\n{explanation.strip()}")
    lines.append("")
    lines.append(profile_question(options) if isinstance(options, dict) else question(target, options))
    return [
        {"role": "system", "content": PROBE_SYSTEM.format(verb=verb)},
        {"role": "user", "content": "\n".join(lines)},
    ]


def parse_answer(text: str, target: str, options: list[str]) -> Parsed:
    """The answer as a label (``str``): a number for age and popularity, else one of
    ``options`` (case-insensitive, returned in the options' spelling)."""
    lines = answer_lines(text)
    if len(lines) != 1:
        return Parsed(error=f"expected one line, got {len(lines)}")
    if target.startswith(NUMBER_PREFIX):
        value = number_value(re.sub(r"^answer\s*:\s*", "", lines[0], flags=re.IGNORECASE))
        if value is None:
            return Parsed(error=f"not a number: {lines[0][:80]!r}")
        return Parsed(f"{value:g}")
    if target in ("age", POPULARITY, POPULARITY_FIXED):
        match = _NUMBER.match(lines[0])
        if match is None:
            return Parsed(error=f"not a number: {lines[0][:80]!r}")
        value = int(match[1])
        if target in (POPULARITY, POPULARITY_FIXED) and not 1 <= value <= POPULARITY_BUCKETS:
            return Parsed(error=f"{value} is not a bucket from 1 to {POPULARITY_BUCKETS}")
        return Parsed(str(value))
    match = _LABEL.match(lines[0])
    answer = (match[1] if match else "").strip().strip("`*\"'").casefold()
    by_fold = {option.casefold(): option for option in options}
    if answer not in by_fold:
        return Parsed(error=f"not one of the options: {lines[0][:80]!r}")
    return Parsed(by_fold[answer])


def parse_profile(text: str, options: dict[str, list[str]]) -> dict[str, Parsed]:
    """Each field of a profile answer, parsed on its own: the answer must be one JSON object
    (a Markdown code fence around it is tolerated); a field that is missing or not valid is
    unparsed while the others still count."""
    body = _FENCE.sub("", text.strip()).strip()
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return dict.fromkeys(options, Parsed(error=f"not one JSON object: {body[:80]!r}"))
    return {field: _profile_field(field, value.get(field), labels) for field, labels in options.items()}


def _profile_field(field: str, value: Any, labels: list[str]) -> Parsed:
    if value is None or isinstance(value, bool | list | dict):
        return Parsed(error="missing" if value is None else f"not a value: {str(value)[:40]!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if field == "age":
        if re.fullmatch(r"\d{1,3}", text) is None:
            return Parsed(error=f"not an age: {text[:40]!r}")
        return Parsed(str(int(text)))
    by_fold = {label.casefold(): label for label in labels}
    if text.casefold() not in by_fold:
        return Parsed(error=f"not one of the options: {text[:40]!r}")
    return Parsed(by_fold[text.casefold()])


def age_bands(ages: list[int]) -> list[str]:
    """Centres of bands of ``2 * AGE_TOLERANCE + 1`` years covering ``ages``, as labels: the
    youngest age is at the first band's lower edge."""
    if not ages:
        return []
    width = 2 * AGE_TOLERANCE + 1
    low, high = min(ages), max(ages)
    return [str(centre) for centre in range(low + AGE_TOLERANCE, high + AGE_TOLERANCE + 1, width)]


def is_correct(target: str, answer: str | None, truth: list[str], tolerance: float = 0.0) -> bool:
    """Unparsed answers (None) are wrong; age is right within ±5 years, a number within
    ``tolerance``; a categorical answer is right if it is one of the true values (an item can
    have several genres)."""
    if answer is None or not truth:
        return False
    if target.startswith(NUMBER_PREFIX):
        return abs(float(answer) - float(truth[0])) <= tolerance
    if target == "age":
        return abs(int(answer) - int(truth[0])) <= AGE_TOLERANCE
    return answer in truth
