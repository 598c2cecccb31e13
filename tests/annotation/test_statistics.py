"""The statistics layer: estimates checked by hand or against reference packages, intervals
checked for reproducibility, and the degenerate cases checked for honest answers."""

import math
import time
from typing import Literal

import choix
import krippendorff
import numpy as np
import pytest
import scipy.stats  # type: ignore[import-untyped]

from annotation.study.stats.agreement import (
    _unique_rows,
    alpha_of_answers,
    alpha_with_ci,
    alphas_of_answers,
    cohen_kappa,
)
from annotation.study.stats.agreement import alpha as package_alpha
from annotation.study.stats.bootstrap import (
    Interval,
    accuracy_with_ci,
    bootstrap_ci,
    discrete_summary,
    majority_baseline,
    mean_median_summary,
)
from annotation.study.stats.correlations import kendall_tau, spearman_rho
from annotation.study.stats.pairwise import (
    BradleyTerry,
    _bradley_terry_fit,
    _bradley_terry_fits,
    bradley_terry,
    position_bias,
    win_tie_loss,
)
from tests.annotation.test_agreement import KRIPPENDORFF_EXAMPLE

LIKERT = [1, 2, 2, 3, 3, 3, 4, 4, 5, 7, 2, 3, 6, 4, 3]


def _random_comparisons(seed: int, n_systems: int = 4, n: int = 200) -> list[tuple[int, int]]:
    """Seeded (winner, loser) index pairs drawn from a true Bradley-Terry model."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=n_systems)
    data = []
    for _ in range(n):
        i, j = rng.choice(n_systems, size=2, replace=False)
        data.append((int(i), int(j)) if rng.random() < 1 / (1 + math.exp(true[j] - true[i])) else (int(j), int(i)))
    return data


def _estimates(fit: BradleyTerry, names: list[str]) -> list[float]:
    values = [fit.strengths[name].estimate for name in names]
    assert all(v is not None for v in values)
    return [float(v or 0.0) for v in values]


# --- bootstrap_ci ----------------------------------------------------------------------------


def test_bootstrap_ci_is_scipys_percentile_interval_under_the_same_seed() -> None:
    values = np.array(LIKERT, dtype=float)

    for statistic in (np.mean, np.median):
        ours = bootstrap_ci(values, statistic, n_resamples=500, seed=7)
        reference = scipy.stats.bootstrap(
            (values,), statistic, n_resamples=500, method="percentile", rng=np.random.default_rng(7)
        ).confidence_interval

        assert ours.estimate == pytest.approx(float(statistic(values)))
        assert (ours.low, ours.high) == pytest.approx((reference.low, reference.high), abs=1e-12)
        assert ours.n == len(values) and ours.undefined_resamples == 0


def test_bootstrap_ci_same_seed_gives_identical_interval_and_another_seed_generally_differs() -> None:
    first = bootstrap_ci(LIKERT, n_resamples=300, seed=1)
    again = bootstrap_ci(LIKERT, n_resamples=300, seed=1)
    others = [bootstrap_ci(LIKERT, n_resamples=300, seed=s) for s in range(2, 6)]

    assert first == again
    assert any((other.low, other.high) != (first.low, first.high) for other in others)


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_lower_confidence() -> None:
    wide = bootstrap_ci(LIKERT, confidence=0.95, n_resamples=400, seed=0)
    narrow = bootstrap_ci(LIKERT, confidence=0.5, n_resamples=400, seed=0)

    assert wide.low is not None and wide.high is not None and wide.estimate is not None
    assert narrow.low is not None and narrow.high is not None
    assert wide.low <= narrow.low <= wide.estimate <= narrow.high <= wide.high
    assert narrow.confidence == 0.5


def test_bootstrap_ci_covers_a_known_mean_about_as_often_as_it_claims() -> None:
    rng = np.random.default_rng(123)
    covered = 0
    for trial in range(100):
        sample = rng.normal(loc=2.0, scale=1.0, size=40)
        interval = bootstrap_ci(sample, n_resamples=300, seed=trial)
        assert interval.low is not None and interval.high is not None
        covered += interval.low <= 2.0 <= interval.high
    assert 85 <= covered <= 100  # nominal 95; the percentile interval runs a little narrow at n=40


def test_bootstrap_ci_degenerate_samples_get_honest_answers() -> None:
    assert bootstrap_ci([]) == Interval(None, None, None, 0)
    assert bootstrap_ci([4.0]) == Interval(4.0, None, None, 1)  # one value says nothing about spread
    assert bootstrap_ci([3.0, 3.0, 3.0]) == Interval(3.0, 3.0, 3.0, 3)  # the bootstrap sees no variation
    assert bootstrap_ci([1.0, 2.0], n_resamples=0) == Interval(1.5, None, None, 2)


def test_bootstrap_ci_rejects_missing_values_and_bad_arguments() -> None:
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=-1)


def test_interval_to_dict_holds_every_field() -> None:
    assert Interval(0.5, 0.25, 0.75, 10, 0.9, 2).to_dict() == {
        "estimate": 0.5,
        "low": 0.25,
        "high": 0.75,
        "n": 10,
        "confidence": 0.9,
        "undefined_resamples": 2,
    }


# --- mean_median_summary -----------------------------------------------------------------------


def test_mean_median_summary_counts_every_scale_point_including_unused_ones() -> None:
    summary = mean_median_summary(LIKERT, scale=range(1, 8), n_resamples=200, seed=0)

    assert summary.n == 15
    assert summary.distribution == {1: 1, 2: 3, 3: 5, 4: 3, 5: 1, 6: 1, 7: 1}
    assert summary.mean.estimate == pytest.approx(52 / 15)
    assert summary.median.estimate == 3.0
    assert list(mean_median_summary([5, 1, 5], n_resamples=0).distribution.items()) == [(1.0, 1), (5.0, 2)]
    assert mean_median_summary([2, 2], scale=[1, 2, 3], n_resamples=0).distribution == {1: 0, 2: 2, 3: 0}


def test_mean_median_summary_draws_the_same_resamples_as_bootstrap_ci() -> None:
    summary = mean_median_summary(LIKERT, scale=range(1, 8), n_resamples=300, seed=5)

    assert summary.mean == bootstrap_ci(LIKERT, np.mean, n_resamples=300, seed=5)
    assert summary.median == bootstrap_ci(LIKERT, np.median, n_resamples=300, seed=5)
    assert summary.to_dict()["mean"] == summary.mean.to_dict()


def test_mean_median_summary_rejects_values_off_the_scale_and_handles_no_ratings() -> None:
    with pytest.raises(ValueError, match="off the scale"):
        mean_median_summary([1, 2, 8], scale=range(1, 8))

    empty = mean_median_summary([], scale=range(1, 4))
    assert empty.n == 0 and empty.mean.estimate is None and empty.median.estimate is None
    assert empty.distribution == {1: 0, 2: 0, 3: 0}


# --- discrete_summary ---------------------------------------------------------------------------


def test_discrete_summary_has_mean_median_summarys_estimates_and_distribution() -> None:
    rng = np.random.default_rng(3)
    for n in (15, 300, 301):  # even n: the median averages the two middle values
        values = rng.integers(1, 8, size=n)
        fast = discrete_summary(values, scale=range(1, 8), n_resamples=50, seed=0)
        slow = mean_median_summary(values, scale=range(1, 8), n_resamples=50, seed=0)

        assert (fast.n, fast.distribution) == (slow.n, slow.distribution)
        assert fast.mean.estimate == slow.mean.estimate and fast.median.estimate == slow.median.estimate
    assert discrete_summary([1, 2, 2, 3], scale=[1, 2, 3], n_resamples=0).median.estimate == 2.0
    assert discrete_summary([1, 1, 3, 3], scale=[1, 2, 3], n_resamples=0).median.estimate == 2.0


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.95])
def test_discrete_summary_intervals_agree_with_resampling_the_values_within_monte_carlo_error(
    confidence: float,
) -> None:
    # Same distribution, different random stream: compare with a tolerance, not exactly. A
    # skewed sample of even size makes the median resamples land on and between scale points.
    values = [1] * 90 + [2] * 60 + [3] * 50 + [4] * 40 + [5] * 30 + [6] * 20 + [7] * 10
    fast = discrete_summary(values, scale=range(1, 8), confidence=confidence, n_resamples=4000, seed=1)
    slow = mean_median_summary(values, scale=range(1, 8), confidence=confidence, n_resamples=4000, seed=2)

    assert fast.mean.low == pytest.approx(slow.mean.low, abs=0.04)
    assert fast.mean.high == pytest.approx(slow.mean.high, abs=0.04)
    assert fast.median.low == pytest.approx(slow.median.low, abs=0.5 + 1e-9)
    assert fast.median.high == pytest.approx(slow.median.high, abs=0.5 + 1e-9)
    assert fast.mean.n == fast.median.n == 300


def test_discrete_summary_degenerate_and_malformed_input_as_mean_median_summary() -> None:
    assert discrete_summary([], scale=range(1, 4)) == mean_median_summary([], scale=range(1, 4))
    assert discrete_summary([4], scale=range(1, 6)) == mean_median_summary([4], scale=range(1, 6))
    assert discrete_summary([3, 3, 3], scale=range(1, 6)) == mean_median_summary([3, 3, 3], scale=range(1, 6))
    with pytest.raises(ValueError, match="off the scale"):
        discrete_summary([1, 2, 8], scale=range(1, 8))
    with pytest.raises(ValueError, match="finite"):
        discrete_summary([1.0, float("nan")], scale=range(1, 8))
    assert discrete_summary([1, 2, 3], scale=range(1, 4), n_resamples=100, seed=4) == discrete_summary(
        [1, 2, 3], scale=range(1, 4), n_resamples=100, seed=4
    )


def test_discrete_summary_of_100k_ratings_takes_milliseconds() -> None:
    values = np.random.default_rng(0).integers(1, 11, size=100_000)

    start = time.perf_counter()
    summary = discrete_summary(values, scale=range(1, 11), n_resamples=2000, seed=0)
    elapsed = time.perf_counter() - start

    print(f"discrete_summary, 100k ratings, 2000 resamples: {elapsed * 1000:.1f} ms")
    assert summary.mean.low is not None and summary.mean.low < (summary.mean.estimate or 0) < (summary.mean.high or 0)
    assert elapsed < 0.5  # about 20 ms; generous for a busy machine


# --- win_tie_loss -------------------------------------------------------------------------------


def test_win_tie_loss_shares_keep_unparsed_items_in_the_denominator() -> None:
    outcomes = ["a"] * 5 + ["b"] * 2 + ["tie"] * 2 + ["unparsed"]

    result = win_tie_loss(outcomes, n_resamples=300, seed=0)

    assert result.n == 10
    assert result.counts == {"a": 5, "b": 2, "tie": 2, "unparsed": 1}
    assert (result.a.estimate, result.b.estimate, result.tie.estimate, result.unparsed.estimate) == (0.5, 0.2, 0.2, 0.1)
    assert result.net.estimate == pytest.approx(0.3)
    for interval in (result.a, result.b, result.tie, result.unparsed):
        assert interval.low is not None and interval.high is not None and interval.estimate is not None
        assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
    assert result.net.low is not None and result.net.low < 0.3 < (result.net.high or 0)


def test_win_tie_loss_is_reproducible_under_a_seed() -> None:
    outcomes = ["a", "b", "tie", "a", "a", "b", "unparsed", "a", "tie", "b", "a", "a"]

    assert win_tie_loss(outcomes, n_resamples=200, seed=3) == win_tie_loss(outcomes, n_resamples=200, seed=3)
    assert win_tie_loss(outcomes, n_resamples=200, seed=3).to_dict()["a"]["n"] == 12


def test_win_tie_loss_rejects_unknown_outcomes_and_handles_no_items() -> None:
    with pytest.raises(ValueError, match="unknown outcomes"):
        win_tie_loss(["a", "A", "draw"])

    empty = win_tie_loss([])
    assert empty.n == 0 and empty.a.estimate is None and empty.net.estimate is None
    unanimous = win_tie_loss(["a", "a", "a"])
    assert (unanimous.a.low, unanimous.a.high, unanimous.b.low, unanimous.b.high) == (1.0, 1.0, 0.0, 0.0)


def test_win_tie_loss_and_bradley_terry_of_30k_outcomes_stay_fast() -> None:
    rng = np.random.default_rng(0)
    outcomes = [str(o) for o in rng.choice(["a", "b", "tie", "unparsed"], size=30_000, p=[0.4, 0.3, 0.25, 0.05])]
    names = ["p", "q", "r", "s", "t"]
    pairs = [rng.choice(5, size=2, replace=False) for _ in range(30_000)]
    comparisons = [(names[i], names[j], o) for (i, j), o in zip(pairs, outcomes, strict=True) if o != "unparsed"]

    start = time.perf_counter()
    shares = win_tie_loss(outcomes, n_resamples=1000, seed=0)
    middle = time.perf_counter()
    fit = bradley_terry(comparisons, names, n_resamples=1000, seed=0)
    end = time.perf_counter()

    print(f"win_tie_loss 30k: {(middle - start) * 1000:.1f} ms; bradley_terry 30k: {(end - middle) * 1000:.1f} ms")
    assert shares.a.low is not None and shares.a.low < 0.4 < (shares.a.high or 0)
    assert all(fit.strengths[name].low is not None for name in names)
    assert middle - start < 0.2 and end - middle < 3.0  # about 5 ms and 300 ms


def test_win_tie_loss_intervals_match_resampling_the_items_within_monte_carlo_error() -> None:
    outcomes = ["a"] * 40 + ["b"] * 30 + ["tie"] * 25 + ["unparsed"] * 5
    reference = np.array([[o == name for o in outcomes] for name in ("a", "b")], dtype=float)

    result = win_tie_loss(outcomes, n_resamples=4000, seed=0)
    a_share = bootstrap_ci(reference[0], n_resamples=4000, seed=1)
    net = bootstrap_ci(reference[0] - reference[1], n_resamples=4000, seed=1)

    assert (result.a.low, result.a.high) == pytest.approx((a_share.low, a_share.high), abs=0.015)
    assert (result.net.low, result.net.high) == pytest.approx((net.low, net.high), abs=0.025)


# --- accuracy_with_ci and majority_baseline ----------------------------------------------------------


def test_accuracy_with_ci_is_the_share_correct_with_an_interval() -> None:
    accuracy = accuracy_with_ci([True, True, False, True] * 5, n_resamples=300, seed=0)

    assert accuracy.estimate == 0.75 and accuracy.n == 20
    assert accuracy.low is not None and accuracy.high is not None and accuracy.low < 0.75 < accuracy.high
    assert accuracy_with_ci([True] * 10) == Interval(1.0, 1.0, 1.0, 10)
    assert accuracy_with_ci([]).estimate is None
    with pytest.raises(ValueError, match="unparseable answers as False"):
        accuracy_with_ci([True, None, False])  # type: ignore[list-item]


def test_majority_baseline_breaks_ties_by_sort_order_not_input_order() -> None:
    assert majority_baseline(["drama", "comedy", "drama", "action"]) == ("drama", 0.5)
    assert majority_baseline(["drama", "comedy", "comedy", "drama"]) == ("comedy", 0.5)
    assert majority_baseline(["comedy", "drama", "drama", "comedy"]) == ("comedy", 0.5)
    assert majority_baseline([]) == (None, None)


# --- bradley_terry -------------------------------------------------------------------------------


def test_bradley_terry_two_systems_give_the_analytic_mle() -> None:
    # With two systems the MLE solves p(A beats B) = wins_A / n: log-strength gap log(7/3).
    comparisons = [("A", "B")] * 7 + [("B", "A")] * 3

    fit = bradley_terry(comparisons, ["A", "B"], alpha=0.0, n_resamples=0)

    assert fit.strengths["A"].estimate == pytest.approx(math.log(7 / 3) / 2, abs=1e-10)
    assert fit.strengths["B"].estimate == pytest.approx(-math.log(7 / 3) / 2, abs=1e-10)
    assert fit.win_probability("A", "B") == pytest.approx(0.7, abs=1e-10)
    assert fit.n_comparisons == 10 and fit.strengths["A"].n == 10


def test_bradley_terry_counts_a_tie_as_half_a_win_for_each_side_or_drops_it() -> None:
    comparisons = [("A", "B", "a")] * 6 + [("A", "B", "b")] * 2 + [("B", "A", "tie")] * 2

    halves = bradley_terry(comparisons, ["A", "B"], alpha=0.0, n_resamples=0)
    dropped = bradley_terry(comparisons, ["A", "B"], ties="drop", alpha=0.0, n_resamples=0)

    assert halves.win_probability("A", "B") == pytest.approx(7 / 10, abs=1e-10)
    assert dropped.win_probability("A", "B") == pytest.approx(6 / 8, abs=1e-10)
    assert (halves.n_comparisons, dropped.n_comparisons) == (10, 8)


def test_bradley_terry_matches_choix_on_random_comparisons() -> None:
    data = _random_comparisons(seed=11)
    names = ["w", "x", "y", "z"]
    comparisons = [(names[i], names[j]) for i, j in data]

    for alpha in (0.01, 0.5):
        ours = bradley_terry(comparisons, names, alpha=alpha, n_resamples=0)
        theirs = choix.opt_pairwise(4, data, alpha=alpha, tol=1e-10)
        np.testing.assert_allclose(_estimates(ours, names), theirs - theirs.mean(), atol=1e-4)

    mle = bradley_terry(comparisons, names, alpha=0.0, n_resamples=0)
    spectral = choix.ilsr_pairwise(4, data, alpha=0.0, tol=1e-12)
    np.testing.assert_allclose(_estimates(mle, names), spectral - spectral.mean(), atol=1e-4)


def test_bradley_terry_half_ties_equal_choix_on_data_with_each_tie_as_one_win_each_way() -> None:
    # Counting every comparison twice and a tie as one win each way doubles our objective,
    # penalty included, so choix with 2 * alpha must land on the same strengths.
    data = _random_comparisons(seed=4, n=120)
    names = ["p", "q", "r", "s"]
    comparisons: list[tuple[str, str] | tuple[str, str, str]] = [(names[i], names[j]) for i, j in data[:90]]
    comparisons += [(names[i], names[j], "tie") for i, j in data[90:]]
    doubled = [pair for pair in data[:90] for _ in range(2)] + [p for i, j in data[90:] for p in ((i, j), (j, i))]

    ours = bradley_terry(comparisons, names, alpha=0.05, n_resamples=0)
    theirs = choix.opt_pairwise(4, doubled, alpha=0.1, tol=1e-10)

    np.testing.assert_allclose(_estimates(ours, names), theirs - theirs.mean(), atol=1e-4)


def test_bradley_terry_stays_finite_on_perfectly_separated_data_only_with_a_prior() -> None:
    comparisons = [("A", "B")] * 10 + [("B", "C")] * 10

    fit = bradley_terry(comparisons, ["A", "B", "C"], n_resamples=0)

    a, b, c = _estimates(fit, ["A", "B", "C"])
    assert all(math.isfinite(s) for s in (a, b, c))
    assert a > b > c
    with pytest.raises(ValueError, match="MLE does not exist"):
        bradley_terry(comparisons, ["A", "B", "C"], alpha=0.0, n_resamples=0)
    with pytest.raises(ValueError, match="n_resamples=0"):
        bradley_terry(comparisons, ["A", "B", "C"], alpha=0.0)


def test_bradley_terry_intervals_are_centred_reproducible_and_contain_the_estimates() -> None:
    data = _random_comparisons(seed=2, n=80)
    names = ["w", "x", "y", "z"]
    comparisons = [(names[i], names[j]) for i, j in data]

    fit = bradley_terry(comparisons, names, n_resamples=150, seed=9)
    again = bradley_terry(comparisons, names, n_resamples=150, seed=9)
    other = bradley_terry(comparisons, names, n_resamples=150, seed=10)

    assert fit == again and fit.to_dict() == again.to_dict()
    assert fit.strengths != other.strengths
    assert sum(fit.strengths[n].estimate or 0.0 for n in names) == pytest.approx(0.0, abs=1e-9)
    for name in names:
        interval = fit.strengths[name]
        assert interval.low is not None and interval.high is not None and interval.estimate is not None
        assert interval.low <= interval.estimate <= interval.high
        assert interval.n == sum(name in pair for pair in comparisons)


def test_bradley_terry_rejects_comparisons_it_cannot_place() -> None:
    with pytest.raises(ValueError, match="not in"):
        bradley_terry([("A", "Z")], ["A", "B"])
    with pytest.raises(ValueError, match="itself"):
        bradley_terry([("A", "A")], ["A", "B"])
    with pytest.raises(ValueError, match="outcome"):
        bradley_terry([("A", "B", "unparsed")], ["A", "B"])
    with pytest.raises(ValueError, match="without comparisons"):
        bradley_terry([("A", "B")], ["A", "B", "C"])
    with pytest.raises(ValueError, match="without comparisons"):
        bradley_terry([("A", "B", "tie"), ("A", "C")], ["A", "B", "C"], ties="drop")


def test_batched_bradley_terry_fits_equal_one_fit_per_matrix_from_any_start() -> None:
    rng = np.random.default_rng(0)
    stack = rng.poisson(3.0, size=(40, 4, 4)).astype(float) * (1.0 - np.eye(4))
    stack[0] = np.triu(np.full((4, 4), 5.0), k=1)  # perfectly separated: only the prior keeps it finite
    stack[1] = 0.5  # ties only (and a diagonal, which no fit reads)
    for start in (np.zeros(4), np.array([6.0, -6.0, 3.0, -3.0])):  # the far start needs the line search
        batched = _bradley_terry_fits(stack, 0.01, start)
        for matrix, fitted in zip(stack, batched, strict=True):
            assert fitted == pytest.approx(_bradley_terry_fit(matrix, 0.01), abs=1e-9)


def test_bradley_terry_intervals_equal_refitting_each_resample_alone_under_the_same_draws() -> None:
    data = _random_comparisons(seed=3, n_systems=4, n=120)
    names = ["w", "x", "y", "z"]
    outcomes = ["a", "b", "tie"]
    comparisons = [(names[i], names[j], outcomes[k % 3]) for k, (i, j) in enumerate(data)]

    fit = bradley_terry(comparisons, names, n_resamples=300, seed=4)

    # The plain loop: the same multinomial draws over the (i, j, wins each way) kinds, in the
    # kinds' sorted order, and one fit per resample from zero.
    share = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}
    rows = np.array([(names.index(a), names.index(b), *share[o]) for a, b, o in comparisons])
    kinds, frequencies = np.unique(rows, axis=0, return_counts=True)
    draws = np.random.default_rng(4).multinomial(len(rows), frequencies / len(rows), size=300)
    refits = []
    for counts in draws:
        wins = np.zeros((4, 4))
        for (i, j, won, lost), count in zip(kinds, counts, strict=True):
            wins[int(i), int(j)] += count * won
            wins[int(j), int(i)] += count * lost
        refits.append(_bradley_terry_fit(wins, 0.01))
    low, high = np.quantile(np.array(refits), [0.025, 0.975], axis=0)
    for s, name in enumerate(names):
        assert fit.strengths[name].low == pytest.approx(low[s], abs=1e-9)
        assert fit.strengths[name].high == pytest.approx(high[s], abs=1e-9)


# --- cohen_kappa, kendall_tau, spearman_rho -----------------------------------------------------------


def _raters(both_yes: int, a_yes_b_no: int, a_no_b_yes: int, both_no: int) -> tuple[list[str], list[str]]:
    a = ["yes"] * (both_yes + a_yes_b_no) + ["no"] * (a_no_b_yes + both_no)
    b = ["yes"] * both_yes + ["no"] * a_yes_b_no + ["yes"] * a_no_b_yes + ["no"] * both_no
    return a, b


def test_cohen_kappa_matches_the_wikipedia_worked_examples() -> None:
    # https://en.wikipedia.org/wiki/Cohen%27s_kappa: the 50-proposal example, then the two
    # tables with equal agreement (60%) but different marginals.
    assert cohen_kappa(*_raters(20, 5, 10, 15)) == pytest.approx(0.4)
    assert cohen_kappa(*_raters(45, 15, 25, 15)) == pytest.approx(0.1304, abs=1e-4)
    assert cohen_kappa(*_raters(25, 35, 5, 35)) == pytest.approx(0.2593, abs=1e-4)


def test_cohen_kappa_edge_cases() -> None:
    assert cohen_kappa(["x", "y", "z"], ["x", "y", "z"]) == pytest.approx(1.0)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # chance agreement is 1: undefined
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa(["x"], ["x", "y"])


def test_rank_correlations_match_hand_values_and_scipy() -> None:
    tau = kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])
    rho = spearman_rho([1, 2, 3, 4], [1, 3, 2, 4])

    assert tau.statistic == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair
    assert rho.statistic == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    x, y = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0]
    assert kendall_tau(x, y).pvalue == pytest.approx(scipy.stats.kendalltau(x, y).pvalue)
    assert spearman_rho(x, y).pvalue == pytest.approx(scipy.stats.spearmanr(x, y).pvalue)
    assert tau.n == 4 and tau.to_dict()["n"] == 4


def test_rank_correlations_are_none_for_too_few_points_or_constant_input() -> None:
    for correlation in (kendall_tau, spearman_rho):
        assert correlation([1, 2], [2, 1]).statistic is None
        constant = correlation([1, 2, 3], [5, 5, 5])
        assert (constant.statistic, constant.pvalue, constant.n) == (None, None, 3)
        with pytest.raises(ValueError, match="differ in length"):
            correlation([1, 2, 3], [1, 2])


# --- alpha_with_ci -------------------------------------------------------------------------------


def test_alpha_with_ci_reproduces_the_published_krippendorff_example() -> None:
    published: list[tuple[Literal["nominal", "ordinal", "interval"], float]] = [
        ("interval", 0.849),
        ("nominal", 0.743),
        ("ordinal", 0.815),
    ]
    for level, value in published:
        result = alpha_with_ci(KRIPPENDORFF_EXAMPLE, level, n_resamples=150, seed=0)

        assert result.estimate == pytest.approx(value, abs=1e-3)
        assert result.low is not None and result.high is not None and result.estimate is not None
        assert result.low <= result.estimate <= result.high <= 1.0
        assert result.n == 11  # the last unit has a single answer: nothing to pair


def test_alpha_with_ci_is_reproducible_under_a_seed() -> None:
    first = alpha_with_ci(KRIPPENDORFF_EXAMPLE, "interval", n_resamples=150, seed=4)

    assert first == alpha_with_ci(KRIPPENDORFF_EXAMPLE, "interval", n_resamples=150, seed=4)
    assert first != alpha_with_ci(KRIPPENDORFF_EXAMPLE, "interval", n_resamples=150, seed=5)


def test_alpha_with_ci_ignores_units_with_a_single_answer() -> None:
    lonely = np.full((4, 3), np.nan)
    lonely[0, 0], lonely[2, 1], lonely[3, 2] = 1.0, 5.0, 2.0
    padded = np.hstack([lonely[:, :1], KRIPPENDORFF_EXAMPLE, lonely[:, 1:]])

    assert alpha_with_ci(padded, "ordinal", [1.0, 2.0, 3.0, 4.0, 5.0], n_resamples=100, seed=1) == alpha_with_ci(
        KRIPPENDORFF_EXAMPLE, "ordinal", [1.0, 2.0, 3.0, 4.0, 5.0], n_resamples=100, seed=1
    )


def test_alpha_with_ci_counts_resamples_without_variation_and_reports_undefined_alpha() -> None:
    # Two of four units agree on 1 and one on 2: about (1/2)^4 + (1/4)^4 of the resamples hold no variation.
    matrix = np.array([[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 1.0]])
    result = alpha_with_ci(matrix, "nominal", n_resamples=200, seed=0)

    assert result.estimate is not None and result.undefined_resamples > 0
    assert result.low is not None and result.high is not None
    assert alpha_with_ci(np.array([[3.0, 3.0], [3.0, 3.0]]), "interval", n_resamples=50) == Interval(
        None, None, None, 2
    )


# --- position_bias -------------------------------------------------------------------------------


def test_position_bias_counts_a_win_only_when_both_orders_agree() -> None:
    verdicts: list[tuple[str | None, str | None]] = [
        ("first", "second"),  # A both times
        ("second", "first"),  # B both times
        ("first", "first"),  # the first slot both times: disagreement
        ("second", "second"),  # the second slot both times: disagreement
        ("tie", "tie"),  # a consistent tie
        ("first", "tie"),  # A once, tie once: disagreement
    ]

    result = position_bias(verdicts, n_resamples=0)

    assert result.outcomes == ("a", "b", "tie", "tie", "tie", "tie")
    assert result.counts == {"first": 5, "second": 4, "tie": 3, "unparsed": 0}
    assert (result.first.estimate, result.second.estimate, result.tie.estimate) == (5 / 12, 4 / 12, 3 / 12)
    assert result.disagreement.estimate == pytest.approx(3 / 6) and result.disagreement.n == 6


def test_position_bias_reports_unparseable_verdicts_apart_and_never_as_ties() -> None:
    verdicts: list[tuple[str | None, str | None]] = [
        ("first", "second"),
        (None, "second"),
        ("tie", None),
        (None, None),
        ("second", "second"),
    ]

    result = position_bias(verdicts, n_resamples=200, seed=0)

    assert result.outcomes == ("a", "unparsed", "unparsed", "unparsed", "tie")
    assert result.counts == {"first": 1, "second": 4, "tie": 1, "unparsed": 4}
    assert result.unparsed.estimate == pytest.approx(4 / 10) and result.n == 5
    assert result.disagreement.estimate == pytest.approx(1 / 2) and result.disagreement.n == 2
    assert result.disagreement.undefined_resamples > 0  # some resamples hold no fully parsed item
    assert win_tie_loss(result.outcomes, n_resamples=0).unparsed.estimate == pytest.approx(3 / 5)


def test_position_bias_without_any_fully_parsed_item_has_no_disagreement_rate() -> None:
    result = position_bias([(None, "first"), ("tie", None), (None, None)], n_resamples=100, seed=0)

    assert result.disagreement == Interval(None, None, None, 0)
    assert result.unparsed.estimate == pytest.approx(4 / 6)
    assert result.unparsed.low is not None and result.unparsed.high is not None
    assert result.outcomes == ("unparsed", "unparsed", "unparsed")


def test_position_bias_of_a_judge_that_always_answers_first() -> None:
    result = position_bias([("first", "first")] * 8, n_resamples=100, seed=0)

    assert result.first == Interval(1.0, 1.0, 1.0, 8)
    assert result.disagreement.estimate == 1.0
    assert set(result.outcomes) == {"tie"}
    assert result.to_dict()["counts"] == {"first": 16, "second": 0, "tie": 0, "unparsed": 0}


def test_position_bias_is_reproducible_and_rejects_unknown_verdicts() -> None:
    verdicts: list[tuple[str | None, str | None]] = [("first", "second"), ("second", "second"), ("tie", None)] * 4

    assert position_bias(verdicts, n_resamples=100, seed=2) == position_bias(verdicts, n_resamples=100, seed=2)
    with pytest.raises(ValueError, match="not one of"):
        position_bias([("1", "2")])
    empty = position_bias([])
    assert empty.n == 0 and empty.first.estimate is None and empty.disagreement.estimate is None


# --- alpha_with_ci on coincidence matrices ---------------------------------------------------------


def _refitted_alpha_interval(
    matrix: np.ndarray,
    level: Literal["nominal", "ordinal", "interval"],
    value_domain: list[float] | None,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> tuple[float, float]:
    """The former alpha_with_ci: refit the package's alpha on every resample of the pairable units."""
    pairable = matrix[:, np.sum(~np.isnan(matrix), axis=0) >= 2]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        value = package_alpha(
            pairable[:, rng.integers(0, pairable.shape[1], size=pairable.shape[1])], level, value_domain
        )
        if value is not None:
            draws.append(value)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return float(low), float(high)


