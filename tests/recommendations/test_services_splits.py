"""Splits are stored, deterministic, and never leak test interactions into train."""

import numpy as np
import pytest

from recommendations.models import Interaction, Split
from recommendations.services.splits import SplitError, split_get_or_create, split_parts
from tests.recommendations.factories import rated_dataset

pytestmark = pytest.mark.django_db


def _test_ids(split: Split) -> list[int]:
    return sorted(split.test_rows.values_list("interaction_id", flat=True))


def _assert_disjoint_and_complete(split: Split) -> None:
    train, test = split_parts(split)
    assert not set(train.ids.tolist()) & set(test.ids.tolist())
    assert len(train) + len(test) == Interaction.objects.filter(dataset=split.dataset).count()
    assert (split.n_train, split.n_test) == (len(train), len(test))


def test_leave_last_out_puts_each_users_latest_interaction_in_test() -> None:
    dataset = rated_dataset(n_users=12, per_user=6)

    split = split_get_or_create(dataset=dataset, mode=Split.Mode.LEAVE_LAST_OUT, min_interactions=5)

    latest: dict[int, tuple[int, int]] = {}
    for pk, user, timestamp in Interaction.objects.filter(dataset=dataset).values_list("id", "user_id", "timestamp"):
        assert timestamp is not None
        if user not in latest or timestamp > latest[user][1]:
            latest[user] = (pk, timestamp)
    assert _test_ids(split) == sorted(pk for pk, _ in latest.values())
    assert split.n_test_users == 12
    _assert_disjoint_and_complete(split)


def test_leave_last_out_keeps_users_below_the_minimum_in_train_only() -> None:
    dataset = rated_dataset(n_users=5, per_user=4)

    with pytest.raises(SplitError, match="would put 0 of 20 interactions in test"):
        split_get_or_create(dataset=dataset, min_interactions=5)
    split = split_get_or_create(dataset=dataset, min_interactions=4)

    assert split.n_test == 5


def test_a_split_is_stored_once_and_read_back() -> None:
    dataset = rated_dataset()

    first = split_get_or_create(dataset=dataset, mode=Split.Mode.RANDOM, seed=7, test_ratio=0.25)
    again = split_get_or_create(dataset=dataset, mode=Split.Mode.RANDOM, seed=7, test_ratio=0.25)

    assert again.pk == first.pk and Split.objects.count() == 1


@pytest.mark.parametrize("mode", [Split.Mode.LEAVE_LAST_OUT, Split.Mode.GLOBAL_TIME, Split.Mode.RANDOM])
def test_same_parameters_and_seed_give_the_same_split_when_recomputed(mode: str) -> None:
    dataset = rated_dataset()
    first = _test_ids(split_get_or_create(dataset=dataset, mode=mode, seed=3))
    Split.objects.all().delete()

    second = _test_ids(split_get_or_create(dataset=dataset, mode=mode, seed=3))

    assert first == second


def test_random_split_depends_on_the_seed_and_hits_the_ratio() -> None:
    dataset = rated_dataset(n_users=30, per_user=8)  # 240 interactions

    a = split_get_or_create(dataset=dataset, mode=Split.Mode.RANDOM, seed=1, test_ratio=0.25)
    b = split_get_or_create(dataset=dataset, mode=Split.Mode.RANDOM, seed=2, test_ratio=0.25)

    assert a.n_test == b.n_test == 60
    assert _test_ids(a) != _test_ids(b)
    _assert_disjoint_and_complete(a)


def test_global_cut_off_puts_no_test_interaction_before_a_train_one() -> None:
    dataset = rated_dataset()

    split = split_get_or_create(dataset=dataset, mode=Split.Mode.GLOBAL_TIME, test_ratio=0.2)

    train, test = split_parts(split)
    assert train.timestamps.max() < test.timestamps.min() == split.used_cutoff_timestamp
    assert abs(len(test) / (len(train) + len(test)) - 0.2) < 0.02
    _assert_disjoint_and_complete(split)


def test_global_cut_off_at_a_given_time() -> None:
    dataset = rated_dataset()
    times = np.sort(np.asarray(Interaction.objects.filter(dataset=dataset).values_list("timestamp", flat=True)))
    cutoff = int(times[100])

    split = split_get_or_create(dataset=dataset, mode=Split.Mode.GLOBAL_TIME, cutoff_timestamp=cutoff)

    assert split.n_test == int((times >= cutoff).sum()) and split.used_cutoff_timestamp == cutoff


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "chronological"}, "unknown split mode 'chronological'"),
        ({"min_interactions": 1}, "needs min_interactions ≥ 2"),
        ({"mode": Split.Mode.RANDOM, "test_ratio": 1.5}, "test_ratio must lie strictly between 0 and 1"),
        ({"mode": Split.Mode.RANDOM, "test_ratio": 0.0}, "test_ratio must lie strictly between 0 and 1"),
    ],
)
def test_impossible_parameters_are_refused(kwargs: dict, message: str) -> None:
    dataset = rated_dataset()

    with pytest.raises(SplitError, match=message):
        split_get_or_create(dataset=dataset, **kwargs)
    assert not Split.objects.exists()


def test_temporal_split_needs_timestamps() -> None:
    dataset = rated_dataset(timestamps=False)

    with pytest.raises(SplitError, match="needs timestamps"):
        split_get_or_create(dataset=dataset, mode=Split.Mode.GLOBAL_TIME)
