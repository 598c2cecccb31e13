"""Benchmark: top-10 for every user of a MovieLens-1M-sized SVD, against Surprise's own route.

Run as ``python -m tests.perf.bench_topk``. Needs no Django and no database: it generates the
ratings in memory, fits ``surprise.SVD`` and times ``recommendations.scoring.top_k``.

Figures, on the last line as one JSON object:

- ``seconds``: ``top_k(k=10)`` for all 6,040 users, results collected (wall clock, untraced,
  the median of three runs).
- ``peak_mb``: tracemalloc's peak over a second, traced run of that step (numpy reports its
  buffers to tracemalloc, so the score chunks count); the process's ru_maxrss is printed too,
  but it is dominated by the trainset and Surprise's Python structures, not by top-K.
- ``surprise_seconds_estimated``: Surprise's route (``build_anti_testset`` pairs, one
  ``algo.predict`` each, sort, top 10) timed on a seeded sample of users and scaled linearly
  by candidate pairs to all users; ``speedup_vs_surprise`` is its ratio to ``seconds``.
- ``surprise_anti_testset_gb_estimated``: traced bytes per pair of the sample's anti-testset
  list times the all-user pair count; the full list is never built.

The run also checks that the sample users' top-10 from both routes agree.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from functools import partial
from statistics import median
from typing import TypeVar

import numpy as np
from surprise import SVD, Dataset, Reader, Trainset

from recommendations.scoring import top_k
from tests.perf.machine import describe_machine

SEED = 20_240_601
K = 10
SAMPLE_USERS = 100
BATCH_USERS = 256
TIMED_RUNS = 3

# The shape of the real MovieLens-1M.
ML1M_RATINGS = 1_000_209
ML1M_USERS = 6_040
ML1M_MOVIES = 3_706
ML1M_MAX_MOVIE_ID = 3_952
ML1M_MIN_PER_USER = 20
ML1M_MAX_PER_USER = 2_314
# Zipf-Mandelbrot popularity, weight (rank + 100) ** -1.2, as in bench_import: a flat head and
# a long tail near the real ML-1M.
ZIPF_OFFSET = 100
ZIPF_EXPONENT = 1.2
ML1M_STAR_WEIGHTS = [0.056, 0.108, 0.261, 0.349, 0.226]

# Fewer epochs than Surprise's 20 keep the fit short; top-K cost depends only on the shapes
# (users, items, factors), not on how far SGD went.
SVD_EPOCHS = 5

GOAL_SECONDS = 2.0
GOAL_PEAK_MB = 500.0
GOAL_SPEEDUP = 100.0

T = TypeVar("T")
Ranking = dict[int, tuple[list[int], list[float]]]


def log(message: str) -> None:
    print(f"[bench_topk] {message}", flush=True)


def timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def traced_mb(work: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``work`` under tracemalloc; return its result, peak MB and still-held MB."""
    gc.collect()
    tracemalloc.start()
    try:
        result = work()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 1024**2, held / 1024**2


# --- synthetic MovieLens-1M ratings --------------------------------------------------------


