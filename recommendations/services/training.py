"""Recommender runs: fit a model on a split, evaluate it, store top-K for everyone.

The stages, all in one worker task: get or compute the split; fit on its train side, either a
Surprise algorithm on the ratings (a trainset whose raw ids are the DatasetUser and Item
primary keys, so nothing is ever joined by position) or an implicit-feedback model on who
interacted with what; pickle the model under XREC_MODEL_DIR; evaluate rating error on the test
side (Surprise only); rank the top K unseen items for every user of the train side; compute
top-K and catalogue metrics; write the recommendations and the metrics in one transaction.
"""

from __future__ import annotations

import hashlib
import pickle
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]
import surprise
from django.conf import settings
from django.db import transaction
from surprise import AlgoBase, Trainset

from recommendations import algorithms, implicit_models, metrics
from recommendations.models import Dataset, Recommendation, RecommenderRun
from recommendations.scoring import top_k
from recommendations.services.splits import Rows, SplitError, split_get_or_create, split_parts
from recommendations.shared.bulk import insert_rows
from recommendations.shared.queue import enqueue_on_commit

PROGRESS_EVERY_SECONDS = 0.5
FloatArray = npt.NDArray[np.float64]
Report = Callable[..., None]  # Job.throttled_progress: report(phase, done=0, total=0)


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
    positive_threshold: float | None = None,
) -> RecommenderRun:
    """Validate everything that can be checked up front and record a PENDING run.

    ``positive_threshold`` trains an implicit model on rated data from the ratings at or above
    it (None: every interaction is a positive). Raises HyperparameterError for a bad algorithm
    or hyperparameter and TrainingError for a dataset the algorithm cannot learn from, a
    threshold that means nothing for it, or a bad K; nothing is stored then.
    """
    cleaned = algorithms.validate(algorithm, hyperparameters or {})
    implicit = algorithms.is_implicit(algorithm)
    if dataset.is_implicit and not implicit:
        raise TrainingError(
            f"{dataset.name} has no ratings; Surprise's algorithms learn from explicit ratings "
            f"(choose one of {', '.join(algorithms.IMPLICIT_ALGORITHMS)})"
        )
    if positive_threshold is not None and not implicit:
        raise TrainingError(f"a positive threshold applies to implicit models only, not to {algorithm}")
    if positive_threshold is not None and dataset.is_implicit:
        raise TrainingError(f"{dataset.name} has no ratings to hold against a positive threshold")
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
        positive_threshold=positive_threshold,
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


def _save_model(run: RecommenderRun, write: Callable[[Path], object]) -> None:
    folder = Path(settings.XREC_MODEL_DIR) / "recommenders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{run.pk}.pkl"
    write(path)
    run.model_path = str(path)
    run.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()


def _rating_errors(algo: AlgoBase, test: Rows) -> dict[str, float]:
    pairs = (
        (rating, algo.predict(user, item, r_ui=rating).est)
        for user, item, rating in zip(test.users.tolist(), test.items.tolist(), test.ratings.tolist(), strict=True)
    )
    return metrics.rating_errors(pairs)


@dataclass
class Fitted:
    """What either family of models hands on: rating errors (Surprise only), each user's ranked
    items as primary keys, how many users that is, and facts about the feedback it learnt from."""

    rating: dict[str, float] | None
    ranked: Iterator[tuple[int, list[int], FloatArray]]
    n_users: int
    feedback: dict[str, Any]


def _fit_surprise(run: RecommenderRun, train: Rows, test: Rows, report: Report) -> Fitted:
    dataset = run.dataset
    if dataset.rating_min is None or dataset.rating_max is None:
        raise TrainingError(f"{dataset.name} has no rating scale; Surprise's algorithms need explicit ratings")
    trainset = build_trainset(train, rating_scale=(dataset.rating_min, dataset.rating_max))
    report(f"fitting {run.algorithm} on {trainset.n_ratings:,} ratings")
    _seed_everything(run.seed)
    algo = algorithms.build(run.algorithm, run.hyperparameters, seed=run.seed)
    started = time.perf_counter()
    algo.fit(trainset)
    run.fit_seconds = time.perf_counter() - started
    _save_model(run, lambda path: surprise.dump.dump(str(path), algo=algo))

    report(f"predicting {len(test):,} test ratings")
    started = time.perf_counter()
    rating = _rating_errors(algo, test)
    run.evaluate_seconds = time.perf_counter() - started
    ranked = (
        (int(trainset.to_raw_uid(user)), [int(trainset.to_raw_iid(int(i))) for i in items], scores)
        for user, items, scores in top_k(algo, trainset, k=run.k)
    )
    return Fitted(rating, ranked, trainset.n_users, {"kind": "explicit"})


