"""Automatic text metrics of generated explanations (the "text metrics" of perspective P3).

Every function here is a deterministic function of plain values (strings, collections,
dicts, numpy arrays): tests and other apps call them without a database.
``explanations.services.text_metrics.generation_run_text_metrics`` reads one generation run
and returns them all.

Where the definitions come from:

- USR, FMR, FCR and DIV: Li, Zhang & Chen, "Personalized Transformer for Explainable
  Recommendation" (PETER), ACL 2021, §5 (introduced in their NETE paper, CIKM 2020); the
  formulas follow PETER's released ``utils.py`` (``unique_sentence_percent``,
  ``feature_matching_ratio``, ``feature_coverage_ratio``, ``feature_diversity``).
- distinct-n: Li et al., "A Diversity-Promoting Objective Function for Neural Conversation
  Models", NAACL 2016.
- BLEU: Papineni et al., ACL 2002, computed by sacreBLEU (Post, WMT 2018) with its defaults.
- ROUGE-L: Lin, "ROUGE", 2004, with the tokenisation of Google's ``rouge-score`` package.

PETER's features are aspect words mined from reviews, and its FMR asks whether the one
ground-truth feature of a test review appears. xrec has no reviews: its feature vocabulary
is the dataset's item attribute values (genre names by default) and the "ground truth" of an
explanation is its recommended item's own attribute values. See ``item_features``.

Title matching (``title_variants``, ``mentioned_spans``) is the one the rating page uses to
highlight the history titles an explanation names; annotation may import it from here.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from explanations.prompts import HIDDEN_ATTRIBUTES
from explanations.texts import is_refusal, natural_title, word_count

# --- phrase matching ----------------------------------------------------------------------

_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=65536)
def _occurrences(phrase: str) -> re.Pattern[str]:
    # A lookahead finds every start, overlapping ones included; group 1 is the match.
    return re.compile(rf"(?=(?<!\w)({re.escape(phrase)})(?!\w))", re.IGNORECASE)


class PhraseMatcher:
    """Finds phrases in texts: case-insensitively, on word boundaries, longest first.

    At each position of a text the longest phrase that matches there wins and the scan goes
    on after it, so matches never overlap: the behaviour of one regex alternation of all
    phrases ordered longest first. Only phrases whose words all occur in a text are tried on
    it, so a catalogue of tens of thousands of titles costs about what a handful does.
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        self._by_first_word: dict[str, list[tuple[str, frozenset[str]]]] = {}
        for phrase in sorted({p.strip().lower() for p in phrases}):
            words = _WORD.findall(phrase)
            if words:  # a phrase with no word characters cannot sit on word boundaries
                self._by_first_word.setdefault(words[0], []).append((phrase, frozenset(words)))

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, phrase)`` of each match in text order; ``phrase`` is the matched
        text lower-cased, which is the phrase as given (lower-cased) for any ASCII text."""
        present = set(_WORD.findall(text.lower()))
        # A phrase that matches has each of its words as a whole word of the text (the
        # lookarounds bound its ends), so this filter drops no possible match.
        candidates = {
            phrase for word in present for phrase, words in self._by_first_word.get(word, ()) if words <= present
        }
        if not candidates:
            return []
        # One compiled pattern per phrase (cached across texts), then the alternation's choice:
        # scanning left to right, the longest phrase starting at a position wins and the scan
        # resumes after it. Compiling one alternation per text's candidate set cost far more.
        found = sorted(
            (m.start(1), -len(m.group(1)), m.group(1))
            for phrase in candidates
            for m in _occurrences(phrase).finditer(text)
        )
        matches, cursor = [], 0
        for start, negative_length, matched in found:
            if start >= cursor:
                matches.append((start, start - negative_length, matched.lower()))
                cursor = start - negative_length
        return matches


# --- titles -------------------------------------------------------------------------------

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
# A title form must be this long to count as a mention when checking grounding: "Heat",
# "Big" or "Up" are ordinary words far more often than they are films.
DISTINCTIVE_MIN_WORDS = 2
DISTINCTIVE_MIN_CHARS = 6


def title_variants(title: str) -> list[str]:
    """The forms in which a text may name ``title``: as stored, without a trailing year,
    and with a MovieLens-style trailing article moved to the front or dropped
    ("Usual Suspects, The (1995)" → "The Usual Suspects", "Usual Suspects"). Forms shorter
    than three characters are left out: they cannot be matched reliably."""
    variants = [title.strip()]
    bare = _YEAR.sub("", title).strip()
    variants.append(bare)
    if (natural := natural_title(bare)) != bare:
        variants.append(natural)
        variants.append(natural.split(" ", 1)[1])
    return [variant for variant in dict.fromkeys(variants) if len(variant) >= 3]


def mentioned_spans(text: str, titles: Iterable[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of ``text`` that name one of ``titles`` in any of
    its ``title_variants``, case-insensitively on word boundaries; where two forms overlap,
    the longer one wins."""
    matcher = PhraseMatcher(variant for title in titles for variant in title_variants(title))
    return [(start, end) for start, end, _ in matcher.find(text)]


