"""Recommender runs of implicit-feedback models: on datasets without ratings and on rated data."""

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommendations.algorithms import IMPLICIT_ALGORITHMS
from recommendations.models import Recommendation, RecommenderRun
from recommendations.services.splits import split_parts
from recommendations.services.training import TrainingError, recommender_run_create, recommender_run_execute
from tests.recommendations.factories import rated_dataset

pytestmark = pytest.mark.django_db


def _run(dataset: Any, **kwargs: Any) -> RecommenderRun:
    run = recommender_run_create(created_by=None, dataset=dataset, **({"algorithm": "BPR"} | kwargs))
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _recs(run: RecommenderRun) -> list[tuple[int, int, int, float]]:
    return list(Recommendation.objects.filter(run=run).values_list("user_id", "rank", "item_id", "score"))


@pytest.mark.parametrize("algorithm", IMPLICIT_ALGORITHMS)
def test_every_implicit_model_trains_on_a_dataset_without_ratings(algorithm: str) -> None:
    dataset = rated_dataset(n_users=20, n_items=15, per_user=6, ratings=False)

    run = _run(dataset, algorithm=algorithm, k=4)

    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    assert Recommendation.objects.filter(run=run).count() == 20 * 4
    assert run.metrics["rating"] is None and run.metrics["feedback"]["kind"] == "implicit"
    # Every test event is relevant on unrated data: leave-last-out puts one per user in test.
    assert run.metrics["topk"]["n_users"] == 20


def test_bpr_ranks_unseen_items_by_the_stored_model() -> None:
    dataset = rated_dataset(ratings=False)
    run = _run(dataset, k=5, hyperparameters={"factors": 8})
    assert run.split is not None
    train, _ = split_parts(run.split)
    saved = pickle.loads(Path(run.model_path).read_bytes())  # noqa: S301 - the file this test's run wrote
    users, items, model = saved["users"].tolist(), saved["items"].tolist(), saved["model"]

    for user in sorted(set(train.users.tolist()))[:10]:
        recs = list(Recommendation.objects.filter(run=run, user_id=user).order_by("rank"))
        assert not set(train.items[train.users == user].tolist()) & {r.item_id for r in recs}
        expected = model.user_factors[users.index(user)] @ model.item_factors[[items.index(r.item_id) for r in recs]].T
        np.testing.assert_allclose([r.score for r in recs], expected)


def test_seeded_implicit_runs_are_reproducible() -> None:
    dataset = rated_dataset(ratings=False)

    first, second = _run(dataset, seed=2), _run(dataset, seed=2)

    assert _recs(first) == _recs(second)


def test_rated_data_trains_as_implicit_from_ratings_at_or_above_the_threshold() -> None:
    dataset = rated_dataset()
    train_all = _run(dataset, algorithm="Popularity")
    train_high = _run(dataset, algorithm="Popularity", positive_threshold=4.0)
    assert train_all.split is not None
    train, _ = split_parts(train_all.split)

    assert train_all.metrics["feedback"]["n_positive_pairs"] == len(set(zip(train.users, train.items, strict=True)))
    high = train.ratings >= 4.0
    assert train_high.metrics["feedback"]["n_positive_pairs"] == len(
        set(zip(train.users[high], train.items[high], strict=True))
    )
    assert train_high.metrics["feedback"]["positive_threshold"] == 4.0
    # Low-rated train items were seen: they are never recommended, positive or not.
    for user, item in zip(train.users.tolist(), train.items.tolist(), strict=True):
        assert not Recommendation.objects.filter(run=train_high, user_id=user, item_id=item).exists()


@pytest.mark.parametrize(
    ("kwargs", "ratings", "message"),
    [
        ({"algorithm": "SVD"}, False, "has no ratings; Surprise's algorithms learn from explicit ratings"),
        ({"algorithm": "SVD", "positive_threshold": 4.0}, True, "applies to implicit models only"),
        ({"positive_threshold": 4.0}, False, "has no ratings to hold against a positive threshold"),
    ],
)
def test_combinations_that_mean_nothing_are_refused_up_front(kwargs: Any, ratings: bool, message: str) -> None:
    dataset = rated_dataset(ratings=ratings)

    with pytest.raises(TrainingError, match=message):
        recommender_run_create(created_by=None, dataset=dataset, **({"algorithm": "BPR"} | kwargs))
    assert not RecommenderRun.objects.exists()


def test_a_threshold_above_every_rating_fails_the_run_with_its_reason() -> None:
    run = _run(rated_dataset(), positive_threshold=6.0)

    assert run.status == RecommenderRun.Status.FAILED
    assert run.error == "no train interaction is a positive (rating at or above 6.0)"
    assert not Recommendation.objects.filter(run=run).exists()
