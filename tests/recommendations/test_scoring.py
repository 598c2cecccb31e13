"""``recommendations.scoring.top_k`` gives Surprise's own top-K, without its anti-testset.

The reference everywhere is Surprise's documented route: ``algo.test(trainset.build_anti_testset())``
(one ``predict`` per unrated pair, clipped), grouped by user and sorted. No database is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from surprise import (
    NMF,
    SVD,
    AlgoBase,
    BaselineOnly,
    CoClustering,
    Dataset,
    KNNBaseline,
    KNNBasic,
    KNNWithMeans,
    KNNWithZScore,
    NormalPredictor,
    PredictionImpossible,
    Reader,
    SlopeOne,
    SVDpp,
    Trainset,
)

from recommendations.scoring import score_pairs, top_k

N_USERS, N_ITEMS = 60, 40
HEAVY_USER_ITEMS = 37  # leaves 3 candidates, fewer than K
K = 10
# Matrix products and np.dot round the factor dot product differently in the last bits.
FACTOR_RTOL = 1e-12

Reference = dict[int, dict[int, float]]
TopK = list[tuple[int, np.ndarray, np.ndarray]]


def _ratings() -> list[tuple[str, str, float, None]]:
    """~900 seeded ratings on 1..5 in half steps, shaped to push baselines past the scale.

    Users 0-55 follow a latent bias model; 56-57 give only 5s and 58 only 1s (so mu + b_u + b_i
    leaves [1, 5] both ways); user 59 rates 37 of the 40 items.
    """
    rng = np.random.default_rng(20_240_601)
    popularity = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.7
    popularity /= popularity.sum()
    user_bias = rng.normal(0, 0.6, N_USERS)
    item_bias = rng.normal(0, 0.7, N_ITEMS)
    raw: list[tuple[str, str, float, None]] = []
    for user in rng.permutation(N_USERS).tolist():  # inner ids need not follow raw ids
        count = HEAVY_USER_ITEMS if user == 59 else int(rng.integers(8, 23))
        items = rng.choice(N_ITEMS, size=count, replace=False, p=popularity)
        for item in items.tolist():
            if user in (56, 57):
                rating = 5.0
            elif user == 58:
                rating = 1.0
            else:
                latent = 3.4 + user_bias[user] + item_bias[item] + rng.normal(0, 0.5)
                rating = float(np.clip(np.round(latent * 2) / 2, 1, 5))
            raw.append((f"u{user:02d}", f"i{item:02d}", rating, None))
    return raw


@pytest.fixture(scope="module")
def trainset() -> Trainset:
    built = Dataset(Reader(rating_scale=(1, 5))).construct_trainset(_ratings())
    assert (built.n_users, built.n_items) == (N_USERS, N_ITEMS)
    return built


def surprise_route(algo: AlgoBase, trainset: Trainset) -> Reference:
    """Every candidate's score by Surprise's route: user inner id -> {item inner id: est}."""
    reference: Reference = {user: {} for user in trainset.all_users()}
    for prediction in algo.test(trainset.build_anti_testset()):
        user, item = trainset.to_inner_uid(prediction.uid), trainset.to_inner_iid(prediction.iid)
        reference[user][item] = prediction.est
    return reference


def assert_same_top_k(result: TopK, reference: Reference, *, k: int, rtol: float) -> None:
    """``result`` is a top-``k`` of ``reference``: same scores, ties reordered only among equals.

    With ``rtol=0`` the item lists must equal the reference sorted by (score desc, id asc),
    which also pins which of a tie straddling the k-th place is kept (the lowest ids).
    """
    assert [user for user, _, _ in result] == sorted(reference)
    for user, items, scores in result:
        expected = reference[user]
        listed = items.tolist()
        assert items.dtype == np.intp and scores.dtype == np.float64
        assert len(listed) == len(set(listed)) == min(k, len(expected))
        assert set(listed) <= expected.keys(), "a train item was recommended"
        ranked_keys = list(zip((-scores).tolist(), listed, strict=True))
        assert ranked_keys == sorted(ranked_keys), "not by score desc, then item id asc"
        np.testing.assert_allclose(scores, [expected[item] for item in listed], rtol=rtol, atol=0)
        best_scores = sorted(expected.values(), reverse=True)[:k]
        np.testing.assert_allclose(scores, best_scores, rtol=rtol, atol=0)
        if rtol == 0:
            assert listed == sorted(expected, key=lambda item: (-expected[item], item))[:k]


def sparse_knn() -> AlgoBase:
    """A KNNBasic that often lacks neighbours (min_support, min_k), so predict falls back."""
    return KNNBasic(k=10, min_k=3, sim_options={"name": "pearson", "min_support": 3}, verbose=False)


ALGORITHMS: dict[str, tuple[Callable[[], AlgoBase], float]] = {
    "svd": (lambda: SVD(random_state=0), FACTOR_RTOL),
    "svd-unbiased": (lambda: SVD(biased=False, random_state=0), FACTOR_RTOL),
    "svd-diverging-lr": (lambda: SVD(lr_all=0.05, reg_all=0.0, n_epochs=40, random_state=0), FACTOR_RTOL),
    "svdpp": (lambda: SVDpp(random_state=0, n_epochs=10), FACTOR_RTOL),
    "nmf": (lambda: NMF(random_state=0), FACTOR_RTOL),
    "nmf-biased": (lambda: NMF(biased=True, random_state=0), FACTOR_RTOL),
    "baseline-als": (lambda: BaselineOnly(verbose=False), 0.0),
    "baseline-sgd": (lambda: BaselineOnly(bsl_options={"method": "sgd", "n_epochs": 15}, verbose=False), 0.0),
    "slope-one": (lambda: SlopeOne(), 0.0),
    "co-clustering": (lambda: CoClustering(random_state=0), 0.0),
    "knn-basic-user-msd": (lambda: KNNBasic(sim_options={"name": "msd"}, verbose=False), 0.0),
    "knn-basic-item-cosine": (
        lambda: KNNBasic(k=5, sim_options={"name": "cosine", "user_based": False}, verbose=False),
        0.0,
    ),
    "knn-basic-user-pearson-min-k": (lambda: sparse_knn(), 0.0),
    "knn-means-user-pearson": (lambda: KNNWithMeans(sim_options={"name": "pearson"}, verbose=False), 0.0),
    "knn-means-item-msd": (
        lambda: KNNWithMeans(sim_options={"name": "msd", "user_based": False}, verbose=False),
        0.0,
    ),
    "knn-zscore-user-cosine": (lambda: KNNWithZScore(sim_options={"name": "cosine"}, verbose=False), 0.0),
    "knn-zscore-item-pearson": (
        lambda: KNNWithZScore(sim_options={"name": "pearson", "user_based": False}, verbose=False),
        0.0,
    ),
    "knn-baseline-user-pearson-baseline": (
        lambda: KNNBaseline(sim_options={"name": "pearson_baseline"}, verbose=False),
        0.0,
    ),
    "knn-baseline-item-msd": (
        lambda: KNNBaseline(sim_options={"name": "msd", "user_based": False}, verbose=False),
        0.0,
    ),
}


@pytest.mark.parametrize("name", ALGORITHMS)
def test_top_k_matches_surprise_anti_testset_route(trainset: Trainset, name: str) -> None:
    make, rtol = ALGORITHMS[name]
    algo = make().fit(trainset)
    assert_same_top_k(list(top_k(algo, trainset, k=K)), surprise_route(algo, trainset), k=K, rtol=rtol)


def test_normal_predictor_draws_in_anti_testset_order(trainset: Trainset) -> None:
    algo = NormalPredictor().fit(trainset)
    np.random.seed(7)
    reference = surprise_route(algo, trainset)
    np.random.seed(7)
    result = list(top_k(algo, trainset, k=K))
    assert_same_top_k(result, reference, k=K, rtol=0.0)


@pytest.mark.parametrize(
    ("make", "rtol"),
    [
        # Lighter regularisation than the default lets the extreme users' biases through.
        (lambda: BaselineOnly(bsl_options={"reg_u": 5, "reg_i": 5}, verbose=False), 0.0),
        (lambda: SVD(lr_all=0.05, reg_all=0.0, n_epochs=40, random_state=0), FACTOR_RTOL),
    ],
)
def test_scores_are_clipped_although_raw_estimates_leave_the_scale(
    trainset: Trainset, make: Callable[[], AlgoBase], rtol: float
) -> None:
    algo = make().fit(trainset)
    reference = surprise_route(algo, trainset)
    raw = [algo.estimate(user, item) for user, candidates in reference.items() for item in candidates]
    assert max(raw) > 5 and min(raw) < 1, "the data no longer pushes estimates past the scale"

    result = list(top_k(algo, trainset, k=K))
    scores = np.concatenate([scores for _, _, scores in result])
    assert scores.min() >= 1 and scores.max() == 5
    assert_same_top_k(result, reference, k=K, rtol=rtol)


def tied_baseline(trainset: Trainset) -> AlgoBase:
    """BaselineOnly with item biases in two tiers: within a user, a tier's scores are equal bits."""
    algo = BaselineOnly(verbose=False).fit(trainset)
    algo.bi = np.where(np.arange(trainset.n_items) % 4 == 0, 0.5, 0.0)
    return algo