def is_distinctive(form: str) -> bool:
    """True for a title form of at least two words or at least six characters."""
    return len(form.split()) >= DISTINCTIVE_MIN_WORDS or len(form) >= DISTINCTIVE_MIN_CHARS


def catalogue_forms(titles: Iterable[str]) -> dict[str, set[str]]:
    """Each distinctive lower-case title form → the titles that have it ("hamlet" may be
    two films)."""
    owners: dict[str, set[str]] = {}
    for title in titles:
        for form in title_variants(title):
            if is_distinctive(form):
                owners.setdefault(form.lower(), set()).add(title)
    return owners


def title_mentions(text: str, matcher: PhraseMatcher) -> list[tuple[int, int, str]]:
    """``matcher``'s matches in ``text`` that read as titles: a one-word form that starts
    with a letter counts only when the text capitalises it ("Contact", not "in contact")."""
    return [
        (start, end, form)
        for start, end, form in matcher.find(text)
        if len(form.split()) > 1 or not text[start].isalpha() or text[start].isupper()
    ]


def without_titles(text: str, matcher: PhraseMatcher) -> str:
    """``text`` with every title mention blanked out (same length), so that the "War" of
    "Star Wars" or the "Romance" of "True Romance" is not read as a feature."""
    for start, end, _ in title_mentions(text, matcher):
        text = text[:start] + " " * (end - start) + text[end:]
    return text


@dataclass(frozen=True)
class GroundingCase:
    """One explanation to check: its text, the titles its prompt showed as the user's history,
    the recommended item's title, and an id to quote in examples."""

    text: str
    shown_titles: Collection[str]
    target_title: str
    ref: Hashable = None


def grounding(
    cases: Sequence[GroundingCase],
    catalogue: Iterable[str],
    *,
    features_named: Sequence[bool] | None = None,
    max_examples: int = 5,
    per_case: bool = False,
) -> dict[str, Any]:
    """How often explanations name titles the prompt never showed.

    A mention is a distinctive form (``is_distinctive``; see ``title_mentions`` for one-word
    forms) of a title of ``catalogue`` found case-insensitively on word boundaries, longest
    first. It is grounded when that form is a form of one of the case's shown titles or of
    its target title (a form two films share, such as "Hamlet", gets the benefit of the
    doubt); otherwise it is hallucinated: the model named an item from outside what it was
    told, for instance the user's held-out test item. Returns shares of explanations
    (``None`` for no cases):

    - ``hallucination_rate``: naming at least one hallucinated title;
    - ``history_mention_rate``: naming at least one shown history title (the xrec-default
      template asks for one or two);
    - ``target_mention_rate``: naming the recommended item;
    - ``grounded_share`` (with ``features_named``, one flag per case: the explanation names a
      true attribute of its item): naming a true attribute or a shown history title, i.e.
      tying the item to a checkable fact rather than to nothing or to an invented one;

    with mention counts and up to ``max_examples`` hallucinated mentions, in input order; with
    ``per_case``, also ``hallucinated``: one flag per case, in input order.
    Titles that are also common phrases ("Home Alone", "First Knight") can still be found
    where no film was meant: the examples are there to be read.
    """
    owners = catalogue_forms(
        {*catalogue, *(title for case in cases for title in case.shown_titles), *(case.target_title for case in cases)}
    )
    matcher = PhraseMatcher(owners)
    hallucinating = naming_history = naming_target = n_mentions = n_hallucinated = grounded = 0
    examples: list[dict[str, Any]] = []
    flags: list[bool] = []
    for index, case in enumerate(cases):
        target = {form.lower() for form in title_variants(case.target_title)}
        history = {
            form.lower() for title in case.shown_titles if title != case.target_title for form in title_variants(title)
        }
        found_history = found_target = found_other = False
        for start, end, form in title_mentions(case.text, matcher):
            n_mentions += 1
            if form in target:
                found_target = True
            elif form in history:
                found_history = True
            else:
                found_other = True
                n_hallucinated += 1
                if len(examples) < max_examples:
                    examples.append(
                        {
                            "ref": case.ref,
                            "named": case.text[start:end],
                            "titles": sorted(owners.get(form, ())),
                            "context": case.text[max(0, start - 80) : end + 80],
                        }
                    )
        hallucinating += found_other
        flags.append(found_other)
        naming_history += found_history
        naming_target += found_target
        grounded += found_history or bool(features_named and features_named[index])
    n = len(cases)
    return ({"hallucinated": flags} if per_case else {}) | {
        "n": n,
        "hallucination_rate": hallucinating / n if n else None,
        "history_mention_rate": naming_history / n if n else None,
        "target_mention_rate": naming_target / n if n else None,
        "grounded_share": grounded / n if n and features_named is not None else None,
        "n_mentions": n_mentions,
        "n_hallucinated_mentions": n_hallucinated,
        "examples": examples,
    }


