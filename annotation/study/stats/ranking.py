"""Is the ranking of generators settled, how many ratings would settle it, and which items help.

A campaign that compares generators is settled when every two generators next to each other in
the ranking are told apart at the chosen confidence, Bonferroni-adjusted over those adjacent
pairs:

- Likert: generators are ranked by their mean rating net of each recommendation's mean; two neighbours are compared on the
  recommendations both were rated on (the item means of each, paired): the mean difference;
- pairwise: generators are ranked by their share of decisive wins; two neighbours are compared
  on the verdicts between them (ties left out): one's share of wins against the other, minus
  one half.

The interval is a confidence sequence, not a fixed-sample one: the stopping rule is checked
again and again as ratings arrive (and a campaign may close itself on it), and a fixed-sample
95% interval looked at after every batch excludes zero by chance far more often than 5% of the
time. The normal-mixture boundary of Howard, Ramdas, McAuliffe and Sekhon (2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences") holds at every sample size at once: with V
= s^2 n (s the spread: the sample standard deviation of the differences, or 1/2 for a share)
and rho = s^2 n0 (``N0``, the size it is tightest around), the mean is within
sqrt((V + rho) ln((V + rho) / (rho alpha^2))) / n of its estimate. In simulation
(``tests/annotation/routing_simulation.py``) fixed-sample intervals stopped on a wrong order in
3 of 28 settled routed campaigns with a close pair; this boundary keeps that rate under 5%.

``units_needed`` extrapolates from what was seen: the smallest n whose radius, with the same
spread, is below the observed difference; a pair whose difference is still zero gives no
estimate (None). Routing (``priorities``) sends the next
ratings to the items of the pairs that are not yet told apart, and within them to the items
whose partner (the other generator's item of the same recommendation) has more ratings, so the
pairs the comparison needs are completed first. Pure: numpy and scipy only.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairGap:
    """Two generators next to each other in the ranking: ``better`` ranked above ``worse``."""

    better: Hashable
    worse: Hashable
    difference: float | None  # mean difference (Likert) or win share minus one half (pairwise)
    low: float | None
    high: float | None
    units: int
    separated: bool
    units_needed: int | None  # more units this pair needs, by extrapolation; None: cannot tell

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Ranking:
    order: list[Hashable]
    estimates: dict[Hashable, float]
    gaps: list[PairGap] = field(default_factory=list)
    confidence: float = 0.95

    @property
    def settled(self) -> bool:
        return len(self.order) >= 2 and all(gap.separated for gap in self.gaps)

    @property
    def unsettled_pairs(self) -> set[frozenset[Hashable]]:
        return {frozenset((gap.better, gap.worse)) for gap in self.gaps if not gap.separated}

    def units_needed(self) -> int | None:
        """More units (recommendations rated by both, or verdicts) the unsettled pairs need; 0
        when settled; None when some pair's difference is still zero."""
        needed = [gap.units_needed for gap in self.gaps if not gap.separated]
        if any(value is None for value in needed):
            return None
        return int(sum(value for value in needed if value is not None))


# The number of units each confidence sequence is tightest around.
N0 = 20


def _alpha(confidence: float, comparisons: int) -> float:
    """Each of ``comparisons`` intervals' error so that they hold together at ``confidence``."""
    return (1 - confidence) / max(1, comparisons)


def radius(spread: float, n: int, alpha: float) -> float:
    """The half-width of the normal-mixture confidence sequence for a mean of ``n`` units with
    standard deviation ``spread``, valid at every n at once with error ``alpha`` (two-sided)."""
    if n == 0:
        return math.inf
    variance, rho = spread * spread * n, max(spread * spread, 1e-12) * N0
    return math.sqrt((variance + rho) * math.log((variance + rho) / (rho * alpha * alpha))) / n


def _units_needed(spread: float, difference: float, n: int, alpha: float) -> int | None:
    """More units until ``radius`` falls below ``|difference|`` at this spread; None for none."""
    if difference == 0:
        return None
    low, high = n, max(2 * n, 2)
    while radius(spread, high, alpha) >= abs(difference):
        low, high = high, high * 2
        if high > 10**9:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if radius(spread, middle, alpha) < abs(difference) else (middle, high)
    return max(1, high - n)


