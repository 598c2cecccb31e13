"""Top-K recommendations for a new user from the ratings they just gave, with a trained run's saved
model and without retraining it (``recommendations.foldin``).

- Surprise's factor models (SVD, SVD++, NMF): the item factors and biases stay fixed and the
  user's are solved for (SVD++'s implicit-feedback term is left out);
- the other Surprise models: the new user's nearest train users (``neighbour_scores``), added to
  the mean of the new user's ratings;
- implicit models: BPR and ALS fold the user's positives into their factors; item-KNN scores the
  items by their similarity to the ones rated; popularity needs nothing of the user.

Rated items are never recommended back; items the model never saw are ignored, and said so.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
import surprise

from recommendations.algorithms import IMPLICIT_ALGORITHMS
from recommendations.foldin import FloatArray, factor_fold_in, neighbour_scores
from recommendations.models import RecommenderRun

# Implicit factor models were fitted on counts of positives; their fold-in is lightly regularised.
IMPLICIT_REG = 0.01


class FoldInError(ValueError):
    """No recommendations can be made this way; the message says why."""


@dataclass(frozen=True)
class FoldedIn:
    """The new user's top-K as (item id, score), best first, and how it was made."""

    items: list[tuple[int, float]]
    method: str
    ignored: list[int] = field(default_factory=list)  # rated items the model does not know


def fold_in_top_k(*, run: RecommenderRun, ratings: Mapping[int, float], k: int) -> FoldedIn:
    """The top ``k`` items for a new user who rated ``ratings`` (Item id → rating), from ``run``'s
    saved model. Raises FoldInError for a run without a model or ratings the model knows none of."""
    if run.status != RecommenderRun.Status.SUCCEEDED or not run.model_path or not Path(run.model_path).is_file():
        raise FoldInError(f"recommender run #{run.pk} has no trained model to fold a new user into")
    if run.algorithm in IMPLICIT_ALGORITHMS:
        item_ids, scores, known, method = _implicit(run, ratings)
    else:
        item_ids, scores, known, method = _surprise(run, ratings)
    if not known:
        raise FoldInError("the model knows none of the rated items")
    position = {item: index for index, item in enumerate(item_ids)}
    scores = scores.copy()
    scores[[position[item] for item in known]] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    chosen = [(int(item_ids[index]), float(scores[index])) for index in order if np.isfinite(scores[index])]
    return FoldedIn(chosen, method, sorted(set(ratings) - set(known)))


def _surprise(run: RecommenderRun, ratings: Mapping[int, float]) -> tuple[list[int], FloatArray, list[int], str]:
    _, algo = surprise.dump.load(run.model_path)
    trainset = algo.trainset
    # Surprise's knows_item takes an inner id; the raw ids here are Item primary keys.
    inner_of = {}
    for item in ratings:
        try:
            inner_of[item] = trainset.to_inner_iid(item)
        except ValueError:
            continue
    known = list(inner_of)
    inner = np.asarray([inner_of[item] for item in known], dtype=np.intp)
    values = np.asarray([ratings[item] for item in known], dtype=np.float64)
    item_ids = [int(trainset.to_raw_iid(index)) for index in range(trainset.n_items)]
    if not known:
        return item_ids, np.zeros(trainset.n_items), known, "none"
    if getattr(algo, "qi", None) is not None:
        biased = bool(getattr(algo, "biased", True)) and getattr(algo, "bi", None) is not None
        scores = factor_fold_in(
            np.asarray(algo.qi),
            np.asarray(algo.bi) if biased else None,
            trainset.global_mean if biased else 0.0,
            inner,
            values,
            reg=float(getattr(algo, "reg_pu", 0.02)),
        )
        return item_ids, scores, known, "factors"
    rows, columns, data = [], [], []
    for user, rated in trainset.ur.items():
        for item, rating in rated:
            rows.append(user)
            columns.append(item)
            data.append(rating)
    matrix = sp.csr_matrix((data, (rows, columns)), shape=(trainset.n_users, trainset.n_items))
    mine = np.zeros(trainset.n_items)
    mine[inner] = values
    return item_ids, float(values.mean()) + neighbour_scores(matrix, mine), known, "neighbours"


def _implicit(run: RecommenderRun, ratings: Mapping[int, float]) -> tuple[list[int], FloatArray, list[int], str]:
    fitted = pickle.loads(Path(run.model_path).read_bytes())  # noqa: S301 - xrec wrote this file itself
    model, item_ids = fitted["model"], [int(item) for item in fitted["items"].tolist()]
    position = {item: index for index, item in enumerate(item_ids)}
    known = [item for item in ratings if item in position]
    threshold = run.positive_threshold
    positives = np.asarray(
        [position[item] for item in known if threshold is None or ratings[item] >= threshold], dtype=np.intp
    )
    if model.item_factors is not None:
        if positives.size == 0:
            return item_ids, np.zeros(len(item_ids)), known, "factors"
        scores = factor_fold_in(model.item_factors, None, 0.0, positives, np.ones(positives.size), reg=IMPLICIT_REG)
        return item_ids, scores, known, "factors"
    if model.similarity is not None:
        mine = sp.csr_matrix((np.ones(positives.size), (np.zeros(positives.size), positives)), shape=(1, len(item_ids)))
        return item_ids, np.asarray((mine @ model.similarity).toarray()).ravel(), known, "item similarity"
    return item_ids, np.asarray(model.popularity, dtype=np.float64), known, "popularity"
