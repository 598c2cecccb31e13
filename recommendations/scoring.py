"""Top-K recommendations for every user of a fitted Surprise model, without the anti-testset.

Surprise's own route is ``algo.test(trainset.build_anti_testset())`` and a sort: it builds every
unrated (user, item) pair as a Python tuple and predicts them one by one, which on MovieLens-1M is
~22 million tuples and minutes of work. Here the same scores come from the fitted parameters in
chunks of users (SVD, SVDpp, NMF, BaselineOnly), or, for any other algorithm, from the
algorithm's own ``estimate`` one user's candidates at a time; memory stays bounded by one chunk.

The contract, for both routes: a score is what ``algo.predict(raw_uid, raw_iid).est`` returns
(default ``clip=True``), the candidates are the trainset's items the user has not rated, and the
order is fixed by the scores and inner ids alone. Nothing here touches Django.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from surprise import (
    NMF,
    SVD,
    AlgoBase,
    BaselineOnly,
    PredictionImpossible,
    SVDpp,
    Trainset,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
# Items to score: an index array, or ``slice(None)`` for all items as views, not copies.
ItemSelection = IntArray | slice
# Raw (unclipped) estimates of users x items, from an algorithm's fitted parameters.
Estimator = Callable[[Any, Trainset, IntArray, ItemSelection], FloatArray]


def top_k(
    algo: AlgoBase,
    trainset: Trainset,
    *,
    k: int,
    inner_users: Sequence[int] | None = None,
    batch_users: int = 256,
) -> Iterator[tuple[int, IntArray, FloatArray]]:
    """Yield ``(inner user id, inner item ids shape (<=k,), scores shape (<=k,))`` for each user.

    ``algo`` must be fitted on ``trainset`` (``algo.trainset is trainset``); ``inner_users``
    defaults to every user ``0..n_users-1`` and is yielded in the order given (duplicates too).
    Arguments are checked when ``top_k`` is called, not on the first ``next()``.

    Guarantees, per user ``u``:

    - Candidates are the trainset's items (inner ids ``0..n_items-1``) except those in
      ``trainset.ur[u]``. Items outside the trainset are never candidates; train items are
      never returned.
    - Each score is ``algo.predict(trainset.to_raw_uid(u), trainset.to_raw_iid(i)).est``:
      ``PredictionImpossible`` becomes ``algo.default_prediction()``, KNN's ``(est, details)``
      becomes ``est``, and the result is clipped to ``trainset.rating_scale`` as ``predict``
      does it, which sends a NaN estimate to the upper bound (``min(high, nan)`` is ``high``).
      An algorithm with its own ``predict`` is asked through it, per pair, and its ``est``
      clipped the same way.
      For SVD/SVDpp/NMF the factor dot products come from BLAS matrix products rather than
      ``np.dot`` per pair, so those scores may differ from ``predict`` in the last bits
      (relative error ~1e-15); BaselineOnly and every other algorithm match bit for bit.
    - Order: descending score; exactly equal scores by ascending inner item id, including at
      the k-th place (the lowest ids among a tie win). ``min(k, candidates)`` items; a user
      with no candidates gets empty arrays. Arrays are fresh: callers may keep them.

    Routes: SVD (biased or not), SVDpp, NMF (biased or not) and BaselineOnly, and subclasses
    that keep their ``estimate``/``predict``/``default_prediction``, are scored from the fitted
    parameters in chunks of ``batch_users`` users (float64; memory ~ ``batch_users x n_items``
    x a few arrays). Everything else calls the algorithm's own ``estimate`` one user at a time,
    over the candidates in ascending inner id order, so with ``inner_users=None`` the calls
    come in the same order as ``algo.test(trainset.build_anti_testset())``; a seeded
    ``NormalPredictor`` then draws the same numbers. ``batch_users`` does not apply there.

    Raises:
        ValueError: ``k`` or ``batch_users`` is below 1, a user id is out of range, or ``algo``
            was not fitted on ``trainset``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if batch_users < 1:
        raise ValueError(f"batch_users must be at least 1, got {batch_users}")
    _check_fitted_on(algo, trainset)
    users = _user_ids(trainset, inner_users)
    estimator = _vectorised_estimator(algo)
    if estimator is None:
        return _top_k_generic(algo, trainset, users, k)
    return _top_k_vectorised(estimator, algo, trainset, users, k, batch_users)


