"""Implicit-feedback models: validation, fitting, and the shared top-K contract."""

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import CosineRecommender

from recommendations import algorithms, implicit_models
from recommendations.algorithms import HyperparameterError


def _planted(n_users: int = 60, n_items: int = 40, per_user: int = 8, seed: int = 0) -> sp.csr_matrix:
    """Two groups of users, each choosing only from its own half of the items."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    half = n_items // 2
    for user in range(n_users):
        offset = 0 if user % 2 == 0 else half
        for item in rng.choice(half, size=per_user, replace=False):
            rows.append(user)
            cols.append(offset + int(item))
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items))


def _ranked(model, user_items, seen=None, k=5):
    seen = user_items if seen is None else seen
    return list(implicit_models.top_k(model, user_items, seen, k=k))


@pytest.mark.parametrize("algorithm", ["BPR", "ALS", "ItemKNN", "Popularity"])
def test_every_user_gets_k_unseen_items_in_score_order(algorithm: str) -> None:
    user_items = _planted()
    model = implicit_models.fit(algorithm, {}, user_items, seed=0)

    ranked = _ranked(model, user_items)

    assert [user for user, _, _ in ranked] == list(range(60))
    for user, items, scores in ranked:
        assert items.size == 5 and not set(items.tolist()) & set(user_items[user].indices.tolist())
        assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("algorithm", ["BPR", "ALS", "ItemKNN"])
def test_personal_models_learn_the_planted_groups(algorithm: str) -> None:
    user_items = _planted()
    params = {"BPR": {"factors": 8, "iterations": 200}, "ALS": {"factors": 8}, "ItemKNN": {}}[algorithm]
    model = implicit_models.fit(algorithm, params, user_items, seed=0)

    in_group = [np.mean((items < 20) == (user % 2 == 0)) for user, items, _ in _ranked(model, user_items)]

    # Chance is 0.5: half the unseen items belong to the user's group.
    assert np.mean(in_group) > 0.9


@pytest.mark.parametrize("algorithm", ["BPR", "ALS"])
def test_the_same_seed_gives_the_same_model_and_another_seed_does_not(algorithm: str) -> None:
    user_items = _planted()

    first = implicit_models.fit(algorithm, {"factors": 8}, user_items, seed=3)
    again = implicit_models.fit(algorithm, {"factors": 8}, user_items, seed=3)
    other = implicit_models.fit(algorithm, {"factors": 8}, user_items, seed=4)

    assert first.user_factors is not None and first.item_factors is not None and other.item_factors is not None
    np.testing.assert_array_equal(first.user_factors, again.user_factors)
    np.testing.assert_array_equal(first.item_factors, again.item_factors)
    assert not np.array_equal(first.item_factors, other.item_factors)


def test_bpr_scores_are_the_librarys_own() -> None:
    user_items = _planted()
    model = implicit_models.fit("BPR", {"factors": 8}, user_items, seed=1)
    library = BayesianPersonalizedRanking(factors=8, num_threads=1, random_state=1)
    library.fit(user_items, show_progress=False)

    ids, scores = library.recommend(np.arange(60), user_items, N=5, filter_already_liked_items=True)

    for user, items, ours in _ranked(model, user_items):
        np.testing.assert_array_equal(items, ids[user])
        np.testing.assert_allclose(ours, scores[user], rtol=1e-5)


@pytest.mark.filterwarnings("ignore::implicit.utils.ParameterWarning")  # the library's own COO hand-off
def test_item_knn_scores_are_the_librarys_own() -> None:
    user_items = _planted()
    model = implicit_models.fit("ItemKNN", {"K": 10}, user_items, seed=0)
    library = CosineRecommender(K=10)
    library.fit(user_items, show_progress=False)

    ids, scores = library.recommend(np.arange(60), user_items, N=40, filter_already_liked_items=True)

    for user, items, ours in _ranked(model, user_items, k=40):
        positive = scores[user] > 0  # the library pads with items of no similarity, in its own order
        expected = dict(zip(ids[user][positive].tolist(), scores[user][positive].tolist(), strict=True))
        got = dict(zip(items.tolist(), ours.tolist(), strict=True))
        assert expected == pytest.approx({item: got[item] for item in expected})
        assert all(got[item] == 0 for item in set(got) - set(expected))


def test_popularity_counts_users_and_breaks_ties_by_lower_index() -> None:
    user_items = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 3, 0, 0, 0]], dtype=np.float32))
    model = implicit_models.fit("Popularity", {}, user_items, seed=0)

    ranked = _ranked(model, user_items, k=5)

    np.testing.assert_array_equal(model.popularity, [2, 2, 1, 0, 0])  # users, not repeat counts
    assert [items.tolist() for _, items, _ in ranked] == [[2, 3, 4], [1, 3, 4], [0, 2, 3, 4]]


def test_a_user_without_positives_is_ranked_by_popularity_and_seen_items_stay_out() -> None:
    seen = _planted()
    keep = sp.diags((np.arange(60) != 5).astype(np.float32))
    user_items = sp.csr_matrix(keep @ seen)  # user 5's events all fell below the positive threshold
    user_items.eliminate_zeros()
    model = implicit_models.fit("BPR", {"factors": 8}, user_items, seed=0)
    popular = implicit_models.fit("Popularity", {}, user_items, seed=0)

    ranked = dict((user, items) for user, items, _ in _ranked(model, user_items, seen))
    expected = dict((user, items) for user, items, _ in _ranked(popular, user_items, seen))

    assert implicit_models.popularity_fallback(user_items).nonzero()[0].tolist() == [5]
    np.testing.assert_array_equal(ranked[5], expected[5])
    assert not set(ranked[5].tolist()) & set(seen[5].indices.tolist())


def test_hyperparameters_are_checked_by_name_type_and_range() -> None:
    assert algorithms.defaults("BPR") == {
        "factors": 100,
        "learning_rate": 0.01,
        "regularization": 0.01,
        "iterations": 100,
    }
    assert algorithms.validate("ItemKNN", {"K": 5.0, "similarity": "bm25"}) == {"K": 5, "similarity": "bm25"}
    assert algorithms.is_implicit("ALS") and not algorithms.is_implicit("SVD")

    cases: list[tuple[str, dict[str, Any], str]] = [
        ("BPR", {"factors": 0}, "factors must be at least 1"),
        ("BPR", {"num_threads": 4}, "BPR has no parameter num_threads"),
        ("ALS", {"alpha": "high"}, "alpha must be a number"),
        ("ItemKNN", {"similarity": "jaccard"}, "similarity must be one of cosine, bm25, tfidf"),
        ("Popularity", {"K": 3}, "it accepts: none"),
    ]
    for algorithm, params, message in cases:
        with pytest.raises(HyperparameterError, match=message):
            algorithms.validate(algorithm, params)