@pytest.mark.parametrize(
    "fitted", [tied_baseline, lambda trainset: QuirkyAlgo().fit(trainset)], ids=["vectorised", "generic"]
)
def test_exact_ties_go_by_item_id_and_the_lowest_ids_win_the_kth_place(
    trainset: Trainset, fitted: Callable[[Trainset], AlgoBase]
) -> None:
    algo = fitted(trainset)
    reference = surprise_route(algo, trainset)
    straddling = 0
    for candidates in reference.values():
        ranked = sorted(candidates.values(), reverse=True)
        straddling += len(ranked) > K and ranked[K - 1] == ranked[K]
    assert straddling > 10, "too few ties cross the k-th place to test the cut"
    assert_same_top_k(list(top_k(algo, trainset, k=K)), reference, k=K, rtol=0.0)


def test_factor_models_and_baselines_never_call_estimate(trainset: Trainset, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for cls in (SVD, SVDpp, NMF, BaselineOnly):
        original = cls.estimate

        def counting(self: AlgoBase, u: int, i: int, original: Any = original) -> Any:
            calls.append(type(self).__name__)
            return original(self, u, i)

        # Patched on the class, so the vectorised route still recognises the method as its own.
        monkeypatch.setattr(cls, "estimate", counting)
    for algo in (SVD(n_epochs=2), SVDpp(n_epochs=2), NMF(n_epochs=2), BaselineOnly(verbose=False)):
        list(top_k(algo.fit(trainset), trainset, k=K))
    assert calls == []
    list(top_k(ReEstimatedSVD(n_epochs=2).fit(trainset), trainset, k=K))
    assert calls, "an overridden estimate must be called"


def test_impossible_predictions_score_the_default_prediction(trainset: Trainset) -> None:
    algo = sparse_knn().fit(trainset)
    impossible = [p for p in algo.test(trainset.build_anti_testset()) if p.details["was_impossible"]]
    assert impossible, "sparse_knn no longer makes any prediction impossible"
    for prediction in impossible[:20]:
        user, item = trainset.to_inner_uid(prediction.uid), trainset.to_inner_iid(prediction.iid)
        assert score_pairs(algo, trainset, user, [item])[0] == trainset.global_mean == prediction.est


class QuirkyAlgo(AlgoBase):
    """An unknown algorithm through every branch of ``predict``: floats, ``(est, details)``,
    ``PredictionImpossible`` with its own default, NaN, and values beyond both bounds."""

    def estimate(self, u: int, i: int) -> Any:
        match (u + i) % 5:
            case 0:
                raise PredictionImpossible("every fifth pair")
            case 1:
                return 2.5 + 0.01 * i, {"note": "tuple"}
            case 2:
                return float("nan")
            case 3:
                return 9.0 - 0.5 * i
            case _:
                return 3.0 + 0.001 * u

    def default_prediction(self) -> float:
        return 4.25


class ShiftedPredict(BaselineOnly):
    """Overrides ``predict`` itself, so its ``est`` (not BaselineOnly's estimate) is the score."""

    def predict(self, uid: str, iid: str, r_ui: float | None = None, clip: bool = True, verbose: bool = False) -> Any:
        prediction = super().predict(uid, iid, r_ui, clip, verbose)
        return prediction._replace(est=max(1.0, prediction.est - 0.5))


class ReEstimatedSVD(SVD):
    """Overrides ``estimate``, so the fitted factors alone no longer define the score."""

    def estimate(self, u: int, i: int) -> float:
        return float(super().estimate(u, i)) + 0.25 * (i % 3)


@pytest.mark.parametrize("make", [QuirkyAlgo, lambda: ShiftedPredict(verbose=False), ReEstimatedSVD])
def test_unknown_algorithms_and_overrides_follow_their_own_predict(
    trainset: Trainset, make: Callable[[], AlgoBase]
) -> None:
    algo = make().fit(trainset)
    assert_same_top_k(list(top_k(algo, trainset, k=K)), surprise_route(algo, trainset), k=K, rtol=0.0)


def test_nan_estimate_scores_the_upper_bound_as_predict_does(trainset: Trainset) -> None:
    algo = QuirkyAlgo().fit(trainset)
    items = np.array([item for item in range(N_ITEMS) if (0 + item) % 5 == 2])
    assert np.isnan(algo.estimate(0, int(items[0])))
    assert algo.predict(trainset.to_raw_uid(0), trainset.to_raw_iid(int(items[0]))).est == 5
    np.testing.assert_array_equal(score_pairs(algo, trainset, 0, items), 5.0)


@pytest.mark.parametrize("make", [lambda: SVDpp(random_state=0, n_epochs=5), lambda: KNNWithMeans(verbose=False)])
def test_score_pairs_equals_predict_for_any_items_in_the_given_order(
    trainset: Trainset, make: Callable[[], AlgoBase]
) -> None:
    algo = make().fit(trainset)
    items = np.array([39, 0, 17, 3, 3, 25])  # train items and repeats are scored too
    for user in (0, 31, N_USERS - 1):
        raw_user = trainset.to_raw_uid(user)
        expected = [algo.predict(raw_user, trainset.to_raw_iid(item)).est for item in items.tolist()]
        np.testing.assert_allclose(score_pairs(algo, trainset, user, items), expected, rtol=FACTOR_RTOL, atol=0)


def test_train_items_are_never_recommended_even_when_k_covers_everything(trainset: Trainset) -> None:
    algo = SVD(random_state=0, n_epochs=5).fit(trainset)
    for user, items, _ in top_k(algo, trainset, k=N_ITEMS * 2):
        rated = {item for item, _ in trainset.ur[user]}
        assert set(items.tolist()) == set(range(N_ITEMS)) - rated


def test_user_with_fewer_candidates_than_k_gets_fewer(trainset: Trainset) -> None:
    heavy = trainset.to_inner_uid("u59")
    for algo in (SVD(random_state=0, n_epochs=5), KNNBasic(verbose=False)):
        algo.fit(trainset)
        [(user, items, scores)] = list(top_k(algo, trainset, k=K, inner_users=[heavy]))
        assert user == heavy
        assert len(items) == len(scores) == N_ITEMS - HEAVY_USER_ITEMS


def test_two_calls_give_identical_results_whatever_the_batch_size(trainset: Trainset) -> None:
    for algo in (SVD(random_state=0), BaselineOnly(verbose=False), SlopeOne()):
        algo.fit(trainset)
        first = list(top_k(algo, trainset, k=K))
        second = list(top_k(algo, trainset, k=K))
        batched = list(top_k(algo, trainset, k=K, batch_users=7))
        for (user_a, items_a, scores_a), (user_b, items_b, scores_b), (user_c, items_c, scores_c) in zip(
            first, second, batched, strict=True
        ):
            assert user_a == user_b == user_c
            np.testing.assert_array_equal(items_a, items_b)
            np.testing.assert_array_equal(scores_a, scores_b)
            np.testing.assert_array_equal(items_a, items_c)
            np.testing.assert_allclose(scores_a, scores_c, rtol=FACTOR_RTOL, atol=0)


def test_chosen_users_come_back_in_the_order_given(trainset: Trainset) -> None:
    algo = SVD(random_state=0, n_epochs=5).fit(trainset)
    everyone = {user: (items, scores) for user, items, scores in top_k(algo, trainset, k=K)}
    chosen = list(top_k(algo, trainset, k=K, inner_users=[5, 2, 5]))
    assert [user for user, _, _ in chosen] == [5, 2, 5]
    for user, items, scores in chosen:
        np.testing.assert_array_equal(items, everyone[user][0])
        np.testing.assert_allclose(scores, everyone[user][1], rtol=FACTOR_RTOL, atol=0)


def test_bad_arguments_are_refused_when_called(trainset: Trainset) -> None:
    algo = BaselineOnly(verbose=False).fit(trainset)
    other = Dataset(Reader(rating_scale=(1, 5))).construct_trainset(_ratings())
    with pytest.raises(ValueError, match="k must be"):
        top_k(algo, trainset, k=0)
    with pytest.raises(ValueError, match="batch_users"):
        top_k(algo, trainset, k=K, batch_users=0)
    with pytest.raises(ValueError, match="inner user ids"):
        top_k(algo, trainset, k=K, inner_users=[N_USERS])
    with pytest.raises(ValueError, match="not fitted on this trainset"):
        top_k(algo, other, k=K)
    with pytest.raises(ValueError, match="inner item ids"):
        score_pairs(algo, trainset, 0, [N_ITEMS])
