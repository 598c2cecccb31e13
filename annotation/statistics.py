"""The statistics behind the evaluation reports: estimates, their uncertainty, and agreement.

Pure functions of plain values (sequences, numpy arrays); no database access. Results are
floats or small frozen dataclasses with a ``to_dict()`` that report code can serialise.

Conventions that hold for every function here:

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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.stats  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]
from scipy.special import expit  # type: ignore[import-untyped]

from explanations.judging import combine_orders

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

OUTCOMES = ("a", "b", "tie", "unparsed")
VERDICTS = ("first", "second", "tie")
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


@dataclass(frozen=True)
class WinTieLoss:
    """Shares of system A wins, B wins, ties and unparsed items, and A's net lead (a - b)."""

    n: int
    counts: dict[str, int]
    a: Interval
    b: Interval
    tie: Interval
    unparsed: Interval
    net: Interval

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "counts": dict(self.counts),
            **{name: getattr(self, name).to_dict() for name in ("a", "b", "tie", "unparsed", "net")},
        }


@dataclass(frozen=True)
class BradleyTerry:
    """Fitted Bradley-Terry log-strengths (centred: they sum to zero) with intervals.

    P(i beats j) = 1 / (1 + exp(-(strength_i - strength_j))). ``Interval.n`` of a system is
    the number of comparisons it took part in.
    """

    systems: tuple[str, ...]
    strengths: dict[str, Interval]
    n_comparisons: int
    ties: str
    alpha: float

    def win_probability(self, a: str, b: str) -> float:
        """P(a beats b) under the point estimates."""
        strength_a, strength_b = self.strengths[a].estimate, self.strengths[b].estimate
        assert strength_a is not None and strength_b is not None
        return float(expit(strength_a - strength_b))

    def to_dict(self) -> dict[str, Any]:
        return {
            "systems": list(self.systems),
            "strengths": {name: interval.to_dict() for name, interval in self.strengths.items()},
            "n_comparisons": self.n_comparisons,
            "ties": self.ties,
            "alpha": self.alpha,
        }


