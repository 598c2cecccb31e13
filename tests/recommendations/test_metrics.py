"""Metrics against values worked out by hand (and, for RMSE/MAE, against Surprise itself)."""

from math import log2

import numpy as np
import pytest

from recommendations.metrics import (
    catalogue_metrics,
    gini_index,
    rating_errors,
    recommendation_count_histogram,
    topk_metrics,
)

# 1 / log2(rank + 1): the NDCG discount at ranks 1, 2, 3.
D1, D2, D3 = 1.0, 1 / log2(3), 1 / log2(4)  # 1, 0.6309, 0.5


# --- rating_errors ----------------------------------------------------------------------------


def test_rating_errors_by_hand() -> None:
    # errors 0.5, -1, 0 -> squared 0.25, 1, 0: mse 1.25 / 3, rmse 0.6455; mae 1.5 / 3 = 0.5
    errors = rating_errors([(4.0, 3.5), (2.0, 3.0), (5.0, 5.0)])

    assert errors == {"rmse": pytest.approx((1.25 / 3) ** 0.5), "mae": pytest.approx(0.5), "n": 3}


def test_rating_errors_equal_surprise_accuracy_on_the_same_predictions() -> None:
    import surprise
    from surprise import accuracy

    rng = np.random.default_rng(7)
    truths = rng.integers(1, 6, size=200).astype(float)
    estimates = np.clip(truths + rng.normal(0, 0.9, size=200), 1, 5)
    predictions = [
        surprise.Prediction(str(n % 17), str(n), float(r), float(est), {})
        for n, (r, est) in enumerate(zip(truths, estimates, strict=True))
    ]

    ours = rating_errors((p.r_ui, p.est) for p in predictions)

    assert ours["rmse"] == pytest.approx(accuracy.rmse(predictions, verbose=False), rel=1e-12)
    assert ours["mae"] == pytest.approx(accuracy.mae(predictions, verbose=False), rel=1e-12)
    assert ours["n"] == 200


def test_rating_errors_refuse_an_empty_input() -> None:
    with pytest.raises(ValueError, match="no"):
        rating_errors([])


# --- topk_metrics -----------------------------------------------------------------------------


def test_two_users_by_hand() -> None:
    # k = 3.
    # ann: top-3 [m1, m2, m3], relevant {m2, m4, m5}: one hit, at rank 2.
    #   precision 1/3, recall 1/3, DCG = D2, IDCG over min(3, 3) = 3 ranks = D1 + D2 + D3
    #   -> ndcg 0.6309 / 2.1309 = 0.2961; hit 1; mrr 1/2.
    # bob: top-3 [m7, m8, m9], relevant {m7, m9}: hits at ranks 1 and 3.
    #   precision 2/3, recall 2/2 = 1, DCG = D1 + D3 = 1.5, IDCG over min(2, 3) = 2 ranks
    #   = D1 + D2 = 1.6309 -> ndcg 0.9197; hit 1; mrr 1.
    # Means: precision 0.5, recall 2/3, ndcg 0.6079, hit_rate 1, mrr 0.75.
    recommended = {"ann": ["m1", "m2", "m3", "m4"], "bob": ["m7", "m8", "m9"]}
    relevant = {"ann": {"m2", "m4", "m5"}, "bob": {"m7", "m9"}}

    metrics = topk_metrics(recommended, relevant, k=3)

    ann_ndcg = D2 / (D1 + D2 + D3)
    bob_ndcg = (D1 + D3) / (D1 + D2)
    assert metrics == {
        "precision": pytest.approx(0.5),
        "recall": pytest.approx(2 / 3),
        "ndcg": pytest.approx((ann_ndcg + bob_ndcg) / 2),
        "hit_rate": 1.0,
        "mrr": pytest.approx(0.75),
        "n_users": 2,
    }
    assert metrics["ndcg"] == pytest.approx(0.6079, abs=1e-4)


def test_ndcg_ideal_is_capped_at_k_when_more_items_are_relevant_than_k() -> None:
    # |relevant| = 5 > k = 3. All of the top 3 are hits: DCG = IDCG over 3 ranks, ndcg exactly 1
    # (an IDCG over 5 ranks would make a perfect list score below 1). recall 3/5.
    perfect = topk_metrics({"u": [1, 2, 3]}, {"u": {1, 2, 3, 4, 5}}, k=3)
    # Top 3 [9, 1, 2]: DCG = D2 + D3 = 1.1309, IDCG = D1 + D2 + D3 = 2.1309 -> 0.5307.
    shifted = topk_metrics({"u": [9, 1, 2]}, {"u": {1, 2, 3, 4, 5}}, k=3)

    assert perfect["ndcg"] == pytest.approx(1.0)
    assert perfect["recall"] == pytest.approx(3 / 5)
    assert shifted["ndcg"] == pytest.approx((D2 + D3) / (D1 + D2 + D3))
    assert shifted["ndcg"] == pytest.approx(0.5307, abs=1e-4)


