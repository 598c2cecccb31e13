"""Folding a new user into a trained model: recommendations follow the ratings they gave."""

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommendations.foldin import factor_fold_in, neighbour_scores
from recommendations.models import Interaction, Item, RecommenderRun
from recommendations.services.foldin import FoldInError, fold_in_top_k
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.recommendations.factories import rated_dataset


def _two_tastes() -> tuple[np.ndarray, np.ndarray]:
    """Item factors of two genres (items 0-9 one, 10-19 the other) and zero biases."""
    factors = np.zeros((20, 2))
    factors[:10, 0] = 1.0
    factors[10:, 1] = 1.0
    return factors, np.zeros(20)


def test_a_folded_in_user_gets_the_genre_they_rated_high() -> None:
    factors, biases = _two_tastes()

    likes_first = factor_fold_in(
        factors, biases, 3.0, np.array([0, 1, 10, 11]), np.array([5.0, 5.0, 1.0, 1.0]), reg=0.02
    )
    likes_second = factor_fold_in(
        factors, biases, 3.0, np.array([0, 1, 10, 11]), np.array([1.0, 1.0, 5.0, 5.0]), reg=0.02
    )

    assert likes_first[2:10].min() > likes_first[12:].max()
    assert likes_second[12:].min() > likes_second[2:10].max()


def test_the_fold_in_is_the_ridge_solution_and_shrinks_with_regularisation() -> None:
    factors, biases = _two_tastes()
    rated, ratings = np.array([0, 10]), np.array([5.0, 1.0])

    loose = factor_fold_in(factors, biases, 3.0, rated, ratings, reg=0.0001)
    tight = factor_fold_in(factors, biases, 3.0, rated, ratings, reg=10.0)

    assert abs(loose[0] - 5.0) < 0.05 and abs(loose[10] - 1.0) < 0.05  # reproduces the ratings
    assert abs(tight[0] - 3.0) < abs(loose[0] - 3.0)  # pulled towards the global mean


def test_without_biases_the_score_is_the_dot_product_alone() -> None:
    factors, _ = _two_tastes()

    scores = factor_fold_in(factors, None, 0.0, np.array([3, 4]), np.array([1.0, 1.0]), reg=0.01)

    assert scores[5] > 0.9 and abs(scores[15]) < 1e-9


def test_nearest_neighbours_recommend_what_similar_users_liked() -> None:
    # Users 0-4 love items 0-4 and dislike 5-9; users 5-9 the other way round; item 10 is loved
    # by the first group only.
    rows = []
    for user in range(10):
        first = user < 5
        rows.append([5.0 if (item < 5) == first else 1.0 for item in range(10)] + [5.0 if first else 0.0])
    train = sp.csr_matrix(np.array(rows))
    me = np.array([5.0, 5.0, 0, 0, 0, 1.0, 1.0, 0, 0, 0, 0])

    scores = neighbour_scores(train, me, k=5)

    assert scores[2] > 0 > scores[7]
    assert scores[10] > scores[8]
    assert not neighbour_scores(train, np.zeros(11)).any()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("algorithm", "params", "method"),
    [
        ("SVD", {"n_factors": 4}, "factors"),
        ("KNNBasic", {}, "neighbours"),
        ("ALS", {"factors": 4}, "factors"),
        ("ItemKNN", {}, "item similarity"),
    ],
)
def test_a_trained_run_folds_in_a_new_user_and_their_ratings_change_the_picks(algorithm, params, method) -> None:
    dataset = rated_dataset(n_users=15, n_items=24, per_user=10)
    # Rated data trained as implicit: only ratings of 4 or more are positives, as for the new user.
    threshold = 4.0 if algorithm in ("ALS", "ItemKNN") else None
    run = recommender_run_create(
        created_by=None, dataset=dataset, algorithm=algorithm, k=5, hyperparameters=params, positive_threshold=threshold
    )
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    items = list(Item.objects.filter(dataset=dataset).order_by("pk").values_list("pk", flat=True))
    first, second = items[:12], items[12:]
    likes_first = {item: 5.0 for item in first[:6]} | {item: 1.0 for item in second[:6]}
    likes_second = {item: 1.0 for item in first[:6]} | {item: 5.0 for item in second[:6]}

    one = fold_in_top_k(run=run, ratings=likes_first | {999_999: 5.0}, k=5)
    other = fold_in_top_k(run=run, ratings=likes_second, k=5)

    assert one.method == method and one.ignored == [999_999]
    assert len(one.items) == 5 and not {item for item, _ in one.items} & set(likes_first)
    assert [item for item, _ in one.items] != [item for item, _ in other.items]
    assert all(a[1] >= b[1] for a, b in zip(one.items, one.items[1:], strict=False))
    assert not Interaction.objects.filter(item__dataset=dataset, user__external_id__startswith="new").exists()


@pytest.mark.django_db
def test_folding_in_needs_a_trained_model_and_a_known_item() -> None:
    dataset = rated_dataset(n_users=8, n_items=12, per_user=6)
    run = recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD", k=3, hyperparameters={})

    with pytest.raises(FoldInError, match="no trained model"):
        fold_in_top_k(run=run, ratings={1: 5.0}, k=3)
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    with pytest.raises(FoldInError, match="knows none"):
        fold_in_top_k(run=run, ratings={999_999: 5.0}, k=3)
