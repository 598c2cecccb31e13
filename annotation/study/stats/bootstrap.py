"""Bootstrap intervals and the estimates built directly on them (means, medians, shares).

Pure functions of plain values (sequences, numpy arrays); no database access. Results are
floats or small frozen dataclasses with a ``to_dict()`` that report code can serialise.

Conventions that hold for every function in ``annotation.study.stats``:

- **Uncertainty** is a nonparametric *percentile* bootstrap interval computed with
  ``scipy.stats.bootstrap(method="percentile")``, resampling the independent unit of each
  analysis: values, items, comparisons, or reliability units. Percentile rather than BCa
  because it is defined for every statistic used here, including medians and proportions on
  small discrete scales, where BCa's bias correction is distorted by the many resamples that
  tie with the estimate, and for vector statistics (Bradley-Terry) without a jackknife of
  ``n`` refits. At small ``n`` (below about 20 units) any bootstrap interval is too narrow;
  ``Interval.n`` is always reported beside it.
- **Counts instead of indices**: where a statistic depends only on how often each kind of
  unit occurs (scale points, outcomes, comparison kinds, coincidence patterns), resampling n
  units is drawn as Multinomial(n, kind frequencies / n) counts. The distribution is exactly
  that of resampling the units and the cost no longer grows with n, but the random stream
  differs, so such intervals match an index bootstrap only up to Monte-Carlo error.
- **Seeds**: each call draws its resamples from ``np.random.default_rng(seed)``, so the same
  inputs, seed and library versions give identical intervals.
- **Degenerate input**: an empty input gives an estimate of ``None``; fewer than two units
  give an estimate without bounds (``low = high = None``); a sample without variation gives
  ``low = high = estimate`` (the bootstrap cannot see variation the sample lacks, e.g. 10/10
  correct gives [1, 1]). A resample on which the statistic is undefined (alpha without
  variation, a ratio with an empty denominator) is left out of the interval and counted in
  ``Interval.undefined_resamples``; if every resample is undefined the bounds are ``None``.
- **Malformed input** (unknown labels, mismatched lengths, non-finite numbers) raises
  ``ValueError``: it is never silently dropped.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

DEFAULT_RESAMPLES = 2000

# Bound the (resamples x n) index array of one vectorised batch to about 32 MB.
_BATCH_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap confidence interval.

    ``estimate`` is None only for empty input; ``low``/``high`` are None when no interval
    exists (fewer than two units, no resamples asked for, every resample undefined).
    ``n`` counts the units that were resampled; ``undefined_resamples`` counts the
    resamples left out because the statistic was undefined on them.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95
    undefined_resamples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    """Mean and median of ratings, each with an interval, and the counts per scale point."""

    n: int
    mean: Interval
    median: Interval
    distribution: dict[float, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean.to_dict(),
            "median": self.median.to_dict(),
            "distribution": dict(self.distribution),
        }


# --- bootstrap machinery -------------------------------------------------------------------


def check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be >= 0, not {n_resamples}")


def bootstrap_intervals(
    n: int,
    statistic: Callable[[IndexArray], FloatArray],
    estimates: Sequence[float | None],
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
    units: Sequence[int] | None = None,
    degenerate: bool = False,
) -> list[Interval]:
    """Percentile intervals of a vector statistic of ``n`` units, resampling the units.

    ``statistic`` receives a (batch, n) array of resampled unit indices and returns a
    (m, batch) array, NaN where undefined; ``estimates`` are its m values on the sample.
    ``degenerate`` (a sample without variation) gives low = high = estimate without
    resampling. ``units`` overrides ``Interval.n`` per component (default ``n``).
    """
    check_bootstrap_args(confidence, n_resamples)
    units = [n] * len(estimates) if units is None else units
    trivial = _trivial_intervals(n, estimates, units, confidence, n_resamples, degenerate)
    if trivial is not None:
        return trivial

    def indexed(indices: FloatArray, axis: int = -1) -> FloatArray:
        # scipy resamples the index array 0..n-1 (as floats); the statistic looks the units up.
        return statistic(np.asarray(indices, dtype=np.intp))

    with warnings.catch_warnings():
        # NaN (undefined) resamples make scipy's own interval NaN and warn; ours skips them.
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        result = scipy.stats.bootstrap(
            (np.arange(n),),
            indexed,
            n_resamples=n_resamples,
            batch=max(1, _BATCH_CELLS // n),
            vectorized=True,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    distribution = np.atleast_2d(np.asarray(result.bootstrap_distribution, dtype=np.float64))
    return _percentile_intervals(estimates, units, distribution, confidence)


def counts_bootstrap_intervals(
    frequencies: npt.NDArray[np.int64],
    statistic: Callable[[FloatArray], FloatArray],
    estimates: Sequence[float | None],
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
    units: Sequence[int] | None = None,
    degenerate: bool = False,
) -> list[Interval]:
    """``bootstrap_intervals`` for a statistic that depends only on how often each kind occurs.

    ``frequencies[k]`` counts the units of kind k (n = their sum). Drawing n units with
    replacement and counting the kinds gives exactly ``Multinomial(n, frequencies / n)``, so
    the resamples are drawn as such counts, in O(n_resamples x kinds) rather than
    O(n_resamples x n). ``statistic`` receives a (batch, kinds) float array of counts and
    returns (m, batch), NaN where undefined. Same distribution as resampling the units, but
    not the same random stream: intervals differ from the index bootstrap's by Monte-Carlo
    error only.
    """
    check_bootstrap_args(confidence, n_resamples)
    n = int(frequencies.sum())
    units = [n] * len(estimates) if units is None else units
    trivial = _trivial_intervals(n, estimates, units, confidence, n_resamples, degenerate)
    if trivial is not None:
        return trivial
    rng = np.random.default_rng(seed)
    probabilities = frequencies / n
    batch = max(1, _BATCH_CELLS // frequencies.size)
    draws = [
        np.atleast_2d(statistic(rng.multinomial(n, probabilities, size=min(batch, n_resamples - start)).astype(float)))
        for start in range(0, n_resamples, batch)
    ]
    return _percentile_intervals(estimates, units, np.concatenate(draws, axis=1), confidence)


def _trivial_intervals(
    n: int,
    estimates: Sequence[float | None],
    units: Sequence[int],
    confidence: float,
    n_resamples: int,
    degenerate: bool,
) -> list[Interval] | None:
    """The intervals that need no resampling (see ``bootstrap_intervals``), else None."""
    if n < 2 or n_resamples == 0 or all(value is None for value in estimates):
        return [Interval(value, None, None, size, confidence) for value, size in zip(estimates, units, strict=True)]
    if degenerate:
        return [Interval(value, value, value, size, confidence) for value, size in zip(estimates, units, strict=True)]
    return None


def _percentile_intervals(
    estimates: Sequence[float | None], units: Sequence[int], distribution: FloatArray, confidence: float
) -> list[Interval]:
    """Percentile intervals from an (m, n_resamples) bootstrap distribution, NaN = undefined."""
    tail = (1.0 - confidence) / 2.0
    intervals = []
    for value, size, draws in zip(estimates, units, distribution, strict=True):
        finite = draws[np.isfinite(draws)]
        undefined = int(draws.size - finite.size)
        if value is None:  # undefined on the sample itself: no interval, nothing to count
            intervals.append(Interval(None, None, None, size, confidence))
        elif finite.size == 0:
            intervals.append(Interval(value, None, None, size, confidence, undefined))
        else:
            # The same 'linear' quantiles scipy.stats.bootstrap uses, over the defined resamples.
            low, high = np.quantile(finite, [tail, 1.0 - tail], method="linear")
            intervals.append(Interval(value, float(low), float(high), size, confidence, undefined))
    return intervals


def finite_array(values: Sequence[float] | npt.ArrayLike, name: str = "values") -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers (remove missing values first)")
    return array


def share_of(count: int | float, total: int) -> float | None:
    return float(count) / total if total else None


# --- estimates with intervals --------------------------------------------------------------


def bootstrap_ci(
    values: Sequence[float] | npt.ArrayLike,
    statistic: Callable[..., Any] = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``statistic`` of ``values`` with a percentile-bootstrap interval resampling the values.

    ``statistic`` is a numpy-style reduction that takes ``axis=`` (``np.mean``,
    ``np.median``, ...). ``values`` must be finite. Empty input gives estimate None; one
    value gives the estimate without bounds; identical values give low = high = estimate.
    Deterministic for a given seed.
    """
    array = finite_array(values)
    if array.size == 0:
        check_bootstrap_args(confidence, n_resamples)
        return Interval(None, None, None, 0, confidence)
    estimate = float(statistic(array, axis=-1))
    (interval,) = bootstrap_intervals(
        array.size,
        lambda idx: np.asarray(statistic(array[idx], axis=-1), dtype=np.float64)[np.newaxis, :],
        [estimate],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        degenerate=bool(np.ptp(array) == 0),
    )
    return interval