def test_ndcg_and_precision_when_fewer_items_are_relevant_than_k() -> None:
    # |relevant| = 1 < k = 5, hit at rank 2: DCG = D2, IDCG = D1 = 1 -> 0.6309.
    # The list holds only 2 items, but precision divides by k: 1/5, not 1/2.
    metrics = topk_metrics({"u": [9, 1]}, {"u": {1}}, k=5)

    assert metrics["ndcg"] == pytest.approx(D2)
    assert metrics["precision"] == pytest.approx(1 / 5)
    assert metrics["recall"] == 1.0


def test_mrr_is_the_reciprocal_rank_of_the_first_hit() -> None:
    # First relevant item at rank 3 (a second one at rank 4 does not matter): 1/3.
    metrics = topk_metrics({"u": [7, 8, 1, 2]}, {"u": {1, 2}}, k=4)

    assert metrics["mrr"] == pytest.approx(1 / 3)
    assert metrics["hit_rate"] == 1.0


def test_a_user_with_relevant_items_but_no_recommendations_counts_with_zeros() -> None:
    # "carl" has an empty list and "dora" none at all: both average in with zeros.
    # Only "ann" scores: precision 1/2, recall 1, ndcg 1, hit 1, mrr 1; means over 3 users.
    metrics = topk_metrics({"ann": [1, 2], "carl": []}, {"ann": {1}, "carl": {1}, "dora": {3}}, k=2)

    assert metrics == {
        "precision": pytest.approx(1 / 6),
        "recall": pytest.approx(1 / 3),
        "ndcg": pytest.approx(1 / 3),
        "hit_rate": pytest.approx(1 / 3),
        "mrr": pytest.approx(1 / 3),
        "n_users": 3,
    }


def test_users_without_relevant_items_are_left_out() -> None:
    # "bob" has no relevant item and "carl" is not in relevant at all: only "ann" is averaged,
    # though bob's and carl's lists would score zero if they counted.
    metrics = topk_metrics({"ann": [1], "bob": [1], "carl": [2]}, {"ann": [1], "bob": []}, k=1)

    assert metrics["n_users"] == 1
    assert metrics["precision"] == 1.0
    assert metrics["hit_rate"] == 1.0


def test_only_the_first_k_recommendations_count() -> None:
    # The only relevant item sits at rank 3.
    cut = topk_metrics({"u": [5, 6, 1]}, {"u": {1}}, k=2)
    uncut = topk_metrics({"u": [5, 6, 1]}, {"u": {1}}, k=3)

    assert cut == {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "hit_rate": 0.0, "mrr": 0.0, "n_users": 1}
    assert uncut["hit_rate"] == 1.0
    assert uncut["mrr"] == pytest.approx(1 / 3)


def test_a_relevant_item_listed_twice_is_one_hit() -> None:
    metrics = topk_metrics({"u": [1, 1, 2]}, {"u": {1, 3}}, k=3)

    assert metrics["precision"] == pytest.approx(1 / 3)
    assert metrics["recall"] == pytest.approx(1 / 2)
    assert metrics["ndcg"] == pytest.approx(D1 / (D1 + D2))


def test_no_user_with_relevant_items_gives_zeros() -> None:
    metrics = topk_metrics({"u": [1]}, {"u": set()}, k=5)

    assert metrics == {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "hit_rate": 0.0, "mrr": 0.0, "n_users": 0}


def test_k_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        topk_metrics({"u": [1]}, {"u": {1}}, k=0)


# --- gini_index and catalogue_metrics ---------------------------------------------------------


def test_gini_is_zero_for_equal_counts() -> None:
    assert gini_index([3, 3, 3, 3]) == 0.0
    assert gini_index([0, 0, 0]) == 0.0
    assert gini_index([]) == 0.0


def test_gini_of_known_concentrated_cases() -> None:
    # G = (n + 1 - 2 * sum((n + 1 - i) * x_i) / sum(x)) / n on ascending x, i from 1.
    # [0, 0, 0, 10]: n = 4, only x_4 = 10 weighs, with n + 1 - 4 = 1: sum = 10, / 10 = 1;
    #   G = (5 - 2) / 4 = 0.75 = (n - 1) / n, the maximum for 4 items.
    # [1, 2, 3]: sum = 3*1 + 2*2 + 1*3 = 10, / 6; G = (4 - 20/6) / 3 = 2/9. Cross-check with the
    #   mean absolute difference: ordered-pair |differences| sum to 2 * (1 + 2 + 1) = 8, and
    #   8 / (2 * n^2 * mean) = 8 / (2 * 9 * 2) = 2/9.
    assert gini_index([0, 0, 0, 10]) == pytest.approx(0.75)
    assert gini_index(np.array([10, 0, 0, 0])) == pytest.approx(0.75)  # order does not matter
    assert gini_index([3, 1, 2]) == pytest.approx(2 / 9)


