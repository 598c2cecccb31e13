"""Benchmark: the implicit-feedback models, for speed at MovieLens-1M's shape and for accuracy
on MovieLens-100K.

Run as ``python -m tests.perf.bench_implicit``. No database: Django is set up only so that
the split code the app uses (``recommendations.services.splits``) can be imported.

Speed, on seeded synthetic events shaped like MovieLens-1M (6,040 users, 3,706 items, about
1,000,209 events, item popularity long-tailed): BPR and ALS with their defaults are fitted
through ``recommendations.implicit_models.fit``, then the top 10 of every user is ranked with
``implicit_models.top_k``. The baseline is ``implicit``'s own batched ``recommend`` on the same
fitted model, timed in the same run; the two must agree on at least 99% of users' lists (the
rest are ties ordered differently).

Accuracy, on MovieLens-100K (the atomic file in the recbole wheel, every rating an event):
temporal leave-last-out as the app splits it (each user's last event in test), full ranking of
every unseen item, NDCG@10 by ``recommendations.metrics.topk_metrics``.

Figures, on the last line as one JSON object: ``bpr_seconds`` and ``als_seconds`` (fit and
top-10 for every user), with ``*_fit_seconds``, ``*_topk_seconds``, ``*_library_topk_seconds``
and ``*_topk_vs_library`` (ours over the library's); ``ndcg_bpr``, ``ndcg_als``,
``ndcg_item_knn`` and ``ndcg_popularity``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import django
import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from tests.perf.bench_accuracy import ml100k_path
from tests.perf.machine import describe_machine

SEED = 0
K = 10
ML1M_USERS, ML1M_ITEMS, ML1M_EVENTS = 6_040, 3_706, 1_000_209
AGREEMENT_GOAL = 0.99


def log(message: str) -> None:
    print(f"[bench_implicit] {message}", flush=True)


def ml1m_shaped(seed: int = SEED) -> sp.csr_matrix:
    """Distinct user-item events: each user at least 20 (as in ML-1M), activity and item
    popularity both long-tailed, about ML1M_EVENTS in all."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=ML1M_USERS)
    per_user = 20 + np.floor(activity / activity.sum() * (ML1M_EVENTS - 20 * ML1M_USERS)).astype(np.int64)
    per_user = np.minimum(per_user, ML1M_ITEMS // 2)
    popularity = 1.0 / np.arange(1, ML1M_ITEMS + 1) ** 0.9
    popularity /= popularity.sum()
    rows, cols = [], []
    for user, count in enumerate(per_user.tolist()):
        items = rng.choice(ML1M_ITEMS, size=count, replace=False, p=popularity)
        rows.append(np.full(count, user))
        cols.append(items)
    row, col = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(row.size, dtype=np.float32), (row, col)), shape=(ML1M_USERS, ML1M_ITEMS))


def speed(algorithm: str, user_items: sp.csr_matrix) -> dict[str, float]:
    from recommendations import implicit_models

    started = time.perf_counter()
    model = implicit_models.fit(algorithm, {}, user_items, seed=SEED)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    ours = {user: items for user, items, _ in implicit_models.top_k(model, user_items, user_items, k=K)}
    topk_seconds = time.perf_counter() - started

    library = library_model(algorithm, model)
    started = time.perf_counter()
    ids, _ = library.recommend(np.arange(user_items.shape[0]), user_items, N=K, filter_already_liked_items=True)
    library_seconds = time.perf_counter() - started

    agree = np.mean([set(ours[user].tolist()) == set(ids[user].tolist()) for user in range(user_items.shape[0])])
    log(
        f"{algorithm}: fit {fit_seconds:.2f} s, top-{K} for {user_items.shape[0]:,} users {topk_seconds:.2f} s "
        f"(implicit's recommend {library_seconds:.2f} s, ratio {topk_seconds / library_seconds:.2f}); "
        f"same top-{K} for {agree:.2%} of users"
    )
    if agree < AGREEMENT_GOAL:
        raise SystemExit(f"{algorithm}: our top-{K} agrees with implicit's on only {agree:.2%} of users")
    name = algorithm.lower()
    return {
        f"{name}_seconds": fit_seconds + topk_seconds,
        f"{name}_fit_seconds": fit_seconds,
        f"{name}_topk_seconds": topk_seconds,
        f"{name}_library_topk_seconds": library_seconds,
        f"{name}_topk_vs_library": topk_seconds / library_seconds,
    }


def library_model(algorithm: str, model: Any) -> Any:
    """``implicit``'s own model object holding our fitted factors, for its ``recommend``."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    library = BayesianPersonalizedRanking() if algorithm == "BPR" else AlternatingLeastSquares()
    library.user_factors = model.user_factors.astype(np.float32)
    library.item_factors = model.item_factors.astype(np.float32)
    return library


def accuracy() -> dict[str, float]:
    from recommendations import implicit_models, metrics
    from recommendations.services.splits import Rows, leave_last_out

    raw = np.loadtxt(ml100k_path(), skiprows=1, dtype=np.int64)
    # The app's order: user, then time, then id (the file's line number here).
    order = np.lexsort((np.arange(len(raw)), raw[:, 3], raw[:, 0]))
    raw = raw[order]
    rows = Rows(np.arange(len(raw)), raw[:, 0], raw[:, 1], raw[:, 2].astype(np.float64), raw[:, 3])
    test_mask = leave_last_out(rows, 5)
    train, test = rows.take(~test_mask), rows.take(test_mask)
    users, user_index = np.unique(train.users, return_inverse=True)
    items, item_index = np.unique(train.items, return_inverse=True)
    user_items = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (user_index, item_index)), shape=(users.size, items.size)
    )
    user_items.sum_duplicates()
    relevant = {int(u): {int(i)} for u, i in zip(test.users, test.items, strict=True)}
    log(f"ML-100K: {len(train):,} train events, {len(test):,} test events (leave-last-out)")
    figures = {}
    for algorithm, key in (
        ("BPR", "ndcg_bpr"),
        ("ALS", "ndcg_als"),
        ("ItemKNN", "ndcg_item_knn"),
        ("Popularity", "ndcg_popularity"),
    ):
        model = implicit_models.fit(algorithm, {}, user_items, seed=SEED)
        recommended = {
            int(users[user]): items[inner].tolist()
            for user, inner, _ in implicit_models.top_k(model, user_items, user_items, k=K)
        }
        scores = metrics.topk_metrics(recommended, relevant, k=K)
        log(f"ML-100K {algorithm}: NDCG@{K} {scores['ndcg']:.4f}, HitRate@{K} {scores['hit_rate']:.4f}")
        figures[key] = scores["ndcg"]
        figures[key.replace("ndcg", "hit")] = scores["hit_rate"]
    return figures


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrec_site.settings")
    django.setup()
    started = time.perf_counter()
    machine = describe_machine()
    log(f"machine: {machine}")
    user_items = ml1m_shaped()
    log(f"ML-1M shape: {user_items.shape[0]:,} users, {user_items.shape[1]:,} items, {user_items.nnz:,} events")
    figures: dict[str, float] = {}
    for algorithm in ("BPR", "ALS"):
        figures |= speed(algorithm, user_items)
    figures |= accuracy()
    figures["seconds"] = time.perf_counter() - started
    rounded = {name: round(value, 4) for name, value in figures.items()}
    print(json.dumps({"bench": "implicit", "figures": rounded, "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