def likert_ranking(ratings: Sequence[tuple[Hashable, Hashable, float]], *, confidence: float = 0.95) -> Ranking:
    """The ranking of generators from Likert ratings ``(recommendation, generator, value)``
    (several per item when several annotators rated it)."""
    sums: dict[tuple[Hashable, Hashable], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for recommendation, system, value in ratings:
        cell = sums[(recommendation, system)]
        cell[0] += value
        cell[1] += 1
    item_means: dict[Hashable, dict[Hashable, float]] = defaultdict(dict)
    for (recommendation, system), (total, count) in sums.items():
        item_means[system][recommendation] = total / count
    # Ranked on the item means net of their recommendation's mean over the generators rated on
    # it: routing rates some generators on some recommendations first, and a raw mean would
    # then carry the difficulty of the recommendations it happened to cover.
    by_recommendation: dict[Hashable, list[float]] = defaultdict(list)
    for means in item_means.values():
        for recommendation, value in means.items():
            by_recommendation[recommendation].append(value)
    centre = {recommendation: float(np.mean(values)) for recommendation, values in by_recommendation.items()}
    estimates = {
        system: float(np.mean([value - centre[r] for r, value in means.items()]))
        for system, means in item_means.items()
    }
    order = sorted(estimates, key=lambda system: (-estimates[system], str(system)))
    alpha = _alpha(confidence, len(order) - 1)
    gaps = []
    for better, worse in itertools.pairwise(order):
        shared = sorted(set(item_means[better]) & set(item_means[worse]), key=str)
        differences = np.asarray([item_means[better][r] - item_means[worse][r] for r in shared])
        gaps.append(_gap(better, worse, differences, alpha))
    return Ranking(order, estimates, gaps, confidence)


def _gap(better: Hashable, worse: Hashable, differences: np.ndarray, alpha: float) -> PairGap:
    n = int(differences.size)
    if n < 2:
        return PairGap(better, worse, float(differences.mean()) if n else None, None, None, n, False, None)
    return _separation(better, worse, float(differences.mean()), float(differences.std(ddof=1)), n, alpha)


def _separation(better: Hashable, worse: Hashable, mean: float, spread: float, n: int, alpha: float) -> PairGap:
    half = radius(spread, n, alpha)
    # Told apart only in the ranking's direction: a pair whose interval lies below zero is
    # ranked the wrong way round, which is not settled.
    separated = mean - half > 0
    needed = 0 if separated else _units_needed(spread, mean, n, alpha)
    return PairGap(better, worse, mean, mean - half, mean + half, n, separated, needed)


def pairwise_ranking(verdicts: Sequence[tuple[Hashable, Hashable, str]], *, confidence: float = 0.95) -> Ranking:
    """The ranking of generators from pairwise verdicts ``(generator a, generator b, winner)``
    with winner ``"a"``, ``"b"`` or ``"tie"``."""
    wins: dict[Hashable, int] = defaultdict(int)
    decided: dict[Hashable, int] = defaultdict(int)
    head: dict[tuple[Hashable, Hashable], int] = defaultdict(int)
    for a, b, winner in verdicts:
        decided[a] += 0
        decided[b] += 0
        if winner not in ("a", "b"):
            continue
        won, lost = (a, b) if winner == "a" else (b, a)
        wins[won] += 1
        decided[a] += 1
        decided[b] += 1
        head[(won, lost)] += 1
    estimates = {system: wins[system] / decided[system] if decided[system] else 0.5 for system in decided}
    order = sorted(estimates, key=lambda system: (-estimates[system], str(system)))
    alpha = _alpha(confidence, len(order) - 1)
    gaps = []
    for better, worse in itertools.pairwise(order):
        won, lost = head[(better, worse)], head[(worse, better)]
        n = won + lost
        if n == 0:
            gaps.append(PairGap(better, worse, None, None, None, 0, False, None))
        else:
            # A share's spread is at most one half (a Bernoulli variable's largest deviation).
            gaps.append(_separation(better, worse, won / n - 0.5, 0.5, n, alpha))
    return Ranking(order, estimates, gaps, confidence)


def priorities(
    ranking: Ranking,
    items: Sequence[tuple[Hashable, frozenset[Hashable]]],
    counts: Sequence[int],
) -> list[int]:
    """A routing priority per item (higher first): ``items`` are ``(recommendation, generators
    it shows)`` (one generator for Likert, two for pairwise) with their rating ``counts``.

    0 for an item that no unsettled pair needs. Otherwise 2 for an item whose partner (another
    item of the same recommendation showing the other generator of an unsettled pair) has more
    ratings than it, so that pair of items can be compared, else 1."""
    unsettled = ranking.unsettled_pairs
    if not unsettled:
        return [0] * len(items)
    involved = {system for pair in unsettled for system in pair}
    by_recommendation: dict[Hashable, dict[Hashable, int]] = defaultdict(dict)
    for (recommendation, systems), count in zip(items, counts, strict=True):
        if len(systems) == 1:
            (system,) = systems
            by_recommendation[recommendation][system] = count
    result = []
    for (recommendation, systems), count in zip(items, counts, strict=True):
        if len(systems) == 2:
            result.append(1 if frozenset(systems) in unsettled else 0)
            continue
        (system,) = systems
        if system not in involved:
            result.append(0)
            continue
        partners = [
            by_recommendation[recommendation].get(other, 0)
            for pair in unsettled
            if system in pair
            for other in pair
            if other != system
        ]
        result.append(2 if any(partner > count for partner in partners) else 1)
    return result