def test_gini_refuses_fractional_or_negative_counts() -> None:
    with pytest.raises(TypeError):
        gini_index(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="negative"):
        gini_index([1, -1])


def test_catalogue_metrics_by_hand() -> None:
    # 10 items; counts per item (once per user): 1 -> 1, 2 -> 3, 3 -> 1, seven items 0.
    # coverage 3/10. Gini on ascending [0]*7 + [1, 1, 3]: n = 10, sum(x) = 5,
    #   sum((11 - i) * x_i) = 3*1 + 2*1 + 1*3 = 8 -> G = (11 - 16/5) / 10 = 0.78.
    #   (Mean absolute difference: ordered pairs sum to 2 * (7*2*1 + 7*1*3 + 2*1*2) = 78,
    #   / (2 * 100 * 0.5) = 0.78.)
    # Item 2 is in all 3 non-empty lists: share 1.0; "dan"'s empty list is not a user here.
    recommended = {"ann": [1, 2], "bob": [2, 3], "carl": [2], "dan": []}

    metrics = catalogue_metrics(recommended, n_items=10)

    assert metrics == {
        "coverage": pytest.approx(0.3),
        "gini": pytest.approx(0.78),
        "top_item": 2,
        "top_item_user_share": 1.0,
        "n_users": 3,
    }


def test_top_item_share_is_the_share_of_users_it_was_recommended_to() -> None:
    # Item 7 reaches 3 of 4 users; the repeat in ann's list does not count twice.
    recommended = {"ann": [7, 7, 1], "bob": [7, 2], "carl": [7], "dora": [3]}

    metrics = catalogue_metrics(recommended, n_items=5)

    assert metrics["top_item"] == 7
    assert metrics["top_item_user_share"] == pytest.approx(3 / 4)
    assert metrics["coverage"] == pytest.approx(4 / 5)


def test_top_item_ties_go_to_the_smaller_id_whatever_the_order() -> None:
    assert catalogue_metrics({"u": [5, 3], "v": [3, 5]}, n_items=5)["top_item"] == 3
    assert catalogue_metrics({"u": [5], "v": [3]}, n_items=5)["top_item"] == 3
    assert catalogue_metrics({"v": ["b", "a"]}, n_items=2)["top_item"] == "a"


def test_catalogue_metrics_when_nothing_is_recommended() -> None:
    metrics = catalogue_metrics({"u": []}, n_items=4)

    assert metrics == {"coverage": 0.0, "gini": 0.0, "top_item": None, "top_item_user_share": 0.0, "n_users": 0}


def test_catalogue_metrics_refuse_more_distinct_items_than_the_catalogue() -> None:
    with pytest.raises(ValueError, match="catalogue of 2"):
        catalogue_metrics({"u": [1, 2, 3]}, n_items=2)


# --- recommendation_count_histogram -----------------------------------------------------------


def test_histogram_bins_and_labels() -> None:
    counts = [0, 0, 1, 2, 4, 5, 9, 10, 19, 20, 99, 100, 999, 1000, 25000]

    bins = recommendation_count_histogram(counts)

    assert [(b["label"], b["low"], b["high"], b["items"]) for b in bins] == [
        ("0", 0, 0, 2),
        ("1", 1, 1, 1),
        ("2\N{EN DASH}4", 2, 4, 2),
        ("5\N{EN DASH}9", 5, 9, 2),
        ("10\N{EN DASH}19", 10, 19, 2),
        ("20\N{EN DASH}49", 20, 49, 1),
        ("50\N{EN DASH}99", 50, 99, 1),
        ("100\N{EN DASH}199", 100, 199, 1),
        ("200\N{EN DASH}499", 200, 499, 0),  # empty, but inside the range: kept
        ("500\N{EN DASH}999", 500, 999, 1),
        ("1000+", 1000, None, 2),
    ]
    assert sum(b["items"] for b in bins) == len(counts)


def test_histogram_drops_empty_trailing_bins() -> None:
    bins = recommendation_count_histogram(np.array([0, 0, 3]))

    assert bins == [
        {"label": "0", "low": 0, "high": 0, "items": 2},
        {"label": "1", "low": 1, "high": 1, "items": 0},
        {"label": "2\N{EN DASH}4", "low": 2, "high": 4, "items": 1},
    ]


def test_histogram_of_no_items_is_empty() -> None:
    assert recommendation_count_histogram([]) == []


def test_histogram_with_custom_lows() -> None:
    bins = recommendation_count_histogram([0, 3, 12], lows=(0, 10))

    assert [(b["label"], b["items"]) for b in bins] == [("0\N{EN DASH}9", 2), ("10+", 1)]


def test_histogram_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="negative"):
        recommendation_count_histogram([1, -2])
    with pytest.raises(ValueError, match="lows"):
        recommendation_count_histogram([1], lows=(1, 5))
    with pytest.raises(ValueError, match="lows"):
        recommendation_count_histogram([1], lows=(0, 5, 5))