def mean_median_summary(
    values: Sequence[float] | npt.ArrayLike,
    *,
    scale: Sequence[float] | None = None,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Summary:
    """Mean and median of ratings with bootstrap intervals, and their distribution.

    Both intervals come from the same resamples, drawn exactly as ``bootstrap_ci`` draws them
    for the same seed. With ``scale`` (e.g. ``range(1, 8)`` for a 7-point Likert item) the
    distribution lists every scale point in order, unused ones with 0, and a value off the
    scale raises ValueError; without it, the distinct observed values in ascending order.
    """
    array = finite_array(values)
    if scale is None:
        observed, counts = np.unique(array, return_counts=True)
        distribution = {float(point): int(count) for point, count in zip(observed, counts, strict=True)}
    else:
        points = list(scale)
        off_scale = sorted({float(v) for v in array} - {float(p) for p in points})
        if off_scale:
            raise ValueError(f"values off the scale {points}: {off_scale}")
        distribution = {point: int(np.sum(array == float(point))) for point in points}
    if array.size == 0:
        check_bootstrap_args(confidence, n_resamples)
        empty = Interval(None, None, None, 0, confidence)
        return Summary(n=0, mean=empty, median=empty, distribution=distribution)
    mean, median = bootstrap_intervals(
        array.size,
        lambda idx: np.stack([np.mean(array[idx], axis=-1), np.median(array[idx], axis=-1)]),
        [float(np.mean(array)), float(np.median(array))],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        degenerate=bool(np.ptp(array) == 0),
    )
    return Summary(n=int(array.size), mean=mean, median=median, distribution=distribution)


def discrete_summary(
    values: Sequence[float] | npt.ArrayLike,
    *,
    scale: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Summary:
    """``mean_median_summary`` of ratings on a finite scale, fast for any number of ratings.

    Estimates, ``distribution`` and degenerate cases are those of ``mean_median_summary``
    (values off ``scale`` raise ValueError). Resampling n ratings with replacement only
    changes how often each scale point occurs, which is exactly Multinomial(n, counts / n);
    each resample's mean and median (the average of the two middle values for even n, as
    ``np.median``) are read off its counts, so a call costs O(n_resamples x scale points)
    after one pass over the values. The intervals follow the same distribution as
    ``mean_median_summary``'s but come from another random stream: for the same seed they
    differ from its intervals by Monte-Carlo error, not bit for bit.
    """
    array = finite_array(values)
    points = list(scale)
    ordered = np.unique(np.asarray(points, dtype=np.float64))
    codes = np.minimum(np.searchsorted(ordered, array), max(ordered.size - 1, 0))
    off = ~np.isin(array, ordered) if ordered.size else np.ones(array.size, dtype=bool)
    if np.any(off):
        raise ValueError(f"values off the scale {points}: {sorted({float(v) for v in array[off]})}")
    frequencies = np.bincount(codes.astype(np.intp), minlength=ordered.size).astype(np.int64)
    distribution = {point: int(frequencies[np.searchsorted(ordered, float(point))]) for point in points}
    if array.size == 0:
        check_bootstrap_args(confidence, n_resamples)
        empty = Interval(None, None, None, 0, confidence)
        return Summary(n=0, mean=empty, median=empty, distribution=distribution)
    n = int(array.size)
    # 0-based positions of the two middle values in sorted order; equal for odd n.
    middle = np.array([(n - 1) // 2, n // 2])

    def mean_and_median(counts: FloatArray) -> FloatArray:
        below_or_at = np.cumsum(counts, axis=1)  # (batch, points)
        # The value at sorted position i is the first point whose cumulative count exceeds i.
        lower = ordered[np.argmax(below_or_at > middle[0], axis=1)]
        upper = ordered[np.argmax(below_or_at > middle[1], axis=1)]
        return np.stack([counts @ ordered / n, (lower + upper) / 2.0])

    mean, median = counts_bootstrap_intervals(
        frequencies,
        mean_and_median,
        [float(np.mean(array)), float(np.median(array))],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        degenerate=bool(np.ptp(array) == 0),
    )
    return Summary(n=n, mean=mean, median=median, distribution=distribution)


def accuracy_with_ci(
    correct: Sequence[bool],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Share of True in ``correct`` with a bootstrap interval resampling the answers.

    Unparseable answers must be passed as False (they are wrong, not missing); report their
    rate beside. Anything but a bool (None included) raises ValueError rather than being
    coerced. All-correct or all-wrong gives low = high = estimate.
    """
    if not all(isinstance(answer, bool | np.bool_) for answer in correct):
        raise ValueError("correct must hold booleans: pass unparseable answers as False")
    return bootstrap_ci(
        np.asarray(correct, dtype=np.float64),
        np.mean,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def majority_baseline(labels: Sequence[str]) -> tuple[str | None, float | None]:
    """The most frequent label and its share: the accuracy of always predicting it.

    Ties between equally frequent labels go to the one that sorts first, so the answer does
    not depend on input order. Computed on the labels it is scored against (an in-sample
    baseline, an upper bound for a majority learned elsewhere). Empty input gives
    (None, None).
    """
    if not labels:
        return None, None
    counts = Counter(labels)
    top = max(counts.values())
    label = min(name for name, count in counts.items() if count == top)
    return label, top / len(labels)