def _fit_implicit(run: RecommenderRun, train: Rows, report: Report) -> Fitted:
    """Users and items are those of the train side; a positive is a train interaction (at or
    above ``positive_threshold`` when one is set on rated data); every train interaction,
    positive or not, is kept out of the user's candidates."""
    users, user_index = np.unique(train.users, return_inverse=True)
    items, item_index = np.unique(train.items, return_inverse=True)
    shape = (users.size, items.size)
    positive = np.ones(len(train), dtype=np.bool_)
    if run.positive_threshold is not None:
        positive = train.ratings >= run.positive_threshold
    if not positive.any():
        raise TrainingError(f"no train interaction is a positive (rating at or above {run.positive_threshold})")
    ones = np.ones(int(positive.sum()), dtype=np.float32)
    # Repeated interactions with an item add up: ALS reads them as confidence.
    user_items = sp.csr_matrix((ones, (user_index[positive], item_index[positive])), shape=shape)
    user_items.sum_duplicates()
    seen = sp.csr_matrix((np.ones(len(train), dtype=np.bool_), (user_index, item_index)), shape=shape)

    report(f"fitting {run.algorithm} on {user_items.nnz:,} positive user-item pairs")
    started = time.perf_counter()
    model = implicit_models.fit(run.algorithm, run.hyperparameters, user_items, seed=run.seed)
    run.fit_seconds = time.perf_counter() - started
    run.evaluate_seconds = 0.0  # no ratings to predict
    fitted = pickle.dumps({"model": model, "users": users, "items": items})
    _save_model(run, lambda path: path.write_bytes(fitted))
    ranked = (
        (int(users[user]), items[inner].tolist(), scores)
        for user, inner, scores in implicit_models.top_k(model, user_items, seen, k=run.k)
    )
    feedback = {
        "kind": "implicit",
        "positive_threshold": run.positive_threshold,
        "n_positive_pairs": int(user_items.nnz),
        "n_users_popularity_fallback": int(implicit_models.popularity_fallback(user_items).sum()),
    }
    return Fitted(None, ranked, int(users.size), feedback)


def _relevant(test: Rows, threshold: float) -> dict[int, set[int]]:
    """Each user's relevant test items: those rated at or above ``threshold``, or every one on a
    dataset without ratings."""
    relevant: dict[int, set[int]] = {}
    keep = np.isnan(test.ratings) | (test.ratings >= threshold)
    for user, item in zip(test.users[keep].tolist(), test.items[keep].tolist(), strict=True):
        relevant.setdefault(user, set()).add(item)
    return relevant


def _execute(run: RecommenderRun, report: Report) -> None:
    dataset = run.dataset
    report("computing the train/test split")
    split = split_get_or_create(dataset=dataset, **run.split_options)
    run.split = split
    run.save(update_fields=["split"])
    report("loading the train side")
    train, test = split_parts(split)
    if algorithms.is_implicit(run.algorithm):
        fitted = _fit_implicit(run, train, report)
    else:
        fitted = _fit_surprise(run, train, test, report)

    started = time.perf_counter()
    rows: list[tuple[int, int, int, int, float]] = []
    recommended: dict[int, list[int]] = {}
    for done, (user, items, scores) in enumerate(fitted.ranked, 1):
        recommended[user] = items
        rows.extend(
            (run.pk, user, item, rank, float(score))
            for rank, (item, score) in enumerate(zip(items, scores.tolist(), strict=True), 1)
        )
        if done % 256 == 0 or done == fitted.n_users:
            report(f"ranking the top {run.k} for {fitted.n_users:,} users", done, fitted.n_users)
    run.topk_seconds = time.perf_counter() - started

    results = list_metrics(run, recommended, test) | {
        "rating": fitted.rating,
        "n_train": split.n_train,
        "n_test": split.n_test,
        "feedback": fitted.feedback,
    }
    report("writing recommendations", len(rows), len(rows))
    with transaction.atomic():
        Recommendation.objects.filter(run=run).delete()  # a retried run starts clean
        insert_rows(Recommendation, ["run", "user", "item", "rank", "score"], rows)
        run.save(update_fields=["fit_seconds", "evaluate_seconds", "topk_seconds", "model_path", "model_sha256"])
        run.mark_succeeded(metrics=results)


def list_metrics(run: RecommenderRun, recommended: dict[int, list[int]], test: Rows | None) -> dict[str, Any]:
    """The metrics of a run's stored lists, trained or imported: top-K against ``test`` (None:
    no split, no top-K metrics), catalogue coverage and concentration, and the histogram of
    how often items were recommended."""
    dataset = run.dataset
    catalogue = metrics.catalogue_metrics(recommended, n_items=dataset.n_items)
    # Per-item recommendation counts, never-recommended items as zeros (order is irrelevant).
    listed = np.fromiter((item for items in recommended.values() for item in items), dtype=np.int64)
    item_counts = np.unique(listed, return_counts=True)[1]
    per_item = np.zeros(max(dataset.n_items, len(item_counts)), dtype=np.int64)
    per_item[: len(item_counts)] = item_counts
    topk = None
    if test is not None:
        topk = metrics.topk_metrics(recommended, _relevant(test, run.relevance_threshold), k=run.k)
    return {
        "k": run.k,
        "relevance_threshold": run.relevance_threshold,
        "topk": topk,
        "catalogue": catalogue,
        "histogram": metrics.recommendation_count_histogram(per_item),
        "n_users_recommended": len(recommended),
    }
