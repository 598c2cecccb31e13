"""Intervals that respect how human ratings are collected.

Each explanation (an *item*) is rated by k annotators, and an annotator rates many items, so
ratings are not independent: two ratings of one item share the item, two ratings by one person
share the person. A bootstrap that resamples single ratings treats n ratings as n independent
draws and gives intervals that are too narrow. Here the resampled units are the items and, where
the design crosses them, the annotators too. The two-way ("pigeonhole") bootstrap of Owen (2007)
would draw items and annotators together, but it overstates the variance; ``clustered_mean``
combines one-way bootstraps instead (its docstring says how).

Comparisons of two systems rated on the same items are paired: the statistic is the mean over
items of the difference of the two systems' item means, resampled by item; the Wilcoxon
signed-rank test on those per-item differences and two effect sizes (the matched-pairs
rank-biserial correlation and Cohen's d_z) go with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats  # type: ignore[import-untyped]

from annotation.study.stats.bootstrap import Interval, check_bootstrap_args

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def _codes(labels: npt.ArrayLike) -> tuple[IntArray, int]:
    codes = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    return codes.astype(np.intp), int(codes.max()) + 1 if codes.size else 0


def crossed(items: npt.ArrayLike, annotators: npt.ArrayLike) -> bool:
    """Whether the design crosses annotators with items: some annotator rated two or more items
    and some item has two or more annotators (else resampling items alone is right)."""
    item_codes, _ = _codes(items)
    annotator_codes, _ = _codes(annotators)
    pairs = np.unique(np.stack([item_codes, annotator_codes]), axis=1)
    per_annotator = np.bincount(pairs[1])
    per_item = np.bincount(pairs[0])
    return bool(per_annotator.size and per_annotator.max() > 1 and per_item.max() > 1)


def clustered_mean(
    values: npt.ArrayLike,
    items: npt.ArrayLike,
    annotators: npt.ArrayLike | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> Interval:
    """The mean rating with an interval from resampling items, and annotators where the design
    crosses them with items. ``Interval.n`` is the number of items; ``n_resamples=0`` gives no
    interval, as for the other statistics.

    Each one-way bootstrap (of items, of annotators, of single ratings) enters through its
    variance, and that variance is taken in closed form: the ideal bootstrap's, linearised
    (per unit, its total minus the mean times its size, squared, summed, over N squared), times
    n/(n - 1) for n units. A Monte Carlo draw of it costs resamples x units; on a study of
    100,000 ratings that made the report twenty times slower for the same figure plus noise.

    Items only (no annotators given, or each annotator rated one item): mean +- t * sqrt(V_items)
    with n_items - 1 degrees of freedom. Crossed: no bootstrap of a crossed design is unbiased
    (McCullagh 2000); the two-way pigeonhole bootstrap overstates the variance (its 95% intervals
    covered the truth about 98% of the time in the simulations below). Instead the variances are
    combined by the method of moments, V = V_items + V_annotators - V_ratings (each one-way
    variance holds its own component plus the others divided by the number of ratings, so the
    sum counts those twice and the ratings' variance takes one copy away; the two-way
    cluster-robust variance of Cameron, Gelbach and Miller 2011), floored at the larger one-way
    part, and the interval is mean +- t * sqrt(V) with Satterthwaite's degrees of freedom from
    the item and annotator parts. Its 95% intervals cover the truth 93-97% of the time on 1,000
    seeded simulations with item and annotator effects (tests/annotation/test_clustered.py).
    """
    check_bootstrap_args(confidence, n_resamples)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    item_codes, n_items = _codes(items)
    estimate = float(y.mean()) if y.size else None
    if n_items < 2 or n_resamples == 0 or estimate is None:
        return Interval(estimate, None, None, n_items, confidence)
    by_item = _bootstrap_variance(y, item_codes, n_items)
    if annotators is None or not crossed(items, annotators):
        return _t_interval(estimate, by_item, n_items - 1, n_items, confidence)
    annotator_codes, n_annotators = _codes(annotators)
    by_annotator = _bootstrap_variance(y, annotator_codes, n_annotators)
    by_rating = _bootstrap_variance(y, np.arange(y.size), y.size)
    variance = max(by_item + by_annotator - by_rating, by_item, by_annotator)
    if variance <= 0:
        return Interval(estimate, estimate, estimate, n_items, confidence)
    df = variance**2 / (by_item**2 / (n_items - 1) + by_annotator**2 / (n_annotators - 1))
    return _t_interval(estimate, variance, df, n_items, confidence)


def _bootstrap_variance(y: FloatArray, codes: IntArray, n_units: int) -> float:
    """The variance of the mean of ``y`` when its units (``codes``) are resampled, in closed
    form (see ``clustered_mean``); the bootstrap's n/(n - 1) shortfall is undone."""
    totals = np.bincount(codes, weights=y, minlength=n_units)
    sizes = np.bincount(codes, minlength=n_units)
    residuals = totals - y.mean() * sizes
    return float(residuals @ residuals) / y.size**2 * n_units / (n_units - 1)


