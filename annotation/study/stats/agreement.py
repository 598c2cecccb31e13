"""Agreement between raters: Cohen's kappa, and Krippendorff's alpha with bootstrap intervals.

Krippendorff's alpha comes from the ``krippendorff`` package for estimates on a coders x
units matrix (``alpha``); ``alphas_of_answers`` computes the same alpha from coincidence
matrices so that its bootstrap stays cheap. The conventions on intervals, seeds and
degenerate input are those of ``bootstrap``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import krippendorff
import numpy as np
import numpy.typing as npt
import scipy.stats  # type: ignore[import-untyped]

from annotation.study.stats.bootstrap import (
    FloatArray,
    IndexArray,
    Interval,
    bootstrap_intervals,
    counts_bootstrap_intervals,
)

AlphaLevel = Literal["nominal", "ordinal", "interval"]

# Above this many distinct values alpha_with_ci falls back to refitting the matrix per resample.
_ALPHA_MAX_VALUES = 100


def alpha(
    matrix: np.ndarray, level: Literal["nominal", "ordinal", "interval"], value_domain: list[float] | None = None
) -> float | None:
    """Krippendorff's alpha of a coders x units matrix (NaN = missing), or None where it is
    undefined (fewer than two pairable answers, or a single value in the data)."""
    pairable = (np.sum(~np.isnan(matrix), axis=0) >= 2).sum() if matrix.size else 0
    if pairable == 0:
        return None
    try:
        # No variation at all gives 0/0: that is "undefined", reported as None, not a warning.
        with np.errstate(invalid="ignore", divide="ignore"):
            value = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level, value_domain=value_domain)
    except (ValueError, ZeroDivisionError):
        return None
    return None if np.isnan(value) else float(value)


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

    The estimate is ``alpha`` (the ``krippendorff`` package). The
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
        shared = _coincidence_alphas(
            fast,
            unit_codes,
            value_codes,
            n_units,
            distinct.size,
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
        )
        intervals.update((position, interval) for (position, *_), interval in zip(fast, shared, strict=True))
    return [intervals[position] for position in range(len(levels))]


def _coincidence_alphas(
    fast: list[tuple[int, AlphaLevel, FloatArray, IndexArray]],
    unit_codes: IndexArray,
    value_codes: IndexArray,
    n_units: int,
    n_values: int,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> list[Interval]:
    """The alphas of ``alphas_of_answers``'s fast levels, in ``fast``'s order, from one shared
    draw of the units' answer patterns (``unit_codes`` and ``value_codes`` per paired answer)."""
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
    return counts_bootstrap_intervals(
        frequencies.astype(np.int64),
        alphas,
        [None if np.isnan(value) else float(value) for value in estimates],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        units=[n_units] * len(fast),
    )


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
    estimate = alpha(pairable, level, value_domain)

    def resampled(idx: IndexArray) -> FloatArray:
        values = [alpha(pairable[:, row], level, value_domain) for row in idx]
        return np.array([[np.nan if v is None else v for v in values]], dtype=np.float64)

    (interval,) = bootstrap_intervals(
        pairable.shape[1],
        resampled,
        [estimate],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    return interval


def auroc(scores: npt.ArrayLike, positives: npt.ArrayLike) -> float | None:
    """The area under the ROC curve of ``scores`` for the True cases of ``positives``: the
    chance that a random positive scores above a random negative, ties counting half (the
    Mann-Whitney U over n_pos x n_neg). None unless both classes are present."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(positives, dtype=bool).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = scipy.stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_agreement(
    flagged: Sequence[bool],
    scores: Sequence[float] | None,
    truth: Sequence[bool],
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """How well an automatic signal agrees with a human truth on the same cases: Cohen's kappa
    of ``flagged`` against ``truth`` and, with ``scores`` (higher = more likely True), the
    AUROC; each with a percentile-bootstrap interval resampling the cases. Also the counts,
    the signal's precision and recall for True."""
    flags = np.asarray(flagged, dtype=bool)
    human = np.asarray(truth, dtype=bool)
    n = int(human.size)
    score = None if scores is None else np.asarray(scores, dtype=np.float64)

    def both(indices: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        rows = np.atleast_2d(indices)
        out = np.full((2, rows.shape[0]), np.nan)
        for column, index in enumerate(rows):
            kappa = cohen_kappa(flags[index].tolist(), human[index].tolist())
            out[0, column] = np.nan if kappa is None else kappa
            area = None if score is None else auroc(score[index], human[index])
            out[1, column] = np.nan if area is None else area
        return out

    estimates = both(np.arange(n)[np.newaxis, :])[:, 0] if n else np.full(2, np.nan)
    kappa, area = bootstrap_intervals(
        n,
        both,
        [None if np.isnan(value) else float(value) for value in estimates],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    hits = int((flags & human).sum())
    return {
        "n": n,
        "true": int(human.sum()),
        "flagged": int(flags.sum()),
        "precision": hits / int(flags.sum()) if flags.sum() else None,
        "recall": hits / int(human.sum()) if human.sum() else None,
        "kappa": kappa.to_dict(),
        "auroc": area.to_dict() if score is not None else None,
    }
