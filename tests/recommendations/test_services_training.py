"""Recommender runs: fit, evaluate, rank for everyone, record failures, retry."""

import hashlib
from pathlib import Path
from typing import Any

import pytest
import surprise

from recommendations.algorithms import ALGORITHMS, HyperparameterError
from recommendations.models import Interaction, Recommendation, RecommenderRun
from recommendations.services.splits import split_parts
from recommendations.services.training import (
    TrainingError,
    build_trainset,
    recommender_run_create,
    recommender_run_execute,
    recommender_run_retry,
    recommender_run_start,
)
from tests.recommendations.factories import DatasetFactory, rated_dataset

pytestmark = pytest.mark.django_db


def _run(dataset, **kwargs):
    run = recommender_run_create(created_by=None, dataset=dataset, **({"algorithm": "SVD"} | kwargs))
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_svd_run_stores_model_metrics_and_top_k_for_every_user() -> None:
    dataset = rated_dataset(n_users=30, n_items=25, per_user=8)

    run = _run(dataset, k=5, hyperparameters={"n_factors": 10})

    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    assert run.split is not None and run.split.n_test == 30
    assert Recommendation.objects.filter(run=run).count() == 30 * 5
    path = Path(run.model_path)
    assert path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == run.model_sha256
    assert run.metrics["rating"]["n"] == 30
    assert set(run.metrics["topk"]) >= {"precision", "recall", "ndcg", "hit_rate", "mrr"}
    assert set(run.metrics["catalogue"]) >= {"coverage", "gini", "top_item", "top_item_user_share"}
    assert sum(row["items"] for row in run.metrics["histogram"]) == 25
    assert run.fit_seconds is not None and run.topk_seconds is not None


def test_recommendations_exclude_train_items_and_match_surprise_predict() -> None:
    dataset = rated_dataset()
    run = _run(dataset, k=10)
    train, _ = split_parts(run.split)
    algo = surprise.dump.load(run.model_path)[1]

    for user in {int(u) for u in train.users[:40]}:
        recs = list(Recommendation.objects.filter(run=run, user_id=user).order_by("rank"))
        seen = set(train.items[train.users == user].tolist())
        assert [r.rank for r in recs] == list(range(1, 11))
        assert not seen & {r.item_id for r in recs}
        scores = [r.score for r in recs]
        assert scores == sorted(scores, reverse=True)
        for rec in recs:
            assert rec.score == pytest.approx(algo.predict(user, rec.item_id).est, abs=1e-9)


def test_rating_errors_are_computed_on_the_test_side_only() -> None:
    dataset = rated_dataset()
    run = _run(dataset)
    train, test = split_parts(run.split)
    trainset = build_trainset(train, rating_scale=(1.0, 5.0))
    algo = surprise.dump.load(run.model_path)[1]

    predictions = [algo.predict(u, i, r_ui=r) for u, i, r in zip(test.users, test.items, test.ratings, strict=True)]

    assert trainset.n_ratings == run.split.n_train
    assert run.metrics["rating"]["rmse"] == pytest.approx(surprise.accuracy.rmse(predictions, verbose=False))


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_trains_and_ranks(algorithm: str) -> None:
    dataset = rated_dataset(n_users=15, n_items=12, per_user=6)

    run = _run(dataset, algorithm=algorithm, k=3)

    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    assert Recommendation.objects.filter(run=run).count() == 15 * 3


def test_bad_hyperparameters_store_no_run() -> None:
    dataset = rated_dataset()

    with pytest.raises(HyperparameterError, match="n_factors must be at least 1"):
        recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD", hyperparameters={"n_factors": 0})

    assert not RecommenderRun.objects.exists()


def test_implicit_dataset_is_refused_up_front() -> None:
    dataset: Any = DatasetFactory(is_implicit=True)

    with pytest.raises(TrainingError, match="has no ratings"):
        recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD")


def test_impossible_split_fails_the_run_with_its_reason() -> None:
    dataset = rated_dataset(per_user=4)

    run = _run(dataset, split_options={"min_interactions": 10})

    assert run.status == RecommenderRun.Status.FAILED
    assert run.error == "this split would put 0 of 120 interactions in test; adjust its parameters"
    assert not Recommendation.objects.filter(run=run).exists()


def test_failed_run_can_be_retried_to_success(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks
) -> None:
    dataset = rated_dataset()
    run = recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD")
    monkeypatch.setattr("recommendations.services.training._save_model", _raise_disk_full)

    with pytest.raises(OSError, match="disk full"):
        recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RecommenderRun.Status.FAILED and "disk full" in run.error
    assert not Recommendation.objects.filter(run=run).exists()

    monkeypatch.undo()
    with django_capture_on_commit_callbacks() as callbacks:
        recommender_run_retry(run=run)
    assert RecommenderRun.objects.get(pk=run.pk).status == RecommenderRun.Status.PENDING
    recommender_run_execute(run_id=run.pk)  # what the enqueued task does

    run.refresh_from_db()
    assert len(callbacks) == 1
    assert run.status == RecommenderRun.Status.SUCCEEDED and run.error == "" and run.attempts == 2
    assert Recommendation.objects.filter(run=run).count() == 30 * 10


def _raise_disk_full(run, algo) -> None:
    raise OSError("disk full")


def test_retry_leaves_a_run_that_did_not_fail_alone(django_capture_on_commit_callbacks) -> None:
    run = _run(rated_dataset())

    with django_capture_on_commit_callbacks() as callbacks:
        recommender_run_retry(run=run)

    assert callbacks == [] and run.status == RecommenderRun.Status.SUCCEEDED


def test_second_execution_of_a_finished_run_changes_nothing() -> None:
    run = _run(rated_dataset())
    before = list(Recommendation.objects.filter(run=run).values_list("id", "score"))

    recommender_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.attempts == 1 and list(Recommendation.objects.filter(run=run).values_list("id", "score")) == before


def test_start_enqueues_after_commit(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        run = recommender_run_start(created_by=None, dataset=rated_dataset(), algorithm="SlopeOne")

    assert run.status == RecommenderRun.Status.PENDING and len(callbacks) == 1


def test_seeded_runs_are_reproducible() -> None:
    dataset = rated_dataset()

    first = _run(dataset, seed=5)
    second = _run(dataset, seed=5)

    def recs(run):
        return list(Recommendation.objects.filter(run=run).values_list("user_id", "rank", "item_id", "score"))

    assert recs(first) == recs(second) and first.split_id == second.split_id
    assert Interaction.objects.filter(dataset=dataset).count() == 240