def score_pairs(algo: AlgoBase, trainset: Trainset, inner_user: int, inner_items: npt.ArrayLike) -> FloatArray:
    """Return ``algo.predict``'s clipped estimate for ``inner_user`` and each of ``inner_items``.

    Same score semantics (and the same last-bits caveat for SVD/SVDpp/NMF) as :func:`top_k`;
    the result is 1-D, in the order of ``inner_items`` (flattened). Train items are scored
    like any other, nothing is masked. On the generic route ``estimate`` is called once per
    item, in the given order (which is what matters for a random algorithm such as
    ``NormalPredictor``).

    Raises:
        ValueError: an id is out of range, or ``algo`` was not fitted on ``trainset``.
    """
    _check_fitted_on(algo, trainset)
    user = _user_ids(trainset, [inner_user])
    items = np.asarray(inner_items, dtype=np.intp).reshape(-1)
    if items.size and (items.min() < 0 or items.max() >= trainset.n_items):
        raise ValueError(f"inner item ids must lie in 0..{trainset.n_items - 1}")
    estimator = _vectorised_estimator(algo)
    if estimator is None:
        raw = _generic_estimates(algo, trainset, int(user[0]), items)
    else:
        raw = estimator(algo, trainset, user, items)[0]
    return _clip_like_predict(raw, trainset.rating_scale)


# --- routes ----------------------------------------------------------------------------------


def _top_k_vectorised(
    estimator: Estimator, algo: AlgoBase, trainset: Trainset, users: IntArray, k: int, batch_users: int
) -> Iterator[tuple[int, IntArray, FloatArray]]:
    n_items = trainset.n_items
    for start in range(0, len(users), batch_users):
        chunk = users[start : start + batch_users]
        scores = _clip_like_predict(estimator(algo, trainset, chunk, slice(None)), trainset.rating_scale)
        rated = _rated_mask(trainset, chunk)
        # Clipped to a finite scale, no score is -inf: it marks train items, below every candidate.
        scores[rated] = -np.inf
        n_candidates = n_items - np.count_nonzero(rated, axis=1)
        yield from select_top(chunk, scores, n_candidates, k)


def _top_k_generic(
    algo: AlgoBase, trainset: Trainset, users: IntArray, k: int
) -> Iterator[tuple[int, IntArray, FloatArray]]:
    for position in range(users.size):
        one_user = users[position : position + 1]
        candidates = np.flatnonzero(~_rated_mask(trainset, one_user)[0])
        scores = np.full((1, trainset.n_items), -np.inf)
        scores[0, candidates] = score_pairs(algo, trainset, int(one_user[0]), candidates)
        yield from select_top(one_user, scores, np.array([candidates.size]), k)


