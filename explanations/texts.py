"""Plain-text checks on an explanation: its length, a refusal, an echo of the prompt, and the
word limit enforced in code.

Pure functions on strings, shared by generation (which enforces the limit), the teacher filter
of adapter training and the text metrics, so that all three count words and echoes alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Outputs that decline or hedge instead of explaining.
REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|as an ai|i cannot|i can'?t|i am unable|i'm unable|i do not have)\b",
    re.IGNORECASE,
)
# A run of this many words copied from the prompt is an echo, not an explanation: no title or
# genre list of the prompts is that long, but a copied instruction or history line is.
ECHO_WORDS = 8
# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) before a space
# or the end: "Star Wars (1977)." ends one, "St. Elmo's Fire" usually does not end at "St.".
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])(?<!\bSt)(?<!\bMr)(?<!\bDr)(?<!\bMrs)[.!?][\"'\u201d\u2019)\]]*(?=\s|$)")
# MovieLens moves a leading article to the end: "Usual Suspects, The".
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An|Les|La|Le|Il|Das|Der|Die|El)$")
# Tokens per English word in the bundled tokenizer's range, with room for punctuation: the
# generation budget for a word limit (the text is cut to the limit afterwards anyway).
TOKENS_PER_WORD = 1.6


def natural_title(title: str) -> str:
    """A title as people write it: "Usual Suspects, The" → "The Usual Suspects" (a small model
    copies the stored form and then loses the article: "Usual Suspects and The")."""
    match = _TRAILING_ARTICLE.match(title.strip())
    return f"{match['article']} {match['rest']}" if match else title.strip()


def word_count(text: str) -> int:
    """Whitespace-separated words: the unit of every word limit in xrec."""
    return len(text.split())


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


def copies_prompt(text: str, messages: Sequence[dict[str, str]], n: int = ECHO_WORDS) -> bool:
    """True when ``text`` repeats any run of ``n`` words from the prompt (an echo, not an answer);
    case and punctuation attached to words are ignored."""
    words = _bare_words(text)
    prompt = _bare_words(" ".join(str(message.get("content", "")) for message in messages))
    grams = {tuple(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
    return any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1))


def _bare_words(text: str) -> list[str]:
    return [word.strip(".,;:!?\"'()[]*-\u2013\u2014").lower() for word in text.split()]


def token_budget(max_words: int) -> int:
    """New tokens to allow for an answer of at most ``max_words`` words."""
    return int(max_words * TOKENS_PER_WORD) + 8


def limit_words(text: str, max_words: int, *, finished: bool = True) -> str:
    """``text`` cut to at most ``max_words`` words at the last full sentence within the limit.

    - Whitespace is normalised (a 135M model sprinkles blank lines and double spaces).
    - Within the limit and ``finished`` (the model stopped by itself): returned as is.
    - Otherwise the longest run of whole sentences within the limit is kept. An answer cut by
      the token cap (``finished=False``) loses its unfinished last sentence even when short.
    - When not even the first sentence fits, the first ``max_words`` words are kept, cut back
      to the last comma or semicolon when one falls in the second half, and end with "…".
    """
    words = text.split()
    clean = " ".join(words)
    if not words or (len(words) <= max_words and (finished or _ends_sentence(clean))):
        return clean
    ends = [match.end() for match in _SENTENCE_END.finditer(clean)]
    fitting = [end for end in ends if word_count(clean[:end]) <= max_words]
    if fitting:
        return clean[: fitting[-1]].strip()
    head = words[:max_words]
    for index in range(len(head) - 1, len(head) // 2 - 1, -1):
        if head[index].endswith((",", ";", ":")):
            head = head[: index + 1]
            break
    return " ".join(head).rstrip(",;:") + "…"


def _ends_sentence(text: str) -> bool:
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    return bool(ends) and ends[-1] == len(text)
