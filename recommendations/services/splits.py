"""Train/test splits: computed once from the interactions, stored, and read back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.db import IntegrityError, transaction

from recommendations.models import Dataset, Interaction, Split, SplitTestInteraction
from recommendations.shared.bulk import insert_rows


class SplitError(ValueError):
    """Split parameters that cannot work for this dataset; the message says why."""


@dataclass(frozen=True)
class Rows:
    """A split's interactions as parallel arrays, in (user, timestamp, id) order."""

    ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray  # NaN where the dataset has no rating
    timestamps: np.ndarray  # -1 where the interaction has no time

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, mask: np.ndarray) -> Rows:
        return Rows(self.ids[mask], self.users[mask], self.items[mask], self.ratings[mask], self.timestamps[mask])


def dataset_rows(dataset: Dataset) -> Rows:
    """Every interaction of ``dataset`` as arrays, sorted by user, then time, then id."""
    values = (
        Interaction.objects.of_dataset(dataset)
        .order_by("user_id", "timestamp", "id")
        .values_list("id", "user_id", "item_id", "rating", "timestamp")
    )
    ids, users, items, ratings, timestamps = [], [], [], [], []
    for pk, user, item, rating, timestamp in values.iterator(chunk_size=50_000):
        ids.append(pk)
        users.append(user)
        items.append(item)
        ratings.append(np.nan if rating is None else rating)
        timestamps.append(-1 if timestamp is None else timestamp)
    return Rows(
        np.asarray(ids, dtype=np.int64),
        np.asarray(users, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.asarray(ratings, dtype=np.float64),
        np.asarray(timestamps, dtype=np.int64),
    )


def leave_last_out(rows: Rows, min_interactions: int) -> np.ndarray:
    # Rows are sorted by (user, time, id): a user's last row is the one before the next user.
    if not len(rows):
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, rows.users[1:] != rows.users[:-1]])
    ends = np.r_[starts[1:], len(rows)] - 1
    counts = ends - starts + 1
    test = np.zeros(len(rows), dtype=bool)
    test[ends[counts >= min_interactions]] = True
    return test


def _global_time(rows: Rows, test_ratio: float, cutoff: int | None) -> tuple[np.ndarray, int]:
    timed = rows.timestamps >= 0
    if not timed.any():
        raise SplitError("a temporal split needs timestamps, and this dataset has none")
    if cutoff is None:
        ordered = np.sort(rows.timestamps[timed])
        cutoff = int(ordered[min(len(ordered) - 1, int(len(ordered) * (1 - test_ratio)))])
    # Everything at the cut-off time goes to test, so no test event precedes a train one.
    return timed & (rows.timestamps >= cutoff), cutoff


def _random(rows: Rows, test_ratio: float, seed: int) -> np.ndarray:
    # Drawn over interactions in id order, so the split depends on the seed and the data only.
    order = np.argsort(rows.ids, kind="stable")
    chosen = np.random.default_rng(seed).permutation(len(rows))[: round(len(rows) * test_ratio)]
    test = np.zeros(len(rows), dtype=bool)
    test[order[chosen]] = True
    return test


def split_get_or_create(
    *,
    dataset: Dataset,
    mode: str = Split.Mode.LEAVE_LAST_OUT,
    seed: int = 0,
    min_interactions: int = 5,
    test_ratio: float = 0.2,
    cutoff_timestamp: int | None = None,
) -> Split:
    """Return the stored split of ``dataset`` with these parameters, computing it once.

    Deterministic: the same dataset, parameters and seed always give the same test set.
    Parameters a mode does not use are normalised away, so they never make a second copy.
    Raises SplitError for parameters that cannot produce a train and a test side.
    """
    if mode not in Split.Mode.values:
        raise SplitError(f"unknown split mode {mode!r}; choose one of {', '.join(Split.Mode.values)}")
    if mode == Split.Mode.LEAVE_LAST_OUT:
        if min_interactions < 2:
            raise SplitError("leave-last-out needs min_interactions ≥ 2, or a user would have no train history")
        seed, test_ratio, cutoff_timestamp = 0, 0.0, None
    elif not 0 < test_ratio < 1 and cutoff_timestamp is None:
        raise SplitError(f"test_ratio must lie strictly between 0 and 1, got {test_ratio}")
    if mode == Split.Mode.GLOBAL_TIME:
        seed, min_interactions = 0, 0
        if cutoff_timestamp is not None:
            test_ratio = 0.0
    if mode == Split.Mode.RANDOM:
        min_interactions, cutoff_timestamp = 0, None
    params = {
        "dataset": dataset,
        "mode": mode,
        "seed": seed,
        "min_interactions": min_interactions,
        "test_ratio": test_ratio,
        "cutoff_timestamp": cutoff_timestamp,
    }
    existing = Split.objects.filter(**params).first()
    if existing is not None:
        return existing

    rows = dataset_rows(dataset)
    used_cutoff = None
    if mode == Split.Mode.LEAVE_LAST_OUT:
        test = leave_last_out(rows, min_interactions)
    elif mode == Split.Mode.GLOBAL_TIME:
        test, used_cutoff = _global_time(rows, test_ratio, cutoff_timestamp)
    else:
        test = _random(rows, test_ratio, seed)
    n_test = int(test.sum())
    if n_test == 0 or n_test == len(rows):
        raise SplitError(f"this split would put {n_test} of {len(rows)} interactions in test; adjust its parameters")
    try:
        with transaction.atomic():
            split = Split.objects.create(
                **params,
                used_cutoff_timestamp=used_cutoff,
                n_train=len(rows) - n_test,
                n_test=n_test,
                n_test_users=len(np.unique(rows.users[test])),
            )
            insert_rows(SplitTestInteraction, ["split", "interaction"], _pairs(split.pk, rows.ids[test]))
    except IntegrityError:  # computed concurrently by another request: use that one
        return Split.objects.get(**params)
    return split


def _pairs(split_id: int, interaction_ids: np.ndarray) -> Iterable[tuple[int, int]]:
    return ((split_id, int(pk)) for pk in interaction_ids)


def split_parts(split: Split) -> tuple[Rows, Rows]:
    """The split's (train, test) interactions as arrays, read from what was stored."""
    rows = dataset_rows(split.dataset)
    test_ids = np.fromiter(
        split.test_rows.values_list("interaction_id", flat=True).iterator(chunk_size=50_000), dtype=np.int64
    )
    test = np.isin(rows.ids, test_ids)
    return rows.take(~test), rows.take(test)
