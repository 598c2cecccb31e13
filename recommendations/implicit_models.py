"""Implicit-feedback recommenders: BPR and ALS from the ``implicit`` library, item-KNN, popularity.

Surprise learns ratings; these learn only which items a user interacted with, which is what the
LLMXRec study's recommenders (BPR among them) were trained on, and all that Steam's and MIND's
logs hold. ``implicit`` fits BPR, ALS and the item-item neighbourhoods; popularity needs no
library. Scoring and ranking are done here from the fitted arrays, so that these models and
Surprise's share one contract for the stored top-K: the candidates are the items the user has no
train interaction with, and the order is descending score with ties by ascending item index
(``scoring.select_top``).

What is kept of a fit is an ``ImplicitModel``: numpy and scipy arrays only, so reading it back
needs neither ``implicit`` nor its thread pools. Nothing here touches Django.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

from recommendations.scoring import select_top

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# The user-settable parameters of each model with their defaults (those of ``implicit``, and
# for item-KNN its neighbourhood size and similarity). Anything else ``implicit`` takes (dtype,
# threads, the GPU switch) is fixed here, so that a run depends on its seed alone.
DEFAULTS: dict[str, dict[str, Any]] = {
    "BPR": {"factors": 100, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
    "ALS": {"factors": 100, "regularization": 0.01, "alpha": 1.0, "iterations": 15},
    "ItemKNN": {"K": 20, "similarity": "cosine"},
    "Popularity": {},
}
SIMILARITIES = {"cosine": CosineRecommender, "bm25": BM25Recommender, "tfidf": TFIDFRecommender}


@dataclass(frozen=True)
class ImplicitModel:
    """A fitted implicit model: one of factors, an item-item similarity, or item counts."""

    algorithm: str
    user_factors: FloatArray | None = None  # users x f
    item_factors: FloatArray | None = None  # items x f
    similarity: sp.csr_matrix | None = None  # items x items
    popularity: FloatArray | None = None  # items

    def scores(self, users: IntArray, user_items: sp.csr_matrix) -> FloatArray:
        """users x items scores, higher is better; train items are not masked here.

        ``user_items`` is the train matrix the model was fitted on (item-KNN scores a user by
        the similarities of the items in their row)."""
        if self.user_factors is not None and self.item_factors is not None:
            return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float64)
        if self.similarity is not None:
            return np.asarray((user_items[users] @ self.similarity).toarray(), dtype=np.float64)
        assert self.popularity is not None
        return np.tile(self.popularity, (users.size, 1))


def fit(algorithm: str, params: dict[str, Any], user_items: sp.csr_matrix, *, seed: int) -> ImplicitModel:
    """Fit ``algorithm`` on ``user_items`` (users x items, the count of each user's positive
    interactions with an item; zero is no interaction) with ``params`` already validated.

    Seeded and repeatable: BPR runs on one thread (its multi-threaded SGD is Hogwild, whose
    result depends on the scheduling); ALS solves each user and item on its own, so its threads
    do not change the result, and BLAS is kept to one thread as ``implicit`` asks.
    """
    settings = DEFAULTS[algorithm] | params
    user_items = sp.csr_matrix(user_items, dtype=np.float32)
    if algorithm == "Popularity":
        counts = np.diff(user_items.tocsc().indptr).astype(np.float64)  # users per item
        return ImplicitModel(algorithm, popularity=counts)
    if algorithm == "ItemKNN":
        knn = SIMILARITIES[settings["similarity"]](K=settings["K"], num_threads=1)
        with warnings.catch_warnings():
            # Its own weighting hands its kNN step a COO matrix and then warns about converting it.
            warnings.simplefilter("ignore", ParameterWarning)
            knn.fit(user_items, show_progress=False)
        return ImplicitModel(algorithm, similarity=sp.csr_matrix(knn.similarity, dtype=np.float64))
    if algorithm not in ("BPR", "ALS"):
        raise ValueError(f"unknown implicit algorithm {algorithm!r}")
    # ALS checks BLAS's threads when it is built, so the limit covers construction too.
    with threadpool_limits(limits=1, user_api="blas"):
        model: BayesianPersonalizedRanking | AlternatingLeastSquares
        if algorithm == "BPR":
            model = BayesianPersonalizedRanking(**settings, num_threads=1, random_state=seed)
        else:
            model = AlternatingLeastSquares(**settings, random_state=seed)
        model.fit(user_items, show_progress=False)
    # BPR keeps an item bias as the last item factor, with a constant 1 as the user's: the dot
    # product is the whole score, as in ``implicit``'s own recommend.
    return ImplicitModel(
        algorithm,
        user_factors=np.asarray(model.user_factors, dtype=np.float64),
        item_factors=np.asarray(model.item_factors, dtype=np.float64),
    )


def top_k(
    model: ImplicitModel,
    user_items: sp.csr_matrix,
    seen: sp.csr_matrix,
    *,
    k: int,
    users: IntArray | None = None,
    batch_users: int = 256,
) -> Iterator[tuple[int, IntArray, FloatArray]]:
    """Yield ``(user index, item indices (<=k,), scores (<=k,))`` for each user.

    ``seen`` (users x items, any non-zero) marks every train interaction, positive or not: those
    items are never candidates. Users default to every row; a user whose row in ``user_items``
    is empty has nothing a personal model could have learnt from and is ranked by popularity
    (``popularity_fallback`` says which users those are).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n_users, n_items = seen.shape
    rows = np.arange(n_users, dtype=np.intp) if users is None else np.asarray(users, dtype=np.intp)
    empty = popularity_fallback(user_items)
    popular = fit("Popularity", {}, user_items, seed=0) if empty.any() else None
    seen = sp.csr_matrix(seen, dtype=np.bool_)
    for start in range(0, rows.size, batch_users):
        chunk = rows[start : start + batch_users]
        scores = model.scores(chunk, user_items)
        if popular is not None:
            cold = empty[chunk]
            if cold.any():
                scores[cold] = popular.scores(chunk[cold], user_items)
        rated = seen[chunk].toarray()
        scores[rated] = -np.inf
        yield from select_top(chunk, scores, n_items - np.count_nonzero(rated, axis=1), k)


def popularity_fallback(user_items: sp.csr_matrix) -> npt.NDArray[np.bool_]:
    """Per user: True where the user has no positive train interaction."""
    return np.diff(sp.csr_matrix(user_items).indptr) == 0