def _t_interval(estimate: float, variance: float, df: float, n: int, confidence: float) -> Interval:
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, df)) * variance**0.5
    return Interval(estimate, estimate - half, estimate + half, n, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """System A minus system B on the items both were rated on."""

    difference: Interval  # mean over items of (A's item mean - B's item mean)
    n_items: int
    wilcoxon_statistic: float | None
    p_value: float | None
    rank_biserial: float | None  # matched pairs: (sum of positive ranks - negative) / total
    cohens_dz: float | None  # mean difference / sd of the differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference.to_dict(),
            "n_items": self.n_items,
            "wilcoxon_statistic": self.wilcoxon_statistic,
            "p_value": self.p_value,
            "rank_biserial": self.rank_biserial,
            "cohens_dz": self.cohens_dz,
        }


def item_means(values: npt.ArrayLike, items: npt.ArrayLike) -> dict[Any, float]:
    """Each item's mean rating."""
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    keys, codes = np.unique(np.asarray(items), return_inverse=True)
    means = np.bincount(codes.reshape(-1), weights=y) / np.bincount(codes.reshape(-1))
    return dict(zip(keys.tolist(), means.tolist(), strict=True))


def paired_comparison(
    a: dict[Any, float],
    b: dict[Any, float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Compare two systems' item means (``item_means``) on their shared items: a paired
    bootstrap interval of the mean difference, the signed-rank test, and effect sizes."""
    check_bootstrap_args(confidence, n_resamples)
    shared = sorted(set(a) & set(b), key=str)
    d = np.array([a[item] - b[item] for item in shared], dtype=np.float64)
    n = d.size
    if n == 0:
        return PairedComparison(Interval(None, None, None, 0, confidence), 0, None, None, None, None)
    estimate = float(d.mean())
    interval = Interval(estimate, None, None, n, confidence)
    if n >= 2 and n_resamples:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n, size=(n_resamples, n))
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(d[draws].mean(axis=1), [tail, 100 - tail])
        interval = Interval(estimate, float(low), float(high), n, confidence)
    nonzero = d[d != 0]
    statistic = p_value = rank_biserial = None
    if nonzero.size:
        ranks = scipy.stats.rankdata(np.abs(nonzero))
        total = ranks.sum()
        rank_biserial = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / total)
        result = scipy.stats.wilcoxon(d, zero_method="wilcox")
        statistic, p_value = float(result.statistic), float(result.pvalue)
    sd = float(d.std(ddof=1)) if n >= 2 else 0.0
    dz = estimate / sd if sd > 0 else None
    return PairedComparison(interval, n, statistic, p_value, rank_biserial, dz)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None stays None)."""
    present = [(p, at) for at, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, at) in enumerate(sorted(present)):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[at] = running
    return adjusted
