"""Rating, top-K and catalogue metrics for recommendation runs, as pure functions.

Nothing here touches Django or the database: callers pass plain mappings and sequences read from
wherever they like (a run's ``Recommendation`` rows, a Surprise ``test()`` result), so services,
views and the benchmarks share one definition of each figure. Every function is deterministic:
the same input gives the same output, and ties are broken by stated rules, never by dict order.

The definitions follow the references whose published figures we compare against:
``rating_errors`` is ``surprise.accuracy.rmse``/``mae``; ``topk_metrics`` is RecBole's
full-ranking Precision/Recall/NDCG/Hit/MRR (Precision@K divides by K, not by the list length).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from itertools import islice, pairwise
from typing import Any, Final, Protocol, TypedDict, TypeVar

import numpy as np
import numpy.typing as npt


class _OrderedId(Protocol):
    """An id that can key a dict and be compared, so ties can go to the smaller one."""

    def __hash__(self) -> int: ...

    def __lt__(self, other: Any, /) -> bool: ...


UserId = TypeVar("UserId", bound=Hashable)
ItemId = TypeVar("ItemId", bound=Hashable)
OrderedItemId = TypeVar("OrderedItemId", bound=_OrderedId)

Counts = Sequence[int] | npt.NDArray[np.integer[Any]]


def rating_errors(pairs: Iterable[tuple[float, float]]) -> dict[str, float]:
    """RMSE and MAE of rating estimates, defined exactly as ``surprise.accuracy.rmse``/``mae``.

    ``pairs`` holds ``(true_rating, estimate)`` tuples, e.g.
    ``[(p.r_ui, p.est) for p in algo.test(testset)]``; it is read once, so a generator works.

    Returns ``{"rmse": sqrt(mean((r - est)^2)), "mae": mean(|r - est|), "n": number of pairs}``.
    The means are ``numpy.mean`` over the same per-pair float64 terms Surprise builds, so the
    figures equal Surprise's, not merely its rounding.

    Raises:
        ValueError: ``pairs`` is empty. Surprise refuses too: an error over nothing is undefined,
            and 0.0 would read as a perfect model.
    """
    table = np.array(list(pairs), dtype=np.float64).reshape(-1, 2)
    if not len(table):
        raise ValueError("no (rating, estimate) pairs to score")
    errors = table[:, 0] - table[:, 1]
    return {
        "rmse": float(np.sqrt(np.mean(errors * errors))),
        "mae": float(np.mean(np.abs(errors))),
        "n": len(table),
    }


def topk_metrics(
    recommended: Mapping[UserId, Sequence[ItemId]],
    relevant: Mapping[UserId, Collection[ItemId]],
    *,
    k: int,
) -> dict[str, float]:
    """Precision, Recall, NDCG, HitRate and MRR at ``k``, averaged over users with relevant items.

    ``recommended`` maps a user to their ranked list, best first; only its first ``k`` entries
    count. ``relevant`` maps a user to their held-out relevant items (e.g. the test split).

    Who is averaged over: exactly the users of ``relevant`` with at least one relevant item.
    Users without relevant items are left out (no metric is defined for them), so are users who
    appear only in ``recommended``; a user with relevant items but no (or an empty) list counts,
    with zeros. ``n_users`` in the result is that number; with none, every metric is 0.0.

    Per user, with ``hits`` the 1-based ranks within the top ``k`` that hold a relevant item:

    - precision = len(hits) / k (k, not the list length, as RecBole does);
    - recall = len(hits) / |relevant|;
    - ndcg = DCG / IDCG, DCG = sum(1 / log2(rank + 1) for rank in hits), and IDCG the same sum
      over ranks 1 .. min(|relevant|, k) (binary gain; a perfect top-k scores 1 even when
      |relevant| > k);
    - hit_rate = 1.0 if hits else 0.0; mrr = 1 / hits[0] if hits else 0.0.

    A relevant item listed twice counts once, at its first rank, so every metric stays in [0, 1];
    the repeat still takes its slot in the top ``k``.

    Raises:
        ValueError: ``k`` < 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    totals = dict.fromkeys(("precision", "recall", "ndcg", "hit_rate", "mrr"), 0.0)
    n_users = 0
    for user, user_relevant in relevant.items():
        relevant_set = set(user_relevant)
        if not relevant_set:
            continue
        n_users += 1
        hits: list[int] = []
        found: set[ItemId] = set()
        for rank, item in enumerate(islice(recommended.get(user, ()), k), start=1):
            if item in relevant_set and item not in found:
                found.add(item)
                hits.append(rank)
        if not hits:
            continue
        totals["precision"] += len(hits) / k
        totals["recall"] += len(hits) / len(relevant_set)
        dcg = float(sum(discounts[rank - 1] for rank in hits))
        totals["ndcg"] += dcg / float(discounts[: min(len(relevant_set), k)].sum())
        totals["hit_rate"] += 1.0
        totals["mrr"] += 1.0 / hits[0]
    averaged = {name: (total / n_users if n_users else 0.0) for name, total in totals.items()}
    return averaged | {"n_users": n_users}