@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its p-value; both None where it is undefined."""

    statistic: float | None
    pvalue: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PositionBias:
    """How a pairwise judge run in both orders used the answer slots, and what it decided.

    ``counts`` and the ``first``/``second``/``tie``/``unparsed`` shares are over all 2 x n
    verdicts (they sum to 1); their intervals resample items, since an item's two verdicts
    are not independent. ``disagreement`` is over the items whose two verdicts both parsed
    (its ``n``). ``outcomes`` holds each item's combined outcome, in input order.
    """

    n: int
    counts: dict[str, int]
    first: Interval
    second: Interval
    tie: Interval
    unparsed: Interval
    disagreement: Interval
    outcomes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "counts": dict(self.counts),
            **{name: getattr(self, name).to_dict() for name in ("first", "second", "tie", "unparsed", "disagreement")},
            "outcomes": list(self.outcomes),
        }


# --- bootstrap machinery -------------------------------------------------------------------


def _check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be >= 0, not {n_resamples}")


def _bootstrap_intervals(
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
    _check_bootstrap_args(confidence, n_resamples)
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


def _counts_bootstrap_intervals(
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
    """``_bootstrap_intervals`` for a statistic that depends only on how often each kind occurs.

    ``frequencies[k]`` counts the units of kind k (n = their sum). Drawing n units with
    replacement and counting the kinds gives exactly ``Multinomial(n, frequencies / n)``, so
    the resamples are drawn as such counts, in O(n_resamples x kinds) rather than
    O(n_resamples x n). ``statistic`` receives a (batch, kinds) float array of counts and
    returns (m, batch), NaN where undefined. Same distribution as resampling the units, but
    not the same random stream: intervals differ from the index bootstrap's by Monte-Carlo
    error only.
    """
    _check_bootstrap_args(confidence, n_resamples)
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
    """The intervals that need no resampling (see ``_bootstrap_intervals``), else None."""
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


def _finite_array(values: Sequence[float] | npt.ArrayLike, name: str = "values") -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers (remove missing values first)")
    return array


def _share(count: int | float, total: int) -> float | None:
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
    array = _finite_array(values)
    if array.size == 0:
        _check_bootstrap_args(confidence, n_resamples)
        return Interval(None, None, None, 0, confidence)
    estimate = float(statistic(array, axis=-1))
    (interval,) = _bootstrap_intervals(
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
    array = _finite_array(values)
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
        _check_bootstrap_args(confidence, n_resamples)
        empty = Interval(None, None, None, 0, confidence)
        return Summary(n=0, mean=empty, median=empty, distribution=distribution)
    mean, median = _bootstrap_intervals(
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
    array = _finite_array(values)
    points = list(scale)
    ordered = np.unique(np.asarray(points, dtype=np.float64))
    codes = np.minimum(np.searchsorted(ordered, array), max(ordered.size - 1, 0))
    off = ~np.isin(array, ordered) if ordered.size else np.ones(array.size, dtype=bool)
    if np.any(off):
        raise ValueError(f"values off the scale {points}: {sorted({float(v) for v in array[off]})}")
    frequencies = np.bincount(codes.astype(np.intp), minlength=ordered.size).astype(np.int64)
    distribution = {point: int(frequencies[np.searchsorted(ordered, float(point))]) for point in points}
    if array.size == 0:
        _check_bootstrap_args(confidence, n_resamples)
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

    mean, median = _counts_bootstrap_intervals(
        frequencies,
        mean_and_median,
        [float(np.mean(array)), float(np.median(array))],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        degenerate=bool(np.ptp(array) == 0),
    )
    return Summary(n=n, mean=mean, median=median, distribution=distribution)


def win_tie_loss(
    outcomes: Sequence[str],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> WinTieLoss:
    """Shares of "a" wins, "b" wins, ties and "unparsed" items for system A against B.

    Each outcome is one item: "a", "b", "tie" or "unparsed" (anything else raises). Every
    share is over all items, unparsed ones included, so the four shares sum to 1 and a parse
    failure is never silently dropped. ``net`` is share(a) - share(b). All intervals come
    from the same resamples of items, drawn as multinomial counts of the four outcomes (the
    shares depend on nothing else), so the cost does not grow with the number of items.
    """
    unknown = sorted(set(outcomes) - set(OUTCOMES))
    if unknown:
        raise ValueError(f"unknown outcomes {unknown}; expected one of {OUTCOMES}")
    n = len(outcomes)
    tally = Counter(outcomes)
    frequencies = np.array([tally[name] for name in OUTCOMES], dtype=np.int64)
    counts = {name: int(frequencies[k]) for k, name in enumerate(OUTCOMES)}
    estimates: list[float | None] = [_share(counts[name], n) for name in OUTCOMES]
    net = None if n == 0 else counts["a"] / n - counts["b"] / n

    def shares(resampled: FloatArray) -> FloatArray:
        means = resampled.T / n  # (4, batch)
        return np.vstack([means, means[0] - means[1]])

    # The shares depend only on the outcome counts, so the resamples are multinomial counts.
    a, b, tie, unparsed, net_interval = _counts_bootstrap_intervals(
        frequencies,
        shares,
        [*estimates, net],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        degenerate=n > 0 and len(set(outcomes)) == 1,
    )
    return WinTieLoss(n=n, counts=counts, a=a, b=b, tie=tie, unparsed=unparsed, net=net_interval)


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


# --- Bradley-Terry -------------------------------------------------------------------------

_NEWTON_MAX_ITER = 100


def _bradley_terry_fit(wins: FloatArray, alpha: float) -> FloatArray:
    """Centred log-strengths maximising sum_ij W_ij log sigmoid(t_i - t_j) - alpha * sum_i t_i^2.

    ``wins[i, j]`` is the (possibly fractional) number of times i beat j. Damped Newton on
    the convex objective, stopped on the gradient norm and finished with one full step; it
    agrees with ``choix.opt_pairwise`` to ~1e-6 or better. A gauge term (sum t)^2 / 2 is
    added: the likelihood ignores shifts of t and the optimum with alpha > 0 already sums to
    zero, so it only makes the Hessian definite and, with alpha = 0, picks the centred MLE.
    Raises RuntimeError if it has not converged after 100 Newton steps.
    """
    return _bradley_terry_fits(wins[np.newaxis], alpha, np.zeros(wins.shape[0]))[0]


def _bradley_terry_fits(wins: FloatArray, alpha: float, start: FloatArray) -> FloatArray:
    """``_bradley_terry_fit`` of each matrix in a (batch, k, k) stack, all started from ``start``.

    Returns (batch, k). Every matrix runs the same damped Newton iteration with the same
    stopping rule as alone; the stack advances together and a matrix leaves it once it has
    converged. The objective is strictly convex (the gauge term makes it so at alpha = 0),
    so the optimum does not depend on ``start``: a bootstrap passes the full-data fit, which
    lies close to every resample's optimum and saves most Newton steps.
    """
    batch, k = wins.shape[0], wins.shape[1]
    games = wins + np.swapaxes(wins, 1, 2)
    won = wins.sum(axis=2)
    tolerance = 1e-10 * np.maximum(1.0, games.sum(axis=(1, 2)))
    identity = np.eye(k)
    fitted = np.empty((batch, k))
    # The matrices still iterating (indices into the stack) and their current strengths.
    active = np.arange(batch)
    theta = np.tile(np.asarray(start, dtype=np.float64), (batch, 1))

    def objective(rows: IndexArray, points: FloatArray) -> FloatArray:
        diff = points[:, :, np.newaxis] - points[:, np.newaxis, :]
        likelihood = np.sum(wins[rows] * np.logaddexp(0.0, -diff), axis=(1, 2))
        return likelihood + alpha * np.sum(points * points, axis=1) + 0.5 * points.sum(axis=1) ** 2

    for _ in range(_NEWTON_MAX_ITER):
        played = games[active]
        p = expit(theta[:, :, np.newaxis] - theta[:, np.newaxis, :])
        gradient = (played * p).sum(axis=2) - won[active] + 2.0 * alpha * theta + theta.sum(axis=1, keepdims=True)
        curvature = played * p * (1.0 - p)
        hessian = curvature.sum(axis=2)[:, :, np.newaxis] * identity - curvature + 2.0 * alpha * identity + 1.0
        step = np.linalg.solve(hessian, gradient[:, :, np.newaxis])[:, :, 0]
        converged = np.max(np.abs(gradient), axis=1) <= tolerance[active]
        # One last full step: inside the quadratic region it squares the remaining error.
        last = theta[converged] - step[converged]
        fitted[active[converged]] = last - last.mean(axis=1, keepdims=True)
        going = ~converged
        active, theta, step, gradient = active[going], theta[going], step[going], gradient[going]
        if active.size == 0:
            return fitted
        start_value, slope = objective(active, theta), np.sum(gradient * step, axis=1)
        size = np.ones(active.size)
        # Armijo backtracking far from the optimum. Near it the predicted decrease drops below
        # the objective's rounding error, where a line search only accepts noise: the full
        # Newton step is then right (quadratic convergence), so take it.
        searching = slope > 1e-9 * (1.0 + np.abs(start_value))
        while np.any(trying := searching & (size > 1e-9)):
            rows = np.flatnonzero(trying)
            trial = theta[rows] - size[rows, np.newaxis] * step[rows]
            rejected = objective(active[rows], trial) > start_value[rows] - 1e-4 * size[rows] * slope[rows]
            size[rows[rejected]] /= 2.0
            searching[rows[~rejected]] = False
        theta = theta - size[:, np.newaxis] * step
    raise RuntimeError("Bradley-Terry fit did not converge")


def bradley_terry(
    comparisons: Sequence[tuple[str, str] | tuple[str, str, str]],
    systems: Sequence[str],
    *,
    ties: Literal["half", "drop"] = "half",
    alpha: float = 0.01,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> BradleyTerry:
    """Bradley-Terry strengths of ``systems`` from pairwise comparisons, with intervals.

    A comparison is ``(winner, loser)`` or ``(a, b, outcome)`` with outcome "a", "b" or
    "tie" (the vocabulary of ``win_tie_loss``; filter out "unparsed" items first, and report
    them with ``win_tie_loss``). ``ties="half"`` counts a tie as half a win for each side (the
    usual treatment without Davidson's tie parameter); ``ties="drop"`` leaves ties out.

    The fit maximises the log-likelihood minus ``alpha * sum(strength**2)`` (the penalty of
    ``choix.opt_pairwise``: a N(0, 1/(2 alpha)) prior on each log-strength), so perfectly
    separated data still gives finite strengths; the default 0.01 moves non-separated
    estimates by far less than their standard error. ``alpha=0`` gives the plain MLE, which
    exists only when every split of the systems into two groups has a win each way (Ford's
    condition; ValueError otherwise) and cannot be bootstrapped (``n_resamples`` must be 0),
    since a resample may lack it. Strengths are natural-log and centred to sum to zero;
    intervals resample the comparisons that enter the fit, drawn as multinomial counts of
    the distinct (pair, outcome) kinds: exact, since the fit sees only those counts, and
    independent of the number of comparisons (one fit per resample remains; the resamples'
    fits run as one batch, started from the full-data fit).

    Raises ValueError for unknown or repeated systems, self-comparisons, unknown outcomes and
    systems without any comparison.
    """
    if ties not in ("half", "drop"):
        raise ValueError(f"ties must be 'half' or 'drop', not {ties!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, not {alpha}")
    if alpha == 0 and n_resamples:
        raise ValueError("alpha=0 cannot be bootstrapped: a resample may have no finite MLE; pass n_resamples=0")
    names = tuple(systems)
    if len(set(names)) != len(names):
        raise ValueError("systems must be distinct")
    index = {name: i for i, name in enumerate(names)}
    k = len(names)

    # One row per comparison kept: (i, j, wins of i over j, wins of j over i).
    rows: list[tuple[int, int, float, float]] = []
    for comparison in comparisons:
        first, second = comparison[0], comparison[1]
        outcome = comparison[2] if len(comparison) == 3 else "a"
        if first not in index or second not in index:
            raise ValueError(f"comparison {comparison!r} names a system not in {list(names)}")
        if first == second:
            raise ValueError(f"comparison {comparison!r} compares a system with itself")
        i, j = index[first], index[second]
        if outcome == "a":
            rows.append((i, j, 1.0, 0.0))
        elif outcome == "b":
            rows.append((i, j, 0.0, 1.0))
        elif outcome == "tie":
            if ties == "half":
                rows.append((i, j, 0.5, 0.5))
        else:
            raise ValueError(f"comparison {comparison!r}: outcome must be 'a', 'b' or 'tie'")
    pair_i = np.array([r[0] for r in rows], dtype=np.intp)
    pair_j = np.array([r[1] for r in rows], dtype=np.intp)
    wins_ij = np.array([r[2] for r in rows], dtype=np.float64)
    wins_ji = np.array([r[3] for r in rows], dtype=np.float64)
    appearances = np.bincount(pair_i, minlength=k) + np.bincount(pair_j, minlength=k)
    if k and np.any(appearances == 0):
        missing = [names[s] for s in np.flatnonzero(appearances == 0)]
        raise ValueError(f"systems without comparisons (after ties={ties!r}): {missing}")

    # A fit depends on the comparisons only through how often each kind (i, j, outcome)
    # occurs, so resampling comparisons is exactly a multinomial draw of the kind counts.
    kinds, frequencies = np.unique(
        np.column_stack([pair_i, pair_j, wins_ij, wins_ji]).reshape(-1, 4), axis=0, return_counts=True
    )
    # Row r: kind r's win matrix, flattened, so a resample's matrix is counts @ kind_wins.
    kind_wins = np.zeros((kinds.shape[0], k * k))
    rows_of_kinds = np.arange(kinds.shape[0])
    first_system, second_system = kinds[:, 0].astype(np.intp), kinds[:, 1].astype(np.intp)
    kind_wins[rows_of_kinds, first_system * k + second_system] = kinds[:, 2]
    kind_wins[rows_of_kinds, second_system * k + first_system] = kinds[:, 3]

    wins = (frequencies @ kind_wins).reshape(k, k).astype(np.float64)
    if alpha == 0 and k > 1 and connected_components(wins > 0, directed=True, connection="strong")[0] != 1:
        raise ValueError("the MLE does not exist: some group of systems never lost to the rest; use alpha > 0")
    theta = _bradley_terry_fit(wins, alpha) if k else np.zeros(0)

    def strengths(counts: FloatArray) -> FloatArray:
        # Every resample's optimum lies near the full-data one: start all fits there.
        return _bradley_terry_fits((counts @ kind_wins).reshape(-1, k, k), alpha, theta).T

    intervals = _counts_bootstrap_intervals(
        frequencies.astype(np.int64),
        strengths,
        [float(t) for t in theta],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        units=[int(a) for a in appearances],
    )
    return BradleyTerry(
        systems=names,
        strengths=dict(zip(names, intervals, strict=True)),
        n_comparisons=len(rows),
        ties=ties,
        alpha=alpha,
    )


# --- agreement and correlation -------------------------------------------------------------


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' nominal labels on the same items (position = item).

    kappa = (p_o - p_e) / (1 - p_e), with p_e from each rater's own label frequencies.
    None for no items, or when chance agreement is 1 (both raters used one and the same
    label throughout). Raises ValueError if the sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"the raters labelled different numbers of items ({len(a)} and {len(b)})")
    n = len(a)
    if n == 0:
        return None
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    counts_a, counts_b = Counter(a), Counter(b)
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def _correlation(
    x: Sequence[float] | npt.ArrayLike, y: Sequence[float] | npt.ArrayLike, method: Callable[..., Any]
) -> Correlation:
    xs, ys = _finite_array(x, "x"), _finite_array(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length ({xs.size} and {ys.size})")
    if xs.size < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(None, None, int(xs.size))
    result = method(xs, ys)
    return Correlation(float(result.statistic), float(result.pvalue), int(xs.size))


def kendall_tau(x: Sequence[float] | npt.ArrayLike, y: Sequence[float] | npt.ArrayLike) -> Correlation:
    """Kendall's tau-b of paired values and its two-sided p-value (``scipy.stats.kendalltau``
    defaults: exact for small samples without ties, asymptotic otherwise). None-valued for
    fewer than 3 pairs or a constant input."""
    return _correlation(x, y, scipy.stats.kendalltau)


def spearman_rho(x: Sequence[float] | npt.ArrayLike, y: Sequence[float] | npt.ArrayLike) -> Correlation:
    """Spearman's rho (ties take average ranks) and its two-sided p-value
    (``scipy.stats.spearmanr``). None-valued for fewer than 3 pairs or a constant input."""
    return _correlation(x, y, scipy.stats.spearmanr)


AlphaLevel = Literal["nominal", "ordinal", "interval"]

# Above this many distinct values alpha_with_ci falls back to refitting the matrix per resample.
_ALPHA_MAX_VALUES = 100


def _alpha_codes(
    values: FloatArray, value_domain: list[float] | None, level: str
) -> tuple[FloatArray, IndexArray] | None:
    """The distinct values ordered for ``level`` and each value's code, or None (slow path).

    Only values that occur matter: a domain point nobody used adds nothing to any
    coincidence, and its ordinal weight n_g is 0. ``value_domain`` still decides the ordinal
    order (its own order, as ``krippendorff.alpha`` reads it) and which values are allowed.
    """
    if value_domain is None:
        points, codes = np.unique(values, return_inverse=True)
    else:
        domain = np.asarray(value_domain, dtype=np.float64).ravel()
        if np.unique(domain).size != domain.size or not np.all(np.isin(values, domain)):
            return None  # krippendorff's own checks and errors decide these cases
        order = np.argsort(domain, kind="stable")
        rank = order[np.searchsorted(domain[order], values)]
        used, codes = np.unique(rank, return_inverse=True)
        points = domain[used]
    if points.size > _ALPHA_MAX_VALUES or level not in ("nominal", "ordinal", "interval"):
        return None
    return points, np.asarray(codes, dtype=np.intp).ravel()


def _unique_rows(rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """``np.unique(rows, axis=0, return_counts=True)`` for a 2-D array of non-negative integers.

    Each row is read as one integer in base (largest entry + 1), first column most
    significant, so the integers sort as the rows do lexicographically and the result is
    np.unique's, in its order; a 1-D unique of those integers is several times faster than
    np.unique's row sort, which remains the path for rows too long to fit in 62 bits.
    """
    base = int(rows.max()) + 1 if rows.size else 1
    if base ** rows.shape[1] > 2**62:
        patterns, counts = np.unique(rows, axis=0, return_counts=True)
        return patterns, counts
    weights = base ** np.arange(rows.shape[1] - 1, -1, -1, dtype=np.int64)
    _, first, counts = np.unique(rows @ weights, return_index=True, return_counts=True)
    return rows[first], counts


def _alpha_of_coincidences(coincidences: FloatArray, points: FloatArray, level: str) -> FloatArray:
    """Krippendorff's alpha of a (batch, V, V) stack of coincidence matrices; NaN if undefined.

    alpha = 1 - D_o / D_e with D_o = sum o_ck d_ck / n and D_e = sum n_c n_k d_ck / (n (n-1)),
    where d is the squared distance of the level (Krippendorff 2011, "Computing
    Krippendorff's alpha-reliability"). The ordinal distance uses the marginals n_g of each
    matrix itself: (sum of n_g for g from c to k - (n_c + n_k) / 2)^2.
    """
    marginals = coincidences.sum(axis=2)  # (batch, V)
    total = marginals.sum(axis=1)
    if level == "nominal":
        distance = np.broadcast_to(1.0 - np.eye(points.size), coincidences.shape)
    elif level == "interval":
        distance = np.broadcast_to((points[:, np.newaxis] - points[np.newaxis, :]) ** 2, coincidences.shape)
    else:
        # sum_{g=c..k} n_g - (n_c + n_k)/2 = cum_k - cum_c + (n_c - n_k)/2 for c <= k, and
        # its negative for c > k, so one expression squared serves every cell.
        cumulative = np.cumsum(marginals, axis=1)
        gap = cumulative[:, np.newaxis, :] - cumulative[:, :, np.newaxis]
        distance = (gap + (marginals[:, :, np.newaxis] - marginals[:, np.newaxis, :]) / 2.0) ** 2
    observed = np.einsum("bck,bck->b", coincidences, distance)
    expected = np.einsum("bc,bk,bck->b", marginals, marginals, distance)
    with np.errstate(invalid="ignore", divide="ignore"):
        # 1 - D_o / D_e with the common factor 1 / n moved into D_e's (n - 1).
        alpha = 1.0 - (total - 1.0) * observed / expected
    return np.where((expected > 0) & (total > 1), alpha, np.nan)


def alpha_with_ci(
    matrix: npt.ArrayLike,
    level: Literal["nominal", "ordinal", "interval"],
    value_domain: list[float] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """Krippendorff's alpha of a coders x units matrix (NaN = missing) with an interval.

    The estimate is ``annotation.agreement.alpha`` (the ``krippendorff`` package). The
    interval resamples units (columns) with replacement, a repeated unit counting as a
    further unit, over the units with at least two answers (the others carry no pairable
    values, so alpha ignores them); ``Interval.n`` counts those units. This is the plain
    unit bootstrap, not Hayes and Krippendorff's (2007) resampling of coincidences, so it
    differs from their KALPHA macro. Resamples on which alpha is undefined (no variation)
    are left out and counted. Estimate None where alpha is undefined on the data itself.

    When the answers take at most 100 distinct values (all in ``value_domain`` if given),
    alpha is computed from coincidence matrices directly, and so are the resamples: a unit
    adds (c c^T - diag c) / (m - 1) to the coincidences, c its answers' value counts and m
    their number, so units with the same counts are interchangeable and a resample is a
    multinomial draw over those count patterns, O(n_resamples x patterns x values^2).
    Same estimate (to rounding) and same resampling distribution as refitting per resample,
    but another random stream. Otherwise each resample is refitted with the package.
    """
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError("matrix must be 2-D: coders x units")
    coders, units = np.nonzero(~np.isnan(data))
    return alpha_of_answers(
        coders,
        units,
        data[coders, units],
        level,
        value_domain,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def alpha_of_answers(
    coders: npt.ArrayLike,
    units: npt.ArrayLike,
    values: npt.ArrayLike,
    level: AlphaLevel,
    value_domain: list[float] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """``alpha_with_ci`` from answers given as parallel arrays (coder, unit, value), one answer
    per coder and unit, without building a coders x units matrix: a campaign with a thousand
    annotators and a hundred thousand items has 300,000 answers but 10^8 matrix cells. The
    coders matter only on the slow path (more than 100 distinct values)."""
    (interval,) = alphas_of_answers(
        coders, units, values, [(level, value_domain)], confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    return interval


def alphas_of_answers(
    coders: npt.ArrayLike,
    units: npt.ArrayLike,
    values: npt.ArrayLike,
    levels: Sequence[tuple[AlphaLevel, list[float] | None]],
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[Interval]:
    """``alpha_of_answers`` at each ``(level, value_domain)`` of ``levels``, in that order.

    Each interval is the one ``alpha_of_answers`` gives for that level alone under the same
    seed, but the resamples are drawn once for all levels: they are multinomial counts of
    the units' answer patterns (how many answers of each distinct value a unit has), which
    do not depend on the level, so every level reads its alphas off the same draws. Where
    the distinct values sort differently from a ``value_domain``'s own order, the patterns
    are enumerated in value order, a random stream other than the one before levels were
    shared (the same distribution). A level on the slow path is refitted on its own.
    """
    coder_ids = np.asarray(coders).ravel()
    unit_ids = np.asarray(units).ravel()
    answers_given = np.asarray(values, dtype=np.float64).ravel()
    if not coder_ids.size == unit_ids.size == answers_given.size:
        raise ValueError("coders, units and values must have the same length")
    _, unit_index, per_unit = np.unique(unit_ids, return_inverse=True, return_counts=True)
    pairable = per_unit[unit_index] >= 2
    unit_codes = np.unique(unit_index[pairable], return_inverse=True)[1].ravel()
    n_units = int(unit_codes.max()) + 1 if unit_codes.size else 0
    paired_answers = answers_given[pairable]
    distinct, value_codes = np.unique(paired_answers, return_inverse=True)
    value_codes = value_codes.ravel()
    intervals: dict[int, Interval] = {}
    # (position in levels, level, its points, the column of each distinct value among them)
    fast: list[tuple[int, AlphaLevel, FloatArray, IndexArray]] = []
    for position, (level, value_domain) in enumerate(levels):
        found = _alpha_codes(paired_answers, value_domain, level) if n_units else None
        if found is None:
            coder_codes = np.unique(coder_ids[pairable], return_inverse=True)[1].ravel()
            dense = np.full((int(coder_codes.max()) + 1 if coder_codes.size else 0, n_units), np.nan)
            dense[coder_codes, unit_codes] = paired_answers
            intervals[position] = _alpha_with_ci_refitted(
                dense, level, value_domain, confidence=confidence, n_resamples=n_resamples, seed=seed
            )
        else:
            points, codes = found
            columns = np.empty(distinct.size, dtype=np.intp)
            columns[value_codes] = codes
            fast.append((position, level, points, columns))
    if fast:
        n_values = distinct.size
        value_counts = np.bincount(unit_codes * n_values + value_codes, minlength=n_units * n_values)
        patterns, frequencies = _unique_rows(value_counts.reshape(n_units, n_values))
        answers = patterns.sum(axis=1)
        statistics: list[tuple[AlphaLevel, FloatArray, FloatArray]] = []
        for _, level, points, columns in fast:
            arranged = np.zeros_like(patterns)
            arranged[:, columns] = patterns
            contributions = (
                arranged[:, :, np.newaxis] * arranged[:, np.newaxis, :] - arranged[:, :, np.newaxis] * np.eye(n_values)
            ) / (answers - 1)[:, np.newaxis, np.newaxis]
            statistics.append((level, points, contributions.reshape(patterns.shape[0], n_values * n_values)))

        def alphas(counts: FloatArray) -> FloatArray:
            return np.stack(
                [
                    _alpha_of_coincidences((counts @ contributions).reshape(-1, n_values, n_values), points, level)
                    for level, points, contributions in statistics
                ]
            )

        estimates = alphas(frequencies[np.newaxis, :].astype(np.float64))[:, 0]
        shared = _counts_bootstrap_intervals(
            frequencies.astype(np.int64),
            alphas,
            [None if np.isnan(value) else float(value) for value in estimates],
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
            units=[n_units] * len(fast),
        )
        intervals.update((position, interval) for (position, *_), interval in zip(fast, shared, strict=True))
    return [intervals[position] for position in range(len(levels))]


def _alpha_with_ci_refitted(
    pairable: FloatArray,
    level: Literal["nominal", "ordinal", "interval"],
    value_domain: list[float] | None,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> Interval:
    """``alpha_with_ci`` by refitting ``krippendorff.alpha`` on every resample of the units."""
    # Imported here: agreement imports the Django models, and this module stays importable
    # without settings (and without an import cycle if agreement reports intervals later).
    from annotation.agreement import alpha

    estimate = alpha(pairable, level, value_domain)

    def resampled(idx: IndexArray) -> FloatArray:
        values = [alpha(pairable[:, row], level, value_domain) for row in idx]
        return np.array([[np.nan if v is None else v for v in values]], dtype=np.float64)

    (interval,) = _bootstrap_intervals(
        pairable.shape[1],
        resampled,
        [estimate],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    return interval


# --- position bias of a pairwise judge -----------------------------------------------------


def position_bias(
    verdicts: Sequence[tuple[str | None, str | None]],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PositionBias:
    """Slot shares, order disagreement and combined outcomes of a judge run in both orders.

    Each item is ``(verdict with A shown first, verdict with B shown first)``; a verdict is
    "first", "second", "tie" (the slot the judge picked) or None (unparseable). A verdict
    picks a system: with A first, "first" picks A; with B first, "first" picks B.

    Combined outcome per item: "a" or "b" only when both orders pick that system (A first ->
    "first" and B first -> "second" means A wins); "tie" when both say tie or the orders
    disagree; "unparsed" when either verdict is None, never a tie. ``disagreement`` is the
    share, among items with both verdicts parsed, whose two verdicts pick different systems
    (a tie against a pick counts as disagreeing). Other verdict values raise ValueError.
    Feed ``outcomes`` to ``win_tie_loss`` for the headline rates.
    """
    pick_when_a_first = {"first": "a", "second": "b", "tie": "tie"}
    pick_when_b_first = {"first": "b", "second": "a", "tie": "tie"}
    slots = (*VERDICTS, "unparsed")
    # An item is fully described by its verdict pair, one of 16 kinds: every statistic here
    # depends only on how many items there are of each kind, so the bootstrap draws kind counts.
    kinds = [(a, b) for a in (*VERDICTS, None) for b in (*VERDICTS, None)]
    kind_slots = np.zeros((len(kinds), len(slots)))
    kind_parsed = np.zeros(len(kinds))
    kind_disagree = np.zeros(len(kinds))
    for k, (a_first, b_first) in enumerate(kinds):
        for verdict in (a_first, b_first):
            kind_slots[k, slots.index(verdict if verdict is not None else "unparsed")] += 1
        if a_first is not None and b_first is not None:
            kind_parsed[k] = 1.0
            kind_disagree[k] = float(pick_when_a_first[a_first] != pick_when_b_first[b_first])
    n = len(verdicts)
    tally: Counter[tuple[str | None, str | None]] = Counter()
    outcomes: list[str] = []
    for item, (a_first, b_first) in enumerate(verdicts):
        for verdict in (a_first, b_first):
            if verdict is not None and verdict not in VERDICTS:
                raise ValueError(f"item {item}: verdict {verdict!r} is not one of {VERDICTS} or None")
        tally[(a_first, b_first)] += 1
        # The judge's own rule (explanations.judging), so the report and the run agree.
        outcomes.append(combine_orders(a_first, b_first))
    frequencies = np.array([tally[kind] for kind in kinds], dtype=np.int64)
    slot_totals = frequencies @ kind_slots
    counts = {name: int(slot_totals[k]) for k, name in enumerate(slots)}
    n_parsed = int(frequencies @ kind_parsed)
    estimates: list[float | None] = [_share(counts[name], 2 * n) for name in slots]
    estimates.append(_share(float(frequencies @ kind_disagree), n_parsed))

    def statistic(resampled: FloatArray) -> FloatArray:
        shares = (resampled @ kind_slots).T / (2 * n)  # (slots, batch)
        both = resampled @ kind_parsed
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(both > 0, (resampled @ kind_disagree) / both, np.nan)
        return np.vstack([shares, rate])

    first, second, tie, unparsed, disagreement = _counts_bootstrap_intervals(
        frequencies,
        statistic,
        estimates,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        units=[n, n, n, n, n_parsed],
    )
    return PositionBias(
        n=n,
        counts=counts,
        first=first,
        second=second,
        tie=tie,
        unparsed=unparsed,
        disagreement=disagreement,
        outcomes=tuple(outcomes),
    )
