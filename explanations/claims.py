"""An explanation cut into claims, each of which an annotator can find supported or not. Pure.

A claim is a sentence, or a clause of one: a sentence is cut again after a semicolon, before
"because" (the reason is a claim of its own) and before "and" when a new subject follows
("and it", "and the film", "and you"), so "action and adventure" or "Romeo and Juliet" stay
whole. Quoted text and parentheses are never cut, nor is a sentence after an abbreviation
("Dr.", "e.g."), an initial ("J. R. R.") or inside a number ("4.5"). Each claim keeps its
character span in the text, so a page can show it in place and a researcher can move the
cuts (``claims_from_cuts``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "st", "vs", "jr", "sr", "no", "vol", "e.g", "i.e", "etc", "approx", "ca"}
SUBJECTS = r"(?:it|it's|its|this|that|these|those|they|their|you|your|you'll|he|she|his|her|the|there|we|i)"
# Closing quotes (straight and curly) and brackets that may follow a sentence's end.
CLOSERS = "\"')\u201d\u2019"
_SENTENCE_END = re.compile(rf"[.!?]+[{re.escape(CLOSERS)}]*(?=\s+|$)")
_CLAUSE_CUT = re.compile(rf"(?:\s*;\s*|,?\s+(?=because\b)|,?\s+(?=and\s+{SUBJECTS}\b))", re.IGNORECASE)
_CONNECTIVE = re.compile(r"^(?:because|and)\s+", re.IGNORECASE)
_PROTECTED = re.compile(r"\"[^\"]*\"|“[^”]*”|\([^)]*\)")


@dataclass(frozen=True)
class Claim:
    """One claim: its text and its [start, end) span in the explanation."""

    text: str
    start: int
    end: int


def _protected(text: str) -> list[tuple[int, int]]:
    return [(match.start(), match.end()) for match in _PROTECTED.finditer(text)]


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < position < end for start, end in spans)


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """A full stop that ends a sentence: not after an abbreviation or a single initial."""
    if match[0].startswith(".") and len(match[0].rstrip(CLOSERS)) == 1:
        word = re.search(r"([\w.]+)$", text[: match.start()])
        before = word[1].casefold() if word else ""
        if before in ABBREVIATIONS or (len(before) == 1 and before.isalpha()):
            return False
    return True


def sentence_cuts(text: str) -> list[int]:
    """Offsets where a new sentence starts."""
    spans = _protected(text)
    cuts = []
    for match in _SENTENCE_END.finditer(text):
        if _inside(match.end(), spans) or not _ends_sentence(text, match):
            continue
        start = match.end() + (len(text[match.end() :]) - len(text[match.end() :].lstrip()))
        # A sentence starts with anything but a lower-case letter ("… goes on." are classics).
        if start < len(text) and not text[start].islower():
            cuts.append(start)
    return cuts


def clause_cuts(text: str, start: int, end: int) -> list[int]:
    """Offsets inside the sentence [start, end) where a new clause starts."""
    spans = _protected(text)
    cuts = []
    for match in _CLAUSE_CUT.finditer(text, start, end):
        if not _inside(match.start(), spans) and match.start() > start:
            cuts.append(match.end())
    return cuts


def default_cuts(text: str) -> list[int]:
    """Where ``split_claims`` cuts ``text``: sentence and clause starts, ascending."""
    bounds = [0, *sentence_cuts(text), len(text)]
    cuts: list[int] = []
    for start, end in itertools.pairwise(bounds):
        if start:
            cuts.append(start)
        cuts.extend(clause_cuts(text, start, end))
    return sorted(set(cuts))


def claims_from_cuts(text: str, cuts: list[int]) -> list[Claim]:
    """The claims between ``cuts`` (character offsets; out-of-range and repeated ones are
    ignored). Each claim is trimmed of surrounding space, of its trailing punctuation's
    separators and of a leading "because"/"and"; an empty piece is dropped."""
    bounds = [0, *sorted({cut for cut in cuts if 0 < cut < len(text)}), len(text)]
    claims = []
    for start, end in itertools.pairwise(bounds):
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        piece = piece.strip()
        connective = _CONNECTIVE.match(piece)
        if connective:
            lead += connective.end()
            piece = piece[connective.end() :]
        piece = piece.rstrip(" ,;")
        if piece.strip(".!? "):
            claims.append(Claim(piece, start + lead, start + lead + len(piece)))
    return claims


def split_claims(text: str) -> list[Claim]:
    """``text`` cut into claims at its sentences and clauses (see the module docstring)."""
    return claims_from_cuts(text, default_cuts(text))
