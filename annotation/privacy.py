"""What crowd annotators would see, checked for personal data before they see it. Pure.

``scan`` finds the shapes of personal data in a text: e-mail addresses, phone numbers, web
addresses, street addresses and ID numbers (US social security numbers, payment card numbers
that pass the Luhn check, IBANs). ``profile_echoes`` finds a dataset user's own profile values
repeated in an explanation written for them. Both over-report rather than miss: a finding is
for a person to accept or exclude, never a verdict.

``reidentification`` estimates how often the history shown beside an explanation would single
its user out: the share of items whose shown titles all appear in exactly one dataset user's
history, for each history length.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = {
    "email": "an e-mail address",
    "url": "a web address",
    "phone": "a phone number",
    "street_address": "a street address",
    "id_number": "an ID number",
    "profile_echo": "the user's own profile value",
}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"')]+", re.IGNORECASE)
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# Digits with separators, optionally a +country code or an (area) code; 9 to 15 digits in all
# (fewer is a year range or a count, more is not a phone number).
_PHONE = re.compile(r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])")
_STREET = re.compile(
    r"\b\d{1,5}(?: [A-Z][a-z]+){1,3} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|"
    r"Way|Place|Pl|Terrace|Square|Sq)\b\.?"
)
# Profile values too common to mean anything when an explanation repeats them.
_COMMON_VALUES = {"other", "none", "unknown", "n/a", "na", "yes", "no", "true", "false"}


@dataclass(frozen=True)
class Finding:
    """One match: what kind of personal data it looks like and where it is."""

    kind: str
    match: str
    start: int
    end: int

    def context(self, text: str, width: int = 40) -> str:
        """The match with up to ``width`` characters either side."""
        return text[max(0, self.start - width) : self.end + width]


def _luhn(digits: str) -> bool:
    total = 0
    for index, digit in enumerate(int(d) for d in reversed(digits)):
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _candidates(text: str) -> Iterable[Finding]:
    """Every match of every pattern, most specific kinds first."""
    for pattern, kind in ((_EMAIL, "email"), (_URL, "url"), (_SSN, "id_number"), (_IBAN, "id_number")):
        for match in pattern.finditer(text):
            yield Finding(kind, match[0], match.start(), match.end())
    for match in _CARD.finditer(text):
        if _luhn(re.sub(r"\D", "", match[0])):
            yield Finding("id_number", match[0], match.start(), match.end())
    for match in _PHONE.finditer(text):
        if 9 <= len(re.sub(r"\D", "", match[0])) <= 15:
            yield Finding("phone", match[0], match.start(), match.end())
    for match in _STREET.finditer(text):
        yield Finding("street_address", match[0], match.start(), match.end())


def scan(text: str) -> list[Finding]:
    """The personal-data shapes in ``text``, in order; where two overlap, the earlier found
    (the more specific kind) is kept."""
    kept: list[Finding] = []
    for finding in _candidates(text):
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda finding: finding.start)


# A campaign scan looks for the same few thousand titles and profile values in every text: each
# pattern is compiled once (``re``'s own cache holds 512, fewer than a catalogue's titles).
@functools.lru_cache(maxsize=16_384)
def _phrase(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text), re.IGNORECASE)


@functools.lru_cache(maxsize=16_384)
def _whole_word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def profile_echoes(text: str, profile: Mapping[str, Any], titles: Sequence[str] = ()) -> list[Finding]:
    """The user's own profile values repeated in ``text`` as whole words (case-insensitive):
    numbers of two or more digits (an age, a zip code) and words of three or more letters that
    are not too common to mean anything (an occupation). A value inside one of ``titles`` where
    the text names it ("Apollo 13" for a 13-year-old) is the title, not an echo."""
    named = [(match.start(), match.end()) for title in titles if title for match in _phrase(title).finditer(text)]
    found = []
    for value in profile.values():
        for part in value if isinstance(value, list) else [value]:
            word = str(part).strip()
            if word.casefold() in _COMMON_VALUES or len(word) < (2 if word.isdigit() else 3):
                continue
            for match in _whole_word(word).finditer(text):
                if not any(start <= match.start() and match.end() <= end for start, end in named):
                    found.append(Finding("profile_echo", match[0], match.start(), match.end()))
    return sorted(found, key=lambda finding: finding.start)


def reidentification(
    shown: Sequence[Sequence[str]], owners: Mapping[str, set[Any]], max_length: int
) -> list[dict[str, Any]]:
    """For each history length 1 to ``max_length``: the share of items whose first that many
    shown titles (newest first) are all in exactly one dataset user's history.

    ``shown`` is each item's shown titles; ``owners`` maps a title to the users who have it.
    An item showing fewer titles than the length is judged on all it shows.
    """
    unique = [0] * max_length
    for titles in shown:
        candidates: set[Any] | None = None
        for length in range(1, max_length + 1):
            if length <= len(titles):
                users = owners.get(titles[length - 1], set())
                candidates = set(users) if candidates is None else candidates & users
            unique[length - 1] += candidates is not None and len(candidates) == 1
    return [
        {"length": length, "unique_share": unique[length - 1] / len(shown) if shown else None, "items": len(shown)}
        for length in range(1, max_length + 1)
    ]


def longest_below(curve: list[dict[str, Any]], threshold: float) -> int:
    """The longest history whose unique share is below ``threshold`` at that length and every
    shorter one (0 when even one title singles out too many)."""
    longest = 0
    for point in curve:
        if point["unique_share"] is None or point["unique_share"] >= threshold:
            break
        longest = point["length"]
    return longest
