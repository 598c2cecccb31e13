"""Pairwise comparisons: win/tie/loss shares, Bradley-Terry strengths and a judge's position bias.

The conventions on intervals, seeds and degenerate input are those of ``bootstrap``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]
from scipy.special import expit  # type: ignore[import-untyped]

from annotation.study.stats.bootstrap import (
    DEFAULT_RESAMPLES,
    FloatArray,
    IndexArray,
    Interval,
    counts_bootstrap_intervals,
    share_of,
)
from explanations.judging import combine_orders

OUTCOMES = ("a", "b", "tie", "unparsed")
VERDICTS = ("first", "second", "tie")


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
    estimates: list[float | None] = [share_of(counts[name], n) for name in OUTCOMES]
    net = None if n == 0 else counts["a"] / n - counts["b"] / n

    def shares(resampled: FloatArray) -> FloatArray:
        means = resampled.T / n  # (4, batch)
        return np.vstack([means, means[0] - means[1]])

    # The shares depend only on the outcome counts, so the resamples are multinomial counts.
    a, b, tie, unparsed, net_interval = counts_bootstrap_intervals(
        frequencies,
        shares,
        [*estimates, net],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        degenerate=n > 0 and len(set(outcomes)) == 1,
    )
    return WinTieLoss(n=n, counts=counts, a=a, b=b, tie=tie, unparsed=unparsed, net=net_interval)


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

    rows = _comparison_rows(comparisons, index, ties)
    pair_i = np.array([r[0] for r in rows], dtype=np.intp)
    pair_j = np.array([r[1] for r in rows], dtype=np.intp)
    wins_ij = np.array([r[2] for r in rows], dtype=np.float64)
    wins_ji = np.array([r[3] for r in rows], dtype=np.float64)
    appearances = np.bincount(pair_i, minlength=k) + np.bincount(pair_j, minlength=k)
    if k and np.any(appearances == 0):
        missing = [names[s] for s in np.flatnonzero(appearances == 0)]
        raise ValueError(f"systems without comparisons (after ties={ties!r}): {missing}")

    kind_wins, frequencies = _comparison_kinds(pair_i, pair_j, wins_ij, wins_ji, k)
    wins = (frequencies @ kind_wins).reshape(k, k).astype(np.float64)
    if alpha == 0 and k > 1 and connected_components(wins > 0, directed=True, connection="strong")[0] != 1:
        raise ValueError("the MLE does not exist: some group of systems never lost to the rest; use alpha > 0")
    theta = _bradley_terry_fit(wins, alpha) if k else np.zeros(0)

    def strengths(counts: FloatArray) -> FloatArray:
        # Every resample's optimum lies near the full-data one: start all fits there.
        return _bradley_terry_fits((counts @ kind_wins).reshape(-1, k, k), alpha, theta).T

    intervals = counts_bootstrap_intervals(
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


def _comparison_rows(
    comparisons: Sequence[tuple[str, str] | tuple[str, str, str]], index: dict[str, int], ties: str
) -> list[tuple[int, int, float, float]]:
    """One row per comparison kept: (i, j, wins of i over j, wins of j over i), ties split in
    half or dropped as ``ties`` says; ValueError for unknown systems and outcomes."""
    names = list(index)
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
    return rows


def _comparison_kinds(
    pair_i: IndexArray, pair_j: IndexArray, wins_ij: FloatArray, wins_ji: FloatArray, k: int
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The distinct comparison kinds as rows of flattened k x k win matrices, and how often
    each kind occurs: the win matrix of any multiset of comparisons is counts @ kind_wins."""
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
    return kind_wins, frequencies


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
    estimates: list[float | None] = [share_of(counts[name], 2 * n) for name in slots]
    estimates.append(share_of(float(frequencies @ kind_disagree), n_parsed))

    def statistic(resampled: FloatArray) -> FloatArray:
        shares = (resampled @ kind_slots).T / (2 * n)  # (slots, batch)
        both = resampled @ kind_parsed
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(both > 0, (resampled @ kind_disagree) / both, np.nan)
        return np.vstack([shares, rate])

    first, second, tie, unparsed, disagreement = counts_bootstrap_intervals(
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