def _user_counts(rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least 20, long-tailed (median near 100), summing to ML1M_RATINGS."""
    extra = rng.lognormal(4.33, 1.14, ML1M_USERS)
    budget = ML1M_RATINGS - ML1M_MIN_PER_USER * ML1M_USERS
    counts = ML1M_MIN_PER_USER + np.minimum(ML1M_MAX_PER_USER - ML1M_MIN_PER_USER, (extra * budget / extra.sum()))
    counts = counts.astype(np.int64)
    # Flooring and the cap leave a shortfall; hand it out one rating at a time.
    while (missing := ML1M_RATINGS - int(counts.sum())) > 0:
        open_users = np.flatnonzero(counts < ML1M_MAX_PER_USER)
        counts[rng.choice(open_users, size=min(missing, open_users.size), replace=False)] += 1
    return counts


def ml1m_ratings(*, seed: int = SEED) -> list[tuple[str, str, float, None]]:
    """Surprise raw ratings ``(user, movie, stars, None)`` shaped like ML-1M; deterministic per seed.

    Every (user, movie) pair is unique, every user has at least 20 ratings, movie popularity
    follows a Zipf-Mandelbrot law over a shuffled id order.
    """
    rng = np.random.default_rng(seed)
    movie_ids = np.sort(rng.choice(np.arange(1, ML1M_MAX_MOVIE_ID + 1), size=ML1M_MOVIES, replace=False))
    by_popularity = rng.permutation(movie_ids).astype(str)
    weights = (np.arange(1, ML1M_MOVIES + 1) + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    weights /= weights.sum()
    raw: list[tuple[str, str, float, None]] = []
    for user_id, count in enumerate(_user_counts(rng).tolist(), 1):
        chosen = rng.choice(ML1M_MOVIES, size=count, replace=False, p=weights)
        stars = rng.choice(np.arange(1.0, 6.0), size=count, p=ML1M_STAR_WEIGHTS)
        user = str(user_id)
        raw.extend(zip([user] * count, by_popularity[chosen].tolist(), stars.tolist(), [None] * count, strict=True))
    return raw


# --- Surprise's route, on a sample ---------------------------------------------------------


def anti_testset_of(trainset: Trainset, users: Sequence[int]) -> list[tuple[str, str, float]]:
    """``trainset.build_anti_testset()`` restricted to ``users``, built the same way."""
    fill = trainset.global_mean
    anti_testset: list[tuple[str, str, float]] = []
    for u in users:
        user_items = {j for (j, _) in trainset.ur[u]}
        anti_testset += [
            (trainset.to_raw_uid(u), trainset.to_raw_iid(i), fill) for i in trainset.all_items() if i not in user_items
        ]
    return anti_testset


def surprise_top_k(algo: SVD, trainset: Trainset, users: Sequence[int]) -> Ranking:
    """Surprise's FAQ recipe: predict every anti-testset pair, sort each user's by estimate, cut."""
    per_user: dict[str, list[tuple[str, float]]] = {}
    for prediction in algo.test(anti_testset_of(trainset, users)):
        per_user.setdefault(prediction.uid, []).append((prediction.iid, prediction.est))
    ranking: Ranking = {}
    for raw_user, estimates in per_user.items():
        estimates.sort(key=lambda pair: pair[1], reverse=True)
        best = estimates[:K]
        ranking[trainset.to_inner_uid(raw_user)] = (
            [trainset.to_inner_iid(raw_item) for raw_item, _ in best],
            [float(est) for _, est in best],
        )
    return ranking


def ours(algo: SVD, trainset: Trainset) -> Ranking:
    return {
        user: (items.tolist(), scores.tolist())
        for user, items, scores in top_k(algo, trainset, k=K, batch_users=BATCH_USERS)
    }


# --- the benchmark ---------------------------------------------------------------------------


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def measure() -> dict[str, float]:
    figures: dict[str, float] = {}

    log("generating synthetic MovieLens-1M ratings")
    raw, seconds = timed(ml1m_ratings)
    log(f"generated {len(raw):,} ratings in {seconds:.1f} s")
    trainset, seconds = timed(partial(Dataset(Reader(rating_scale=(1, 5))).construct_trainset, raw))
    del raw
    shape = (trainset.n_users, trainset.n_items, trainset.n_ratings)
    assert shape == (ML1M_USERS, ML1M_MOVIES, ML1M_RATINGS), shape
    assert min(len(ratings) for ratings in trainset.ur.values()) >= ML1M_MIN_PER_USER
    log(f"trainset built in {seconds:.1f} s: {shape[0]:,} users x {shape[1]:,} items, {shape[2]:,} ratings")

    algo = SVD(random_state=0, n_epochs=SVD_EPOCHS)
    _, seconds = timed(lambda: algo.fit(trainset))
    log(f"SVD(n_factors={algo.n_factors}, n_epochs={SVD_EPOCHS}) fitted in {seconds:.1f} s")

    log(f"top_k(k={K}) for all users, batch_users={BATCH_USERS}, {TIMED_RUNS} runs")
    runs = [timed(partial(ours, algo, trainset)) for _ in range(TIMED_RUNS)]
    ranking = runs[0][0]
    assert len(ranking) == ML1M_USERS
    assert all(other == ranking for other, _ in runs[1:]), "top_k is not deterministic"
    # The median: a shared two-core machine makes single runs vary by up to 2x.
    figures["seconds"] = median(seconds for _, seconds in runs)
    log(f"ours: {figures['seconds']:.3f} s (runs: {', '.join(f'{seconds:.3f}' for _, seconds in runs)})")
    # A second, traced run: tracemalloc slows Python allocations, so it would skew the timing.
    _, figures["peak_mb"], _ = traced_mb(partial(ours, algo, trainset))
    log(f"ours: tracemalloc peak {figures['peak_mb']:.1f} MB")

    sample = sorted(np.random.default_rng(SEED).choice(ML1M_USERS, size=SAMPLE_USERS, replace=False).tolist())
    sample_pairs = sum(ML1M_MOVIES - len(trainset.ur[user]) for user in sample)
    total_pairs = ML1M_USERS * ML1M_MOVIES - ML1M_RATINGS  # pairs are unique
    log(f"Surprise's route on {SAMPLE_USERS} sampled users ({sample_pairs:,} of {total_pairs:,} pairs)")
    reference, sample_seconds = timed(lambda: surprise_top_k(algo, trainset, sample))
    # The cost is one predict per pair, so it scales with pairs rather than with users.
    figures["surprise_seconds_estimated"] = sample_seconds * total_pairs / sample_pairs
    figures["speedup_vs_surprise"] = figures["surprise_seconds_estimated"] / figures["seconds"]
    log(f"surprise: {sample_seconds:.2f} s for the sample, ~{figures['surprise_seconds_estimated']:.0f} s for all")

    for user in sample:
        items, scores = ranking[user]
        expected_items, expected_scores = reference[user]
        assert items == expected_items, (user, items, expected_items)
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-12, atol=0)
    log(f"sample top-{K}s agree with Surprise's")

    anti_testset, _, held_mb = traced_mb(lambda: anti_testset_of(trainset, sample))
    bytes_per_pair = held_mb * 1024**2 / len(anti_testset)
    figures["surprise_anti_testset_gb_estimated"] = bytes_per_pair * total_pairs / 1024**3
    _, _, predictions_mb = traced_mb(partial(algo.test, anti_testset))
    predictions_gb = predictions_mb * 1024**2 / len(anti_testset) * total_pairs / 1024**3
    del anti_testset
    log(
        f"surprise: anti-testset {bytes_per_pair:.0f} B/pair, ~{figures['surprise_anti_testset_gb_estimated']:.2f} GB "
        f"for all users; algo.test()'s Prediction list would add ~{predictions_gb:.1f} GB"
    )
    log(f"process ru_maxrss {peak_rss_mb():.0f} MB (trainset and Surprise structures included)")
    return figures


def main() -> None:
    started = time.perf_counter()
    machine = describe_machine()
    log(f"machine: {machine}; numpy {np.__version__}")
    figures = measure()
    log(f"total {time.perf_counter() - started:.1f} s")

    verdicts = (
        (f"speedup at least {GOAL_SPEEDUP:.0f}x", figures["speedup_vs_surprise"] >= GOAL_SPEEDUP),
        (f"under {GOAL_SECONDS:.0f} s", figures["seconds"] < GOAL_SECONDS),
        (f"peak under {GOAL_PEAK_MB:.0f} MB", figures["peak_mb"] < GOAL_PEAK_MB),
    )
    for label, met in verdicts:
        log(f"goal {label}: {'met' if met else 'NOT met'}")
    order = ["seconds", "speedup_vs_surprise", "peak_mb", "surprise_seconds_estimated"]
    order += ["surprise_anti_testset_gb_estimated"]
    rounded = {key: round(figures[key], 3) for key in order}
    print(json.dumps({"bench": "topk", "figures": rounded, "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