def _sparse_ratings(seed: int, coders: int, units: int, scale: int, missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, scale + 1, size=units)
    matrix = np.clip(truth + rng.integers(-1, 2, size=(coders, units)), 1, scale).astype(float)
    matrix[rng.random(matrix.shape) < missing] = np.nan
    return matrix


def test_alpha_with_ci_estimate_equals_the_krippendorff_package() -> None:
    levels: list[Literal["nominal", "ordinal", "interval"]] = ["nominal", "ordinal", "interval"]
    for level in levels:
        expected = krippendorff.alpha(KRIPPENDORFF_EXAMPLE, level_of_measurement=level)
        assert alpha_with_ci(KRIPPENDORFF_EXAMPLE, level, n_resamples=0).estimate == pytest.approx(expected, abs=1e-9)
    for seed in range(8):
        matrix = _sparse_ratings(seed, coders=6, units=40, scale=5, missing=0.5)
        matrix[0, :3] = 0.0  # a value no other answer uses
        cases: list[tuple[Literal["nominal", "ordinal", "interval"], list[float] | None]] = [
            ("nominal", None),
            ("interval", None),
            ("ordinal", None),
            ("ordinal", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),  # unused scale points
            ("ordinal", [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]),  # the domain's own order
        ]
        for level, domain in cases:
            expected = krippendorff.alpha(matrix, level_of_measurement=level, value_domain=domain)
            ours = alpha_with_ci(matrix, level, domain, n_resamples=0).estimate
            assert ours == pytest.approx(expected, abs=1e-9), (seed, level, domain)