def gini_index(counts: Counts) -> float:
    """Gini index of non-negative integer counts: 0 when all are equal, (n - 1) / n at most.

    With ``x_1 <= ... <= x_n`` the counts sorted ascending (i is 1-based)::

        G = (n + 1 - 2 * sum((n + 1 - i) * x_i) / sum(x)) / n

    which equals the mean absolute difference over all ordered pairs, sum|x_i - x_j|, divided by
    2 * n^2 * mean(x). It is computed in integers up to one final division, so equal counts give
    exactly 0.0. All-zero or empty counts give 0.0 (nothing is concentrated).

    Raises:
        TypeError: the counts are not integers.
        ValueError: a count is negative.
    """
    ascending = np.sort(_as_counts(counts))
    total = int(ascending.sum())
    if total == 0:
        return 0.0
    n = int(ascending.size)
    weighted = int(np.dot(np.arange(n, 0, -1, dtype=np.int64), ascending))  # weights n+1-i
    return ((n + 1) * total - 2 * weighted) / (n * total)


def catalogue_metrics(recommended: Mapping[UserId, Sequence[OrderedItemId]], *, n_items: int) -> dict[str, Any]:
    """How widely, and how evenly, recommendations spread over a catalogue of ``n_items`` items.

    An item counts once per user whose list contains it (repeats within a list are ignored),
    so an item's count is the number of users it was recommended to. Pass lists already cut to
    the K being reported. Returns:

    - ``coverage``: distinct recommended items / ``n_items``;
    - ``gini``: ``gini_index`` of the counts of all ``n_items`` items, never-recommended ones as
      0; 0.0 when nothing is recommended;
    - ``top_item``: the item recommended to most users; among equals the smallest id (ids must be
      mutually comparable), so reruns agree; ``None`` when nothing is recommended;
    - ``top_item_user_share``: the share of users with a non-empty list whose list holds
      ``top_item`` (a study that recommended one game to 99.9% of its users shows 0.999 here);
    - ``n_users``: the number of users with a non-empty list.

    Raises:
        ValueError: ``n_items`` < 1, or more distinct items were recommended than ``n_items``
            (the catalogue size is wrong, and coverage would exceed 1).
    """
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, not {n_items}")
    per_item: Counter[OrderedItemId] = Counter()
    n_users = 0
    for items in recommended.values():
        distinct = set(items)
        if distinct:
            n_users += 1
            per_item.update(distinct)
    if len(per_item) > n_items:
        raise ValueError(f"{len(per_item)} distinct items recommended from a catalogue of {n_items}")
    counts = np.zeros(n_items, dtype=np.int64)
    counts[: len(per_item)] = list(per_item.values())
    top_item: OrderedItemId | None = None
    top_share = 0.0
    if per_item:
        most = max(per_item.values())
        top_item = min(item for item, count in per_item.items() if count == most)
        # Each user adds at most 1 to an item's count, so the count is the number of users.
        top_share = most / n_users
    return {
        "coverage": len(per_item) / n_items,
        "gini": gini_index(counts),
        "top_item": top_item,
        "top_item_user_share": top_share,
        "n_users": n_users,
    }


# A 1-2-5 series, as on chart axes: bins widen with the count, so the many items recommended a
# handful of times and the few recommended to thousands both stay readable on one bar chart.
# 0 and 1 get bins of their own because "never" and "once" are the questions people ask.
COUNT_BIN_LOWS: Final[tuple[int, ...]] = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class CountBin(TypedDict):
    """One bar: ``items`` items were each recommended between ``low`` and ``high`` times."""

    label: str
    low: int
    high: int | None  # None for the open-ended last bin ("1000+")
    items: int


def recommendation_count_histogram(counts: Counts, *, lows: Sequence[int] = COUNT_BIN_LOWS) -> list[CountBin]:
    """Bins of "how many items were recommended how many times", in order, for a bar chart.

    ``counts`` holds one recommendation count per catalogue item, zeros included. Bin j covers
    ``lows[j] .. lows[j + 1] - 1``; the last bin is open-ended (``high`` None, label "1000+").
    Labels are "0", "1", then low and high joined by an EN DASH (U+2013, a typographic range),
    then "1000+". Empty bins between non-empty ones are kept, so the axis has no gaps; empty bins
    after the last non-empty one are dropped. No counts give ``[]``.

    Raises:
        TypeError: the counts are not integers.
        ValueError: a count is negative, or ``lows`` does not start at 0 and strictly increase.
    """
    if not lows or lows[0] != 0 or any(a >= b for a, b in pairwise(lows)):
        raise ValueError(f"lows must start at 0 and strictly increase: {list(lows)}")
    values = _as_counts(counts)
    tallies = np.bincount(np.searchsorted(lows, values, side="right") - 1, minlength=len(lows))
    non_empty = np.flatnonzero(tallies)
    if not non_empty.size:
        return []
    bins: list[CountBin] = []
    for j in range(int(non_empty[-1]) + 1):
        low = int(lows[j])
        high = int(lows[j + 1]) - 1 if j + 1 < len(lows) else None
        if high is None:
            label = f"{low}+"
        elif high == low:
            label = str(low)
        else:
            label = f"{low}\N{EN DASH}{high}"
        bins.append({"label": label, "low": low, "high": high, "items": int(tallies[j])})
    return bins


def _as_counts(counts: Counts) -> npt.NDArray[np.int64]:
    """``counts`` as a flat int64 array, refusing floats (no silent truncation) and negatives."""
    values = np.asarray(counts)
    if values.size and values.dtype.kind not in "iu":
        raise TypeError(f"counts must be integers, not {values.dtype}")
    flat = values.astype(np.int64).ravel()
    if flat.size and flat.min() < 0:
        raise ValueError("counts must not be negative")
    return flat
