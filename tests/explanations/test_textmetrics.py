"""Text metrics of explanations: each one on hand-made examples with hand-computed values,
checked against the reference implementations where one exists, and one run read end to end."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from explanations.embeddings import embed
from explanations.models import Explanation, GenerationRun
from explanations.prompts import Controls, prompt_context, render
from explanations.services.text_metrics import generation_run_text_metrics
from explanations.textmetrics import (
    GroundingCase,
    PhraseMatcher,
    catalogue_forms,
    distinct_n,
    embedding_similarity,
    feature_diversity,
    feature_metrics,
    feature_vocabulary,
    features_in,
    grounding,
    item_features,
    length_distribution,
    mentioned_spans,
    personalisation_similarity,
    reference_overlap,
    refusal_rate,
    rouge_l,
    title_variants,
    unique_sentence_ratio,
    without_titles,
)
from recommendations.models import Interaction, Item
from tests.annotation.factories import explained_runs

MaxQueries = Callable[..., AbstractContextManager[Any]]


# --- length, refusals, repetition -----------------------------------------------------------


def test_length_distribution_reports_mean_median_p90_buckets_and_share_over_the_limit() -> None:
    texts = ["one two three", "w " * 8, "w " * 10, "w " * 25]  # 3, 8, 10 and 25 words

    lengths = length_distribution(texts, word_limit=9)

    assert (lengths["n"], lengths["mean"], lengths["median"]) == (4, 11.5, 9.0)
    assert lengths["p90"] == pytest.approx(20.5)  # rank 2.7 of [3, 8, 10, 25]: 10 + 0.7 * 15
    assert lengths["histogram"] == [
        {"from": 0, "to": 9, "n": 2},
        {"from": 10, "to": 19, "n": 1},
        {"from": 20, "to": 29, "n": 1},
    ]
    assert lengths["over_limit"] == 0.5
    assert length_distribution([], word_limit=9)["mean"] is None


def test_refusal_rate_counts_apologies_and_refusals() -> None:
    texts = ["I'm sorry, I cannot help with that.", "You loved Alien.", "As an AI I have no taste."]

    assert refusal_rate(texts) == pytest.approx(2 / 3)
    assert refusal_rate([]) is None


def test_usr_is_distinct_explanations_over_all_ignoring_case_and_whitespace() -> None:
    texts = ["You will love it.", "you  will love IT.\n", "A different one."]

    assert unique_sentence_ratio(texts) == pytest.approx(2 / 3)
    assert unique_sentence_ratio([]) is None


def test_distinct_n_counts_unique_ngrams_over_the_whole_run_never_across_texts() -> None:
    texts = ["The cat sat", "the cat ran"]

    assert distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, sat, ran of 6
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # (the cat) twice; no (sat the)
    assert distinct_n(["Don't stop", "don't STOP"], 1) == 0.5  # contractions stay one word
    assert distinct_n(["one"], 2) is None


# --- features -------------------------------------------------------------------------------

CATALOGUE_ATTRIBUTES: list[dict[str, Any]] = [
    {"genres": ["Comedy", "Drama"], "year": 1995, "imdb_url": "http://x"},
    {"genres": ["Horror", "unknown"]},
    {"genres": ["Sci-Fi"]},
]


def test_feature_vocabulary_is_list_valued_attribute_values_unless_attributes_are_named() -> None:
    assert feature_vocabulary(CATALOGUE_ATTRIBUTES) == {"comedy", "drama", "horror", "sci-fi"}
    assert feature_vocabulary(CATALOGUE_ATTRIBUTES, keys=["genres", "year"]) == {
        "comedy", "drama", "horror", "sci-fi", "1995",
    }  # fmt: skip
    assert item_features({"year": 1995.0}, keys=["year"]) == {"1995"}


def test_features_match_case_insensitively_on_word_boundaries_with_regular_plurals() -> None:
    found = features_in(
        ["COMEDIES and a Sci-Fi twist", "a dramatic tale", "Children's films"],
        ["comedy", "sci-fi", "drama", "children's"],
    )

    assert found == [{"comedy", "sci-fi"}, set(), {"children's"}]


def test_fmr_fcr_and_div_follow_peter_on_a_hand_computed_run() -> None:
    texts = ["A funny comedy with some drama.", "More comedies for you.", "A dramatic tale.", "Nothing to say."]
    targets = [{"Comedy", "Drama"}, {"Horror"}, {"Sci-Fi"}, {"Western"}]  # the last is not in the vocabulary

    metrics = feature_metrics(texts, targets, feature_vocabulary(CATALOGUE_ATTRIBUTES))

    # FMR over the 3 explanations whose item has a feature: only the first names its own.
    assert (metrics["fmr"], metrics["n_fmr"]) == (pytest.approx(1 / 3), 3)
    assert (metrics["fcr"], metrics["n_features_used"]) == (0.5, 2)  # comedy, drama of 4
    # Feature sets {comedy, drama}, {comedy}, {}, {}: one shared feature over 6 pairs.
    assert metrics["div"] == pytest.approx(1 / 6)
    assert metrics["feature_counts"] == {"comedy": 2, "drama": 1}


def _div_by_pairs(feature_sets: list[set[str]]) -> float:
    pairs = list(itertools.combinations(feature_sets, 2))
    return sum(len(a & b) for a, b in pairs) / len(pairs)


def test_div_by_feature_counts_equals_peters_pairwise_formula() -> None:
    rng = random.Random(7)
    vocabulary = [f"f{i}" for i in range(12)]
    for n in (2, 3, 17, 60):
        feature_sets = [set(rng.sample(vocabulary, rng.randint(0, 5))) for _ in range(n)]

        assert feature_diversity(feature_sets) == pytest.approx(_div_by_pairs(feature_sets))
    assert feature_diversity([{"a"}]) is None


def test_a_feature_inside_a_named_title_is_not_a_feature_mention() -> None:
    titles = PhraseMatcher(catalogue_forms(["Star Wars"]))
    text = "Fans of Star Wars will like it."

    assert features_in([text], ["war"]) == [{"war"}]
    assert features_in([without_titles(text, titles)], ["war"]) == [set()]


# --- titles and grounding -------------------------------------------------------------------


def test_title_variants_drop_the_year_and_move_a_trailing_article() -> None:
    assert title_variants("Usual Suspects, The (1995)") == [
        "Usual Suspects, The (1995)",
        "Usual Suspects, The",
        "The Usual Suspects",
        "Usual Suspects",
    ]
    assert title_variants("Up") == []


def test_mentioned_spans_find_titles_case_insensitively_on_word_boundaries_longest_first() -> None:
    text = "Since you loved the usual suspects and Toy Story 2, try Toy Story (1995)."

    spans = mentioned_spans(text, ["Usual Suspects, The (1995)", "Toy Story (1995)", "Toy Story 2 (1999)", "Story"])

    assert [text[a:b] for a, b in spans] == ["the usual suspects", "Toy Story 2", "Toy Story (1995)"]
    assert mentioned_spans("Tangled up", ["Tang (1999)"]) == []


def test_phrase_matcher_finds_exactly_what_one_longest_first_alternation_finds() -> None:
    rng = random.Random(3)
    words = ["star", "wars", "toy", "story", "2", "the", "fan", "o'brien", "m*a*s*h", "heat"]
    phrases = sorted({" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(40)})
    naive = re.compile(
        rf"(?<!\w)(?:{'|'.join(map(re.escape, sorted(phrases, key=len, reverse=True)))})(?!\w)", re.IGNORECASE
    )
    matcher = PhraseMatcher(phrases)
    for _ in range(200):
        text = " ".join(rng.choice([*words, "Star", "WARS", "x,", "starwars"]) for _ in range(rng.randint(0, 12)))

        assert [(a, b) for a, b, _ in matcher.find(text)] == [m.span() for m in naive.finditer(text)]


def test_grounding_flags_titles_that_are_neither_shown_history_nor_the_target() -> None:
    catalogue = ["Toy Story", "Toy Story 2", "Usual Suspects, The (1995)", "Heat", "Contact"]
    shown = {"Usual Suspects, The (1995)", "Heat"}
    cases = [
        # A title variant of a shown title, and the target: grounded.
        GroundingCase("Since you loved the usual suspects, try Toy Story.", shown, "Toy Story", ref=1),
        # "Toy Story 2" is the longer match and was never shown; lower-case "contact" is a word.
        GroundingCase("Like Toy Story 2, it is fun; stay in contact.", shown, "Toy Story", ref=2),
        # "Heat" is too short to count either way; capitalised "Contact" is a title.
        GroundingCase("You enjoyed Heat, so watch Contact.", shown, "Toy Story", ref=3),
    ]

    result = grounding(cases, catalogue)

    assert result["hallucination_rate"] == pytest.approx(2 / 3)
    assert result["history_mention_rate"] == pytest.approx(1 / 3)
    assert result["target_mention_rate"] == pytest.approx(1 / 3)
    assert (result["n_mentions"], result["n_hallucinated_mentions"]) == (4, 2)
    assert [(e["ref"], e["named"], e["titles"]) for e in result["examples"]] == [
        (2, "Toy Story 2", ["Toy Story 2"]),
        (3, "Contact", ["Contact"]),
    ]
    assert grounding([], catalogue)["hallucination_rate"] is None


# --- overlap with a reference ---------------------------------------------------------------

SENTENCE_PAIRS = [
    ("the cat sat on the mat", "the cat on the mat"),
    ("You'll love Toy Story 2 (1999)!", "you will LOVE toy story, 2"),
    ("A tense, clever thriller like Se7en.", "A clever and tense thriller, much like Se7en or Heat."),
    ("Amélie's charm fits your taste", "amelie charm: fits your taste"),
    ("nothing in common here", "completely different words"),
    ("", "an empty reference"),
    ("ab ab ab ba ba", "ba ab ba ab ab ba"),
]


def test_rouge_l_is_hand_computable_on_a_simple_pair() -> None:
    precision, recall, f1 = rouge_l("the cat sat on the mat", "the cat on the mat")

    assert (precision, recall) == (1.0, pytest.approx(5 / 6)) and f1 == pytest.approx(10 / 11)


@pytest.mark.parametrize(("reference", "candidate"), SENTENCE_PAIRS)
def test_rouge_l_equals_the_rouge_score_package(reference: str, candidate: str) -> None:
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(reference, candidate)["rougeL"]

    assert rouge_l(reference, candidate) == pytest.approx((expected.precision, expected.recall, expected.fmeasure))


def test_bleu_is_sacrebleu_corpus_bleu_of_the_paired_texts() -> None:
    candidates = ["the cat sat on the mat", "you will love this thriller", "a fine comedy for you"]
    references = ["the cat sat on a mat", "you will love this tense thriller", "a comedy you will enjoy"]

    overlap = reference_overlap(candidates, references)

    assert overlap["bleu"] == pytest.approx(sacrebleu.corpus_bleu(candidates, [references]).score)
    assert overlap["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert overlap["rouge_l_f1"] == pytest.approx(
        np.mean([rouge_l(r, c)[2] for c, r in zip(candidates, references, strict=True)])
    )
    assert reference_overlap([], [])["bleu"] is None


# --- embeddings -----------------------------------------------------------------------------


def test_embeddings_are_unit_rows_and_rank_a_paraphrase_above_an_unrelated_text() -> None:
    texts = [
        "You will enjoy this funny movie about toys.",
        "You will enjoy this funny movie about toys.",
        "This comedy about toys should make you laugh.",
        "The invoice is due at the end of the quarter.",
    ]

    vectors = embed(texts)

    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(vectors[0] @ vectors[2]) > float(vectors[0] @ vectors[3]) + 0.2
    assert embed([]).shape == (0, 384)


def test_personalisation_averages_cross_user_similarity_per_item_over_items_with_a_pair() -> None:
    vectors = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    items = ["A", "A", "B", "B", "B", "C"]  # C has a single explanation and is left out
    users = [1, 2, 1, 2, 3, 1]

    result = personalisation_similarity(items, users, vectors)

    # A: one pair, cosine 0. B: pairs (1, 2) = 1, (1, 3) = 0, (2, 3) = 0 → 1/3.
    assert result == {"mean_similarity": pytest.approx(1 / 6), "n_items": 2}
    # Two explanations of one user for the same item are not a cross-user pair.
    same_user = personalisation_similarity(["A", "A", "A"], [1, 1, 2], vectors[[0, 2, 1]])
    assert same_user == {"mean_similarity": 0.0, "n_items": 1}


def test_one_text_for_everyone_is_less_personalised_than_texts_about_each_user() -> None:
    generic = ["A great movie you will like."] * 3
    personal = [
        "Since you rated Alien highly, its tense horror will grip you.",
        "Your love of romantic comedies makes this a warm pick.",
        "As a documentary fan you will value its true story.",
    ]
    items, users = ["X"] * 3, [1, 2, 3]

    same = personalisation_similarity(items, users, embed(generic))["mean_similarity"]
    varied = personalisation_similarity(items, users, embed(personal))["mean_similarity"]

    assert same == pytest.approx(1.0, abs=1e-5) and varied < 0.6
    assert embedding_similarity(embed(personal), embed(personal)) == pytest.approx(1.0, abs=1e-5)


# --- one generation run from the database ---------------------------------------------------


@pytest.mark.django_db
def test_run_metrics_read_a_fixed_number_of_queries_and_flag_unshown_titles(
    django_assert_max_num_queries: MaxQueries,
) -> None:
    run, reference_run = explained_runs(n_users=8, n_runs=2)
    GenerationRun.objects.filter(pk=run.pk).update(history_length=3)
    run.refresh_from_db()
    split = run.recommender_run.split
    assert split is not None
    rows = list(
        Explanation.objects.filter(generation_run=run).select_related(
            "recommendation__user", "recommendation__item__dataset"
        )
    )
    held_out = {row.user_id: row.item.title for row in Interaction.objects.in_test_of(split).select_related("item")}

    # Row 0 names the user's held-out test item (its history is rebuilt: no stored prompt).
    first = next(row for row in rows if held_out[row.recommendation.user_id] != row.recommendation.item.title)
    first.text += f" Like {held_out[first.recommendation.user_id]}."
    # Another row has its real prompt, which shows 3 titles; it names one shown and one older.
    second = next(row for row in rows if row != first)
    older = list(
        Interaction.objects.history_of(second.recommendation.user).in_train_of(split).order_by("-timestamp", "-id")
    )
    second.prompt = render(
        run.template.system_text,
        run.template.user_text,
        prompt_context(second.recommendation, split, Controls(history_length=3)),
    )
    second.text = f"Like {older[0].item.title}, and unlike {older[4].item.title}."
    # A third names its own item's genre.
    third = next(row for row in rows if row not in (first, second))
    genre = third.recommendation.item.attributes["genres"][0]
    third.text += f" A fine {genre.lower()} pick."
    Explanation.objects.bulk_update([first, second, third], ["text", "prompt"])

    with django_assert_max_num_queries(5):
        metrics = generation_run_text_metrics(run, reference_run=reference_run)

    json.dumps(metrics)
    assert metrics["n"] == 8 and metrics["history_source"] == {"prompt": 1, "recomputed": 7}
    assert metrics["grounding"]["hallucination_rate"] == pytest.approx(2 / 8)
    assert {(e["ref"], e["named"]) for e in metrics["grounding"]["examples"]} == {
        (first.pk, held_out[first.recommendation.user_id]),
        (second.pk, older[4].item.title),
    }
    assert metrics["grounding"]["history_mention_rate"] == 1.0  # every text names a shown title
    assert metrics["length"]["over_limit"] == 0.0 and sum(b["n"] for b in metrics["length"]["histogram"]) == 8
    genres = {
        g.lower() for attributes in Item.objects.values_list("attributes", flat=True) for g in attributes["genres"]
    }
    assert metrics["features"]["attributes"] == ["genres"] and metrics["features"]["vocabulary_size"] == len(genres)
    assert (metrics["features"]["fmr"], metrics["features"]["n_fmr"]) == (pytest.approx(1 / 8), 8)
    texts = [row.text for row in Explanation.objects.filter(generation_run=run).order_by("id")]
    assert metrics["usr"] == len(set(texts)) / 8
    items = [row.recommendation.item_id for row in rows]
    assert metrics["personalisation"]["n_items"] == sum(items.count(item) >= 2 for item in set(items))
    reference = metrics["reference"]
    references = dict(Explanation.objects.filter(generation_run=reference_run).values_list("recommendation_id", "text"))
    paired = [
        references[row.recommendation_id] for row in Explanation.objects.filter(generation_run=run).order_by("id")
    ]
    assert reference["n_pairs"] == 8
    assert reference["bleu"] == pytest.approx(sacrebleu.corpus_bleu(texts, [paired]).score)
    assert 0.5 < reference["rouge_l_f1"] < 1.0 and reference["embedding_similarity"] > 0.8