def select_top(
    users: IntArray, scores: FloatArray, n_candidates: IntArray, k: int
) -> Iterator[tuple[int, IntArray, FloatArray]]:
    """Yield each row's top ``min(k, n_candidates)`` by (score desc, column asc).

    ``scores`` is users x items with -inf on non-candidates; it is read, not kept.
    """
    n_items = scores.shape[1]
    kk = min(k, n_items)
    # argpartition puts the kk largest last but picks arbitrarily among values equal to the
    # kk-th; rows where that value is shared beyond the cut are redone to keep the lowest ids.
    picked = np.argpartition(scores, n_items - kk, axis=1)[:, n_items - kk :]
    values = np.take_along_axis(scores, picked, axis=1)
    threshold = values.min(axis=1)
    ambiguous = np.flatnonzero(np.count_nonzero(scores >= threshold[:, np.newaxis], axis=1) > kk)
    for row in ambiguous.tolist():
        line, cut = scores[row], threshold[row]
        above = np.flatnonzero(line > cut)
        tied = np.flatnonzero(line == cut)[: kk - above.size]
        picked[row] = np.concatenate([above, tied])
        values[row] = line[picked[row]]
    order = np.lexsort((picked, -values), axis=-1)
    picked = np.take_along_axis(picked, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    for row, user in enumerate(users):
        keep = min(kk, int(n_candidates[row]))
        yield int(user), picked[row, :keep].copy(), values[row, :keep].copy()


# --- scoring -------------------------------------------------------------------------------


def _clip_like_predict(estimates: FloatArray, rating_scale: tuple[float, float]) -> FloatArray:
    """Clip as ``AlgoBase.predict`` does, in place when given float64: ``max(low, min(high, est))``.

    Python's ``min(high, est)`` keeps ``high`` unless ``est < high``, so NaN maps to ``high``
    (``np.clip`` would keep NaN); ``max(low, ...)`` keeps ``low`` unless the value is above it.
    """
    low, high = rating_scale
    clipped = np.asarray(estimates, dtype=np.float64)
    np.copyto(clipped, high, where=np.logical_not(clipped < high))
    np.copyto(clipped, low, where=np.logical_not(clipped > low))
    return clipped


def _generic_estimates(algo: AlgoBase, trainset: Trainset, user: int, items: IntArray) -> FloatArray:
    """Unclipped estimates via the algorithm's own methods, one call per item in ``items`` order."""
    raw = np.empty(items.size)
    if inspect.getattr_static(algo, "predict") is not inspect.getattr_static(AlgoBase, "predict"):
        # A custom predict is the definition of the score, so ask it, with its defaults. Our
        # clip afterwards is a no-op for any in-scale result.
        raw_user = trainset.to_raw_uid(user)
        for position, item in enumerate(items.tolist()):
            raw[position] = algo.predict(raw_user, trainset.to_raw_iid(item)).est
        return raw
    # AlgoBase.predict, minus the raw/inner id round trip (an identity for trainset ids).
    for position, item in enumerate(items.tolist()):
        try:
            estimate = algo.estimate(user, item)
            if isinstance(estimate, tuple):
                estimate, _details = estimate
        except PredictionImpossible:
            estimate = algo.default_prediction()
        raw[position] = estimate
    return raw


def _factor_estimates(algo: AlgoBase, trainset: Trainset, users: IntArray, items: ItemSelection) -> FloatArray:
    """SVD and NMF ``estimate``: ``mu + b_u + b_i + q_i.p_u`` when biased, else ``q_i.p_u``."""
    dots: FloatArray = algo.pu[users] @ algo.qi[items].T
    if not algo.biased:
        return dots
    return _add_biases(algo, trainset, users, items, dots)


def _svdpp_estimates(algo: AlgoBase, trainset: Trainset, users: IntArray, items: ItemSelection) -> FloatArray:
    """SVDpp ``estimate``: ``mu + b_u + b_i + q_i.(p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)``."""
    implicit = np.empty((users.size, algo.yj.shape[1]))
    for row, user in enumerate(users.tolist()):
        # N(u) is ur[u] as stored (duplicates included, as Surprise counts them); an axis-0
        # sum adds the rows in that order, like Surprise's Python sum().
        rated = [item for item, _ in trainset.ur[user]]
        implicit[row] = algo.yj[rated].sum(axis=0) / np.sqrt(len(rated))
    dots: FloatArray = (algo.pu[users] + implicit) @ algo.qi[items].T
    return _add_biases(algo, trainset, users, items, dots)


def _baseline_estimates(algo: AlgoBase, trainset: Trainset, users: IntArray, items: ItemSelection) -> FloatArray:
    """BaselineOnly ``estimate``: ``mu + b_u + b_i`` with the biases of ``compute_baselines()``."""
    return _add_biases(algo, trainset, users, items, None)


def _add_biases(
    algo: AlgoBase, trainset: Trainset, users: IntArray, items: ItemSelection, dots: FloatArray | None
) -> FloatArray:
    # Surprise adds left to right, ((mu + b_u) + b_i) + dot; the same order gives the same bits.
    user_part = trainset.global_mean + algo.bu[users]
    estimates: FloatArray = user_part[:, np.newaxis] + algo.bi[items][np.newaxis, :]
    if dots is not None:
        estimates += dots
    return estimates


# An algorithm takes the vectorised route only if the methods that define its score are the
# ones these estimators reproduce; a subclass overriding any of them goes the generic way.
_VECTORISED: Final[tuple[tuple[type, Estimator], ...]] = (
    (SVD, _factor_estimates),
    (NMF, _factor_estimates),
    (SVDpp, _svdpp_estimates),
    (BaselineOnly, _baseline_estimates),
)
_SCORE_METHODS: Final = ("estimate", "predict", "default_prediction")


def _vectorised_estimator(algo: AlgoBase) -> Estimator | None:
    for base, estimator in _VECTORISED:
        if isinstance(algo, base) and all(
            inspect.getattr_static(algo, name) is inspect.getattr_static(base, name) for name in _SCORE_METHODS
        ):
            return estimator
    return None


# --- ids and masks -------------------------------------------------------------------------


def _check_fitted_on(algo: AlgoBase, trainset: Trainset) -> None:
    # predict maps raw ids through algo.trainset and clips to its scale; another trainset's
    # inner ids would silently name other users and items.
    if getattr(algo, "trainset", None) is not trainset:
        raise ValueError("algo is not fitted on this trainset (algo.trainset is not trainset)")


def _user_ids(trainset: Trainset, inner_users: Sequence[int] | None) -> IntArray:
    if inner_users is None:
        return np.arange(trainset.n_users, dtype=np.intp)
    users = np.asarray(inner_users, dtype=np.intp).reshape(-1)
    if users.size and (users.min() < 0 or users.max() >= trainset.n_users):
        raise ValueError(f"inner user ids must lie in 0..{trainset.n_users - 1}")
    return users


def _rated_mask(trainset: Trainset, users: IntArray) -> npt.NDArray[np.bool_]:
    """users x items, True where the user has the item in the trainset."""
    ratings = [trainset.ur[user] for user in users.tolist()]
    lengths = [len(user_ratings) for user_ratings in ratings]
    columns = np.fromiter(
        (item for user_ratings in ratings for item, _ in user_ratings), dtype=np.intp, count=sum(lengths)
    )
    rated = np.zeros((users.size, trainset.n_items), dtype=np.bool_)
    rated[np.repeat(np.arange(users.size), lengths), columns] = True
    return rated