def test_alpha_with_ci_is_undefined_for_values_outside_the_domain_as_the_package_says() -> None:
    matrix = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 9.0]])

    assert alpha_with_ci(matrix, "ordinal", [1.0, 2.0, 3.0], n_resamples=50) == Interval(None, None, None, 3)
    assert alpha_with_ci(np.array([[3.0, 3.0], [3.0, 3.0]]), "ordinal", [1.0, 2.0, 3.0], n_resamples=50) == Interval(
        None, None, None, 2
    )


def test_alpha_with_ci_keeps_refitting_values_beyond_a_small_finite_domain() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(3, 60)).round(3) + np.arange(60)  # about 180 distinct values
    matrix[rng.random(matrix.shape) < 0.2] = np.nan

    result = alpha_with_ci(matrix, "interval", n_resamples=40, seed=0)

    assert result.estimate == pytest.approx(krippendorff.alpha(matrix, level_of_measurement="interval"), abs=1e-9)
    assert result.low is not None and result.high is not None


@pytest.mark.parametrize(
    ("level", "domain"),
    [("nominal", None), ("ordinal", [1.0, 2.0, 3.0, 4.0, 5.0]), ("interval", None)],
)
def test_alpha_with_ci_interval_agrees_with_refitting_every_resample_within_monte_carlo_error(
    level: Literal["nominal", "ordinal", "interval"], domain: list[float] | None
) -> None:
    matrix = _sparse_ratings(11, coders=5, units=60, scale=5, missing=0.4)

    fast = alpha_with_ci(matrix, level, domain, confidence=0.9, n_resamples=2000, seed=0)
    low, high = _refitted_alpha_interval(matrix, level, domain, confidence=0.9, n_resamples=2000, seed=1)

    assert fast.low == pytest.approx(low, abs=0.03) and fast.high == pytest.approx(high, abs=0.03)
    assert fast.n == int(np.sum(np.sum(~np.isnan(matrix), axis=0) >= 2))


