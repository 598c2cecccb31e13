"""Intervals that respect the rating design, checked on simulated data with a known truth."""

import numpy as np
import pytest
import scipy.stats  # type: ignore[import-untyped]

from annotation.study.stats.clustered import clustered_mean, crossed, holm, item_means, paired_comparison

TRUTH = 3.0


def _simulate(seed: int, *, n_items: int = 40, k: int = 3, pool: int = 12, sd_item: float = 0.6,
              sd_annotator: float = 0.4, sd_noise: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Ratings = truth + item effect + annotator effect + noise; each item rated by k of a pool."""
    rng = np.random.default_rng(seed)
    item_effect, annotator_effect = rng.normal(0, sd_item, n_items), rng.normal(0, sd_annotator, pool)
    items = np.repeat(np.arange(n_items), k)
    annotators = np.concatenate([rng.choice(pool, k, replace=False) for _ in range(n_items)])
    values = TRUTH + item_effect[items] + annotator_effect[annotators] + rng.normal(0, sd_noise, items.size)
    return values, items, annotators


def _coverage(n_simulations: int, *, use_annotators: bool) -> float:
    covered = 0
    for seed in range(n_simulations):
        values, items, annotators = _simulate(seed)
        interval = clustered_mean(values, items, annotators if use_annotators else None, n_resamples=1000)
        assert interval.low is not None and interval.high is not None
        covered += interval.low <= TRUTH <= interval.high
    return covered / n_simulations


def test_95_percent_intervals_cover_the_truth_93_to_97_percent_of_the_time() -> None:
    assert 0.93 <= _coverage(1000, use_annotators=True) <= 0.97


def test_resampling_items_alone_is_too_narrow_when_annotators_differ() -> None:
    # Why annotators are resampled too: with annotator effects, items alone miss that variance.
    assert _coverage(300, use_annotators=False) < 0.9


def test_a_design_that_does_not_cross_annotators_resamples_items_only() -> None:
    items = np.repeat(np.arange(10), 2)
    annotators = np.arange(20)  # everyone rated one item

    assert not crossed(items, annotators) and crossed(np.repeat(np.arange(10), 2), np.tile([0, 1], 10))
    with_annotators = clustered_mean(np.arange(20.0), items, annotators)
    without = clustered_mean(np.arange(20.0), items, None)
    assert with_annotators == without and with_annotators.n == 10


def test_one_item_or_no_resamples_give_no_interval() -> None:
    assert clustered_mean([4.0, 5.0], [7, 7]).low is None
    assert clustered_mean([4.0, 5.0], [1, 2], n_resamples=0).estimate == 4.5
    assert clustered_mean([], []).estimate is None


def test_paired_comparison_of_two_systems_on_the_same_items() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(3, 0.7, 50)
    a = {item: float(base[item] + 0.4 + rng.normal(0, 0.3)) for item in range(50)}
    b = {item: float(base[item]) for item in range(50)}
    b[99] = 1.0  # rated for B only: not paired, left out

    result = paired_comparison(a, b, n_resamples=2000, seed=0)

    differences = np.array([a[i] - b[i] for i in range(50)])
    expected = scipy.stats.wilcoxon(differences)
    assert result.n_items == 50 and result.difference.estimate == pytest.approx(differences.mean())
    assert result.difference.low is not None and result.difference.high is not None
    assert result.difference.low < 0.4 < result.difference.high and result.difference.low > 0
    assert result.p_value is not None and result.p_value == pytest.approx(expected.pvalue) and result.p_value < 1e-6
    assert result.rank_biserial is not None and result.rank_biserial > 0.8
    assert result.cohens_dz == pytest.approx(differences.mean() / differences.std(ddof=1))


def test_item_means_and_holm() -> None:
    assert item_means([1.0, 3.0, 5.0], ["x", "x", "y"]) == {"x": 2.0, "y": 5.0}
    assert holm([0.01, None, 0.04, 0.03]) == [0.03, None, 0.06, 0.06]
