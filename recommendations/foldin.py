"""Recommending for a new user from a handful of ratings, without retraining. Pure: numpy and scipy.

Two ways, as the trained model allows:

- ``factor_fold_in``: a matrix-factorisation model's item factors and biases stay fixed and the
  new user's bias and factors are the ridge solution of their ratings (what one ALS half-step
  does for a user; for Surprise's SVD the prediction is mu + b_u + b_i + q_i . p_u, and the
  regularisation per rating is the model's own);
- ``neighbour_scores``: for any other model, the new user's nearest train users by cosine
  similarity of their (centred) rating vectors, and each item's similarity-weighted mean of
  those neighbours' centred ratings.

Either way the new user's ratings are never added to the training data.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def factor_fold_in(
    item_factors: FloatArray,
    item_biases: FloatArray | None,
    global_mean: float,
    rated: IntArray,
    ratings: FloatArray,
    *,
    reg: float,
) -> FloatArray:
    """Scores of every item for a new user who gave ``ratings`` to the items ``rated`` (indices
    into the rows of ``item_factors``): mu + b_u + b_i + q_i . p_u, with (b_u, p_u) minimising
    the squared error on the rated items plus ``reg`` x (number of ratings) x their squared norm,
    the per-rating penalty of an SGD-trained model. Without ``item_biases`` (implicit models) the
    user has no bias either and the score is q_i . p_u."""
    q = np.asarray(item_factors, dtype=np.float64)
    rated = np.asarray(rated, dtype=np.intp)
    y = np.asarray(ratings, dtype=np.float64) - global_mean
    if item_biases is not None:
        y = y - np.asarray(item_biases, dtype=np.float64)[rated]
        design = np.hstack([np.ones((rated.size, 1)), q[rated]])
    else:
        design = q[rated]
    penalty = reg * max(1, rated.size) * np.eye(design.shape[1])
    theta = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    scores = global_mean + q @ theta[-q.shape[1] :]
    if item_biases is not None:
        scores = scores + theta[0] + np.asarray(item_biases, dtype=np.float64)
    return np.asarray(scores, dtype=np.float64)


def neighbour_scores(user_items: sp.csr_matrix, elicited: FloatArray, *, k: int = 50) -> FloatArray:
    """Scores of every item for a new user with the dense rating vector ``elicited`` (0 =
    unrated) over the columns of ``user_items`` (train users x items, 0 = unrated): the
    similarity-weighted mean of the ``k`` most similar train users' mean-centred ratings, where
    similarity is the cosine of the centred vectors. Items none of them rated score 0."""
    matrix = sp.csr_matrix(user_items, dtype=np.float64)
    counts = np.diff(matrix.indptr)
    means = np.divide(np.asarray(matrix.sum(axis=1)).ravel(), counts, out=np.zeros(matrix.shape[0]), where=counts > 0)
    centred = matrix.copy()
    centred.data = centred.data - np.repeat(means, counts)
    mine = np.asarray(elicited, dtype=np.float64)
    rated = mine != 0
    mine_centred = np.where(rated, mine - (mine[rated].mean() if rated.any() else 0.0), 0.0)
    norms = np.sqrt(np.asarray(centred.multiply(centred).sum(axis=1)).ravel())
    similarity = centred @ mine_centred / np.maximum(norms * np.linalg.norm(mine_centred), 1e-12)
    neighbours = np.argsort(-similarity)[:k]
    neighbours = neighbours[similarity[neighbours] > 0]
    if neighbours.size == 0:
        return np.zeros(matrix.shape[1])
    weights = similarity[neighbours]
    chosen = centred[neighbours]
    weighted = np.asarray(chosen.T @ weights).ravel()
    support = np.asarray((chosen != 0).T.astype(np.float64) @ weights).ravel()
    return np.divide(weighted, support, out=np.zeros(matrix.shape[1]), where=support > 0)