def test_alpha_with_ci_of_100k_answers_takes_well_under_a_second() -> None:
    # 50 coders, 33,000 units, three answers each on a 1-10 scale: about 100,000 answers.
    rng = np.random.default_rng(0)
    coders, units = 50, 33_000
    matrix = np.full((coders, units), np.nan)
    columns = np.repeat(np.arange(units), 3)
    rows = np.argsort(rng.random((units, coders)), axis=1)[:, :3].ravel()
    truth = np.repeat(rng.integers(1, 11, size=units), 3)
    matrix[rows, columns] = np.clip(truth + rng.integers(-1, 2, size=columns.size), 1, 10)

    timings = {}
    cases: list[tuple[Literal["nominal", "ordinal", "interval"], list[float] | None]] = [
        ("interval", None),
        ("ordinal", [float(v) for v in range(1, 11)]),
    ]
    for level, domain in cases:
        start = time.perf_counter()
        result = alpha_with_ci(matrix, level, domain, n_resamples=1000, seed=0)
        timings[level] = time.perf_counter() - start
        assert result.low is not None and result.low < (result.estimate or 0) < (result.high or 0)
        assert result.n == units

    print(", ".join(f"alpha_with_ci {level} 100k answers: {t * 1000:.0f} ms" for level, t in timings.items()))
    assert max(timings.values()) < 2.0  # about 150 ms; generous for a busy machine