# --- length, refusals, repetition -----------------------------------------------------------

_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*")


def tokens(text: str) -> list[str]:
    """Lower-case words, keeping contractions whole ("don't"): the unit of distinct-n."""
    return _TOKEN.findall(text.lower())


def length_distribution(
    texts: Sequence[str], *, word_limit: int | None = None, bucket_width: int = 10
) -> dict[str, Any]:
    """Length in whitespace-separated words (``word_count``, as the word limit is enforced).

    ``p90`` interpolates linearly between ranks (numpy's default percentile). ``histogram``
    has one bucket per ``bucket_width`` words from 0 up to the longest text, empty buckets
    included: ``{"from": 0, "to": 9, "n": 3}`` counts texts of 0 to 9 words. ``over_limit``
    is the share of texts longer than ``word_limit``.
    """
    words = [word_count(text) for text in texts]
    if not words:
        return {
            "n": 0, "mean": None, "median": None, "p90": None, "min": None, "max": None,
            "histogram": [], "word_limit": word_limit, "over_limit": None,
        }  # fmt: skip
    counts = Counter(w // bucket_width for w in words)
    return {
        "n": len(words),
        "mean": float(np.mean(words)),
        "median": float(np.median(words)),
        "p90": float(np.percentile(words, 90)),
        "min": min(words),
        "max": max(words),
        "histogram": [
            {"from": b * bucket_width, "to": (b + 1) * bucket_width - 1, "n": counts.get(b, 0)}
            for b in range(max(words) // bucket_width + 1)
        ],
        "word_limit": word_limit,
        "over_limit": sum(w > word_limit for w in words) / len(words) if word_limit is not None else None,
    }


def refusal_rate(texts: Sequence[str]) -> float | None:
    """Share of texts that refuse or apologise (``is_refusal``, the teacher filter's test)."""
    return sum(is_refusal(text) for text in texts) / len(texts) if texts else None


def unique_sentence_ratio(texts: Sequence[str]) -> float | None:
    """USR (PETER): the number of distinct explanations divided by the number of
    explanations, after lower-casing and collapsing whitespace. ``["a", "A ", "b"]`` → 2/3."""
    return len({" ".join(text.lower().split()) for text in texts}) / len(texts) if texts else None


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """distinct-n: distinct n-grams / all n-grams over the whole run (n-grams of ``tokens``,
    never across two texts); ``None`` when the run has no n-gram at all."""
    grams = [tuple(words[i : i + n]) for words in map(tokens, texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


# --- features: FMR, FCR, DIV ----------------------------------------------------------------

# Attribute values that name no feature.
PLACEHOLDER_FEATURES = frozenset({"", "unknown", "(no genres listed)", "none", "n/a", "other"})


def _feature_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    text = (f"{value:g}" if isinstance(value, float) else str(value)).strip().lower()
    return None if text in PLACEHOLDER_FEATURES else text


def item_features(attributes: Mapping[str, Any], keys: Collection[str] | None = None) -> set[str]:
    """The lower-case features of one item: the values of its categorical attributes.

    By default (``keys=None``) every list-valued attribute of strings counts (MovieLens'
    ``genres``; tags or categories elsewhere), except those prompts hide (links, dates);
    scalars do not (a year is not a taste, and free-text fields would swamp FCR). With
    ``keys``, exactly those attributes count, lists element-wise and scalars as text
    (``year`` 1995 → "1995"). Placeholders ("unknown", "(no genres listed)") never count.
    """
    features = set()
    for key, value in attributes.items():
        if keys is None:
            if key in HIDDEN_ATTRIBUTES or not isinstance(value, list):
                continue
            values = [v for v in value if isinstance(v, str)]
        elif key in keys:
            values = value if isinstance(value, list) else [value]
        else:
            continue
        features |= {text for text in map(_feature_text, values) if text is not None}
    return features


def feature_vocabulary(attributes: Iterable[Mapping[str, Any]], keys: Collection[str] | None = None) -> set[str]:
    """All features of a catalogue (``item_features`` of every item): FCR's denominator."""
    return set().union(*(item_features(item, keys) for item in attributes))


def _plural(feature: str) -> str | None:
    last = feature.split()[-1] if feature.split() else ""
    if not last.isalpha() or last.endswith("s"):
        return None
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        return feature[:-1] + "ies"
    if last.endswith(("x", "z", "ch", "sh")):
        return feature + "es"
    return feature + "s"


def feature_forms(feature: str) -> set[str]:
    """How a text may name ``feature``: as is, or with a regular English plural ("comedy" →
    "comedies", "thriller" → "thrillers"); numbers and words ending in s get no plural."""
    return {feature} | ({plural} if (plural := _plural(feature)) else set())


def features_in(texts: Sequence[str], vocabulary: Collection[str]) -> list[set[str]]:
    """The features of ``vocabulary`` each text names (a ``feature_forms`` form found
    case-insensitively on word boundaries, longest first: "film-noir" before "noir")."""
    features = sorted({feature.lower() for feature in vocabulary})
    owner = {feature: feature for feature in features}
    # A plural never takes over another feature's own name.
    for feature in features:
        for form in feature_forms(feature) - {feature}:
            owner.setdefault(form, feature)
    matcher = PhraseMatcher(owner)
    return [{owner[form] for _, _, form in matcher.find(text) if form in owner} for text in texts]


def feature_diversity(feature_sets: Sequence[Collection[str]]) -> float | None:
    """DIV (PETER): 2/(N(N-1)) · Σ_{i<j} |F_i ∩ F_j|, the mean number of features two
    explanations share; lower is more diverse. ``None`` below two explanations.

    Computed in O(Σ|F_i|) rather than over all pairs: a feature named by c explanations lies
    in the intersection of exactly C(c, 2) pairs, so Σ_{i<j} |F_i ∩ F_j| = Σ_f C(c_f, 2).
    """
    n = len(feature_sets)
    if n < 2:
        return None
    counts = Counter(feature for features in feature_sets for feature in set(features))
    return sum(c * (c - 1) // 2 for c in counts.values()) / (n * (n - 1) / 2)


def feature_metrics(
    texts: Sequence[str],
    target_features: Sequence[Collection[str]],
    vocabulary: Collection[str],
    *,
    found: Sequence[set[str]] | None = None,
) -> dict[str, Any]:
    """FMR, FCR and DIV of explanations against a feature vocabulary.

    - ``fmr``: share of explanations that name at least one feature of their own item
      (``target_features[i]`` for ``texts[i]``); explanations whose item has no feature in
      the vocabulary are left out, and ``n_fmr`` says how many were counted.
    - ``fcr``: distinct features named across all explanations / vocabulary size.
    - ``div``: ``feature_diversity`` of the features each explanation names.
    - ``feature_counts``: how many explanations name each feature, most named first.

    ``found`` is ``features_in(texts, vocabulary)`` when the caller has it already.
    """
    vocabulary = {feature.lower() for feature in vocabulary}
    if found is None:
        found = features_in(texts, vocabulary)
    owns = [{feature.lower() for feature in own} & vocabulary for own in target_features]
    matched = [bool(features & own) for features, own in zip(found, owns, strict=True) if own]
    counts = Counter(feature for features in found for feature in features)
    return {
        "vocabulary_size": len(vocabulary),
        "fmr": sum(matched) / len(matched) if matched else None,
        "n_fmr": len(matched),
        "fcr": len(counts) / len(vocabulary) if vocabulary else None,
        "n_features_used": len(counts),
        "div": feature_diversity(found),
        "feature_counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


# --- overlap with a reference run -----------------------------------------------------------

_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """``rouge-score``'s default tokenisation (no stemming): lower-case, every run of
    characters other than a-z and 0-9 is a separator."""
    return _NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def rouge_l(reference: str, candidate: str) -> tuple[float, float, float]:
    """ROUGE-L ``(precision, recall, f1)`` of one candidate against one reference: the
    longest common subsequence of their ``rouge_tokens`` over the candidate's length, over
    the reference's length, and their harmonic mean. All zero when either has no token."""
    ref, cand = rouge_tokens(reference), rouge_tokens(candidate)
    if not ref or not cand:
        return 0.0, 0.0, 0.0
    # One row of the LCS table at a time.
    previous = [0] * (len(cand) + 1)
    for token in ref:
        current = [0]
        for j, other in enumerate(cand, 1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    precision, recall = lcs / len(cand), lcs / len(ref)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def reference_overlap(candidates: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """BLEU and ROUGE-L of ``candidates[i]`` against ``references[i]``.

    ``bleu`` is sacreBLEU's corpus BLEU-4 on its 0-100 scale with its defaults (13a
    tokenisation, mixed case, exponential smoothing), quoted with its signature so a figure
    can be reproduced; ``rouge_l_f1`` is the mean per-pair ROUGE-L F1 (0-1).
    """
    if len(candidates) != len(references):
        raise ValueError("candidates and references must pair up")
    if not candidates:
        return {"n_pairs": 0, "bleu": None, "bleu_signature": None, "rouge_l_f1": None}
    from sacrebleu.metrics import BLEU  # heavy: loaded only when BLEU is asked for

    metric = BLEU()
    score = metric.corpus_score(list(candidates), [list(references)])
    f1s = [rouge_l(reference, candidate)[2] for candidate, reference in zip(candidates, references, strict=True)]
    return {
        "n_pairs": len(candidates),
        "bleu": float(score.score),
        "bleu_signature": str(metric.get_signature()),
        "rouge_l_f1": float(np.mean(f1s)),
    }


# --- sentence-embedding metrics ---------------------------------------------------------------


def personalisation_similarity(
    items: Sequence[Hashable], users: Sequence[Hashable], embeddings: npt.NDArray[np.floating[Any]]
) -> dict[str, Any]:
    """Mean cosine similarity of explanations of the same item for different users: lower
    means more personalised (an explanation that says the same to everyone scores 1).

    Row i of ``embeddings`` (L2-normalised, from ``explanations.embeddings.embed``) is the
    explanation of ``items[i]`` for ``users[i]``. For each item the mean is taken over its
    pairs of explanations of different users; ``mean_similarity`` averages those means over
    the ``n_items`` items that have such a pair, each item weighing the same. Per item it
    costs O(n) vectors, not O(n²) pairs: Σ_{i<j, different users} v_i·v_j =
    (|Σ v|² - Σ_users |Σ_user v|²) / 2.
    """
    if not len(items) == len(users) == len(embeddings):
        raise ValueError("items, users and embeddings must have one entry per explanation")
    vectors = np.asarray(embeddings, dtype=np.float64)
    by_item: dict[Hashable, dict[Hashable, list[int]]] = {}
    for row, (item, user) in enumerate(zip(items, users, strict=True)):
        by_item.setdefault(item, {}).setdefault(user, []).append(row)
    means = []
    for groups in by_item.values():
        if len(groups) < 2:
            continue
        sums = [vectors[rows].sum(axis=0) for rows in groups.values()]
        total = np.sum(sums, axis=0)
        n = sum(len(rows) for rows in groups.values())
        pairs = (n * n - sum(len(rows) ** 2 for rows in groups.values())) / 2
        means.append((float(total @ total) - sum(float(s @ s) for s in sums)) / 2 / pairs)
    return {"mean_similarity": float(np.mean(means)) if means else None, "n_items": len(means)}


def embedding_similarity(
    candidates: npt.NDArray[np.floating[Any]], references: npt.NDArray[np.floating[Any]]
) -> float | None:
    """Mean cosine similarity of paired sentence embeddings (row i with row i).

    A semantic-similarity score in the spirit of BERTScore but not BERTScore: BERTScore
    matches token embeddings greedily; this compares one mean-pooled all-MiniLM-L6-v2
    sentence vector per text.
    """
    if candidates.shape != references.shape:
        raise ValueError("candidates and references must pair up")
    if not len(candidates):
        return None
    return float(np.mean(np.sum(np.asarray(candidates, np.float64) * np.asarray(references, np.float64), axis=1)))
