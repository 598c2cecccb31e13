"""Recommender runs: fit a Surprise algorithm on a split, evaluate it, store top-K for everyone.

The stages, all in one worker task: get or compute the split; build a Surprise trainset
from its train side (raw ids are the DatasetUser and Item primary keys, so nothing is ever
joined by position); fit; pickle the model under XREC_MODEL_DIR; evaluate rating error on
the test side; rank the top K unseen items for every user in the trainset; compute top-K
and catalogue metrics; write the recommendations and the metrics in one transaction.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import surprise
from django.conf import settings
from django.db import transaction
from surprise import AlgoBase, Trainset

from recommendations import algorithms, metrics
from recommendations.models import Dataset, Recommendation, RecommenderRun
from recommendations.scoring import top_k
from recommendations.services.splits import Rows, SplitError, split_get_or_create, split_parts
from recommendations.shared.bulk import insert_rows
from recommendations.shared.queue import enqueue_on_commit

PROGRESS_EVERY_SECONDS = 0.5


class TrainingError(ValueError):
    """A run that cannot be trained as asked; the message says why (shown on its page)."""


def recommender_run_create(
    *,
    created_by: Any,
    dataset: Dataset,
    algorithm: str,
    hyperparameters: dict[str, Any] | None = None,
    split_options: dict[str, Any] | None = None,
    seed: int = 0,
    k: int = 10,
    relevance_threshold: float = 4.0,
) -> RecommenderRun:
    """Validate everything that can be checked up front and record a PENDING run.

    Raises HyperparameterError for a bad algorithm or hyperparameter and TrainingError for
    a dataset Surprise cannot learn from or a bad K; nothing is stored then.
    """
    cleaned = algorithms.validate(algorithm, hyperparameters or {})
    if dataset.is_implicit:
        raise TrainingError(f"{dataset.name} has no ratings; Surprise's algorithms learn from explicit ratings")
    if not 1 <= k <= 1000:
        raise TrainingError(f"K must be between 1 and 1000, got {k}")
    return RecommenderRun.objects.create(
        created_by=created_by,
        dataset=dataset,
        algorithm=algorithm,
        hyperparameters=cleaned,
        split_options=dict(split_options or {}),
        seed=seed,
        k=k,
        relevance_threshold=relevance_threshold,
    )


def recommender_run_start(**kwargs: Any) -> RecommenderRun:
    """``recommender_run_create`` and enqueue the run on the ``default`` queue after commit."""
    run = recommender_run_create(**kwargs)
    enqueue_on_commit("recommendations.recommender_run_execute", run.pk)
    return run


def recommender_run_retry(*, run: RecommenderRun) -> RecommenderRun:
    """Put a FAILED run back to PENDING and enqueue it; any other status is left alone."""
    with transaction.atomic():
        updated = RecommenderRun.objects.filter(pk=run.pk, status=RecommenderRun.Status.FAILED).update(
            status=RecommenderRun.Status.PENDING, error="", phase="", progress_done=0, progress_total=0
        )
        if updated:
            enqueue_on_commit("recommendations.recommender_run_execute", run.pk)
    run.refresh_from_db()
    return run


def recommender_run_execute(*, run_id: int) -> None:
    """Run a PENDING recommender run to the end. Idempotent: any other status is left alone.

    A failure of the inputs (split, hyperparameters, data) is recorded on the run as its
    error; an unexpected one is recorded and re-raised. Recommendations are written in the
    same transaction that marks the run SUCCEEDED, so a failed run has none.
    """
    run = RecommenderRun.claim_pending(run_id)
    if run is None:
        return
    RecommenderRun.objects.filter(pk=run.pk).update(attempts=run.attempts + 1)
    try:
        _execute(run, run.throttled_progress(PROGRESS_EVERY_SECONDS))
    except (SplitError, algorithms.HyperparameterError, TrainingError) as exc:
        run.mark_failed(str(exc))
    except Exception as exc:
        run.mark_failed(f"internal error: {exc!r}")
        raise


def build_trainset(train: Rows, *, rating_scale: tuple[float, float]) -> Trainset:
    """A Surprise trainset whose raw ids are DatasetUser and Item primary keys."""
    if np.isnan(train.ratings).any():
        raise TrainingError("some train interactions have no rating; Surprise needs a rating on every one")
    raw = list(
        zip(train.users.tolist(), train.items.tolist(), train.ratings.tolist(), [None] * len(train), strict=True)
    )
    reader = surprise.Reader(rating_scale=rating_scale)
    return surprise.Dataset(reader).construct_trainset(raw)


def _seed_everything(seed: int) -> None:
    # NormalPredictor and some initialisations draw from the global generators.
    random.seed(seed)
    np.random.seed(seed)  # Surprise itself uses the legacy global state


def _save_model(run: RecommenderRun, algo: AlgoBase) -> None:
    folder = Path(settings.XREC_MODEL_DIR) / "recommenders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{run.pk}.pkl"
    surprise.dump.dump(str(path), algo=algo)
    run.model_path = str(path)
    run.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()


def _rating_errors(algo: AlgoBase, test: Rows) -> dict[str, float]:
    pairs = (
        (rating, algo.predict(user, item, r_ui=rating).est)
        for user, item, rating in zip(test.users.tolist(), test.items.tolist(), test.ratings.tolist(), strict=True)
    )
    return metrics.rating_errors(pairs)


def _execute(run: RecommenderRun, report: Any) -> None:
    dataset = run.dataset
    report("computing the train/test split")
    split = split_get_or_create(dataset=dataset, **run.split_options)
    run.split = split
    run.save(update_fields=["split"])
    report("loading the train side")
    train, test = split_parts(split)
    if dataset.rating_min is None or dataset.rating_max is None:
        raise TrainingError(f"{dataset.name} has no rating scale; Surprise's algorithms need explicit ratings")
    trainset = build_trainset(train, rating_scale=(dataset.rating_min, dataset.rating_max))

    report(f"fitting {run.algorithm} on {trainset.n_ratings:,} ratings")
    _seed_everything(run.seed)
    algo = algorithms.build(run.algorithm, run.hyperparameters, seed=run.seed)
    started = time.perf_counter()
    algo.fit(trainset)
    run.fit_seconds = time.perf_counter() - started
    _save_model(run, algo)

    report(f"predicting {len(test):,} test ratings")
    started = time.perf_counter()
    rating = _rating_errors(algo, test)
    run.evaluate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    rows: list[tuple[int, int, int, int, float]] = []
    recommended: dict[int, list[int]] = {}
    n_users = trainset.n_users
    for done, (inner_user, inner_items, scores) in enumerate(top_k(algo, trainset, k=run.k), 1):
        user = int(trainset.to_raw_uid(inner_user))
        items = [int(trainset.to_raw_iid(int(i))) for i in inner_items]
        recommended[user] = items
        rows.extend(
            (run.pk, user, item, rank, float(score))
            for rank, (item, score) in enumerate(zip(items, scores.tolist(), strict=True), 1)
        )
        if done % 256 == 0 or done == n_users:
            report(f"ranking the top {run.k} for {n_users:,} users", done, n_users)
    run.topk_seconds = time.perf_counter() - started

    relevant: dict[int, set[int]] = {}
    keep = test.ratings >= run.relevance_threshold
    for user, item in zip(test.users[keep].tolist(), test.items[keep].tolist(), strict=True):
        relevant.setdefault(user, set()).add(item)
    catalogue = metrics.catalogue_metrics(recommended, n_items=dataset.n_items)
    # Per-item recommendation counts, never-recommended items as zeros (order is irrelevant).
    recommended_items = np.fromiter((row[2] for row in rows), dtype=np.int64, count=len(rows))
    item_counts = np.unique(recommended_items, return_counts=True)[1]
    per_item = np.zeros(max(dataset.n_items, len(item_counts)), dtype=np.int64)
    per_item[: len(item_counts)] = item_counts
    results = {
        "k": run.k,
        "relevance_threshold": run.relevance_threshold,
        "rating": rating,
        "topk": metrics.topk_metrics(recommended, relevant, k=run.k),
        "catalogue": catalogue,
        "histogram": metrics.recommendation_count_histogram(per_item),
        "n_train": split.n_train,
        "n_test": split.n_test,
        "n_users_recommended": len(recommended),
    }
    report("writing recommendations", len(rows), len(rows))
    with transaction.atomic():
        Recommendation.objects.filter(run=run).delete()  # a retried run starts clean
        insert_rows(Recommendation, ["run", "user", "item", "rank", "score"], rows)
        run.save(update_fields=["fit_seconds", "evaluate_seconds", "topk_seconds", "model_path", "model_sha256"])
        run.mark_succeeded(metrics=results)