def test_unique_rows_is_numpys_row_unique_in_its_order() -> None:
    rng = np.random.default_rng(1)
    shapes = [(2, 50, 3), (5, 200, 10), (4, 30, 1)]  # (largest value + 1, rows, columns)
    cases = [rng.integers(0, high, size=(rows, columns)) for high, rows, columns in shapes]
    cases.append(rng.integers(0, 4, size=(60, 40)))  # 4^40 > 2^62: numpy's own row sort
    cases.append(np.zeros((0, 5), dtype=np.int64))
    for rows in cases:
        expected_rows, expected_counts = np.unique(rows, axis=0, return_counts=True)
        ours_rows, ours_counts = _unique_rows(rows)
        assert np.array_equal(ours_rows, expected_rows) and np.array_equal(ours_counts, expected_counts)


def _answers(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coders, units = np.nonzero(~np.isnan(matrix))
    return coders, units, matrix[coders, units]


def test_alphas_of_answers_equal_one_alpha_of_answers_per_level() -> None:
    coders, units, values = _answers(_sparse_ratings(3, coders=5, units=50, scale=5, missing=0.4))
    levels: list[tuple[Literal["nominal", "ordinal", "interval"], list[float] | None]] = [
        ("interval", None),
        ("ordinal", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ("nominal", None),
        ("ordinal", [1.0, 2.0, 3.0]),  # answers off this domain: refitted, and undefined as the package says
    ]

    together = alphas_of_answers(coders, units, values, levels, n_resamples=300, seed=7)

    alone = [alpha_of_answers(coders, units, values, lv, d, n_resamples=300, seed=7) for lv, d in levels]
    assert together == alone
    assert together[3].estimate is None and all(i.low is not None for i in together[:3])
    assert alphas_of_answers([], [], [], levels, n_resamples=50) == [Interval(None, None, None, 0)] * 4


def test_alphas_of_answers_in_a_domains_own_order_match_the_package_and_refitting() -> None:
    matrix = _sparse_ratings(11, coders=5, units=60, scale=5, missing=0.4)
    shuffled = [2.0, 1.0, 4.0, 3.0, 5.0]
    levels: list[tuple[Literal["nominal", "ordinal", "interval"], list[float] | None]] = [
        ("ordinal", None),
        ("ordinal", shuffled),
    ]

    ascending, reordered = alphas_of_answers(*_answers(matrix), levels, confidence=0.9, n_resamples=2000, seed=0)

    expected = krippendorff.alpha(matrix, level_of_measurement="ordinal", value_domain=shuffled)
    assert reordered.estimate == pytest.approx(expected, abs=1e-9)
    assert reordered.estimate != pytest.approx(ascending.estimate, abs=1e-3)  # the domain's order counts
    low, high = _refitted_alpha_interval(matrix, "ordinal", shuffled, confidence=0.9, n_resamples=2000, seed=1)
    assert reordered.low == pytest.approx(low, abs=0.03) and reordered.high == pytest.approx(high, abs=0.03)
