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


class SplitError(ValueError):
    """Claims that are not consecutive parts of their explanation; the message says which."""


def claims_from_pieces(text: str, pieces: list[str]) -> list[Claim]:
    """The claims a researcher wrote out, one piece each, located in ``text`` in order (case
    and spacing as in the text; runs of white space match any white space). Text between
    pieces belongs to no claim, so a greeting can be left out. Raises ``SplitError`` naming
    the first piece that is not found after the one before it, or when no piece is given."""
    claims: list[Claim] = []
    cursor = 0
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        number = len(claims) + 1
        pattern = r"\s+".join(re.escape(word) for word in piece.split())
        match = re.compile(pattern).search(text, cursor)
        if match is None:
            where = "in the explanation" if number == 1 else f"after claim {number - 1}"
            raise SplitError(f"Claim {number} ({piece[:60]!r}) is not found {where}: copy it from the text.")
        claims.append(Claim(match[0], match.start(), match.end()))
        cursor = match.end()
    if not claims:
        raise SplitError("Give at least one claim.")
    return claims


def marked_spans(value: object, length: int, *, limit: int = 20) -> list[list[int]]:
    """Spans an annotator marked in a claim of ``length`` characters, checked and tidied:
    ``value`` is a list of ``[start, end]`` pairs with 0 <= start < end <= length (at most
    ``limit``); they come back sorted, with overlapping and touching spans merged. Raises
    ``SplitError`` for anything else."""
    if not isinstance(value, list) or len(value) > limit:
        raise SplitError(f"Marked spans are a list of at most {limit} [start, end] pairs.")
    spans = []
    for pair in value:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(bound, int) and not isinstance(bound, bool) for bound in pair)
            and 0 <= pair[0] < pair[1] <= length
        ):
            raise SplitError(f"A marked span must be [start, end] within the claim's {length} characters.")
        spans.append(list(pair))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


_WORD = re.compile(r"[\w'\u2019-]+")


def word_pieces(text: str) -> list[tuple[str, int | None, int | None]]:
    """``text`` as (piece, start, end) pieces: words carry their [start, end) offsets (a page
    lets an annotator mark them), the text between words carries None."""
    pieces: list[tuple[str, int | None, int | None]] = []
    cursor = 0
    for match in _WORD.finditer(text):
        if match.start() > cursor:
            pieces.append((text[cursor : match.start()], None, None))
        pieces.append((match[0], match.start(), match.end()))
        cursor = match.end()
    if cursor < len(text):
        pieces.append((text[cursor:], None, None))
    return pieces
