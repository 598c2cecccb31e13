"""Claims under concurrency: many annotators at once never break the overlap or the leases.

The claim tests run real threads, each with its own database connection, so they need
``transactional_db`` (every thread must see what the others committed). PostgreSQL runs
them with 16 threads: its row locks (``SELECT … FOR UPDATE SKIP LOCKED``) are what keep
concurrent claimers apart. SQLite runs smaller versions: its transactions start
IMMEDIATE, so writers take turns and the same guarantees must hold.

``campaign_assign_next`` locks only the participant row (``of=("self",)``), never the
campaign's, so claims in one campaign run side by side (the slow-claim test) and the
16-thread test depends on the item row lock: it fails if that lock is dropped (checked by
mutation).
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection, connections
from django.db.models import Count, Q
from django.utils import timezone

from annotation.models import Assignment, Campaign, CampaignItem, Participant
from annotation.services import assignments
from annotation.services.assignments import campaign_assign_next, lease_sweep, rating_submit
from annotation.services.campaigns import participant_join
from tests.annotation.factories import campaign, explained_runs
from tests.factories import UserFactory
from xrec_site.roles import ANNOTATOR

ON_POSTGRESQL = connection.vendor == "postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason="tests PostgreSQL row locks (SELECT … FOR UPDATE); run with DATABASE_URL=postgres://… to include it",
)

OVERLAP = 3
# Safety net: the pool below lasts 9 rounds of 16 claims; a loop that never ends is a bug.
MAX_ROUNDS = 60


def _participants(study: Campaign, count: int) -> list[Participant]:
    return [
        participant_join(campaign=study, user=UserFactory(username=f"annotator{index}", role=ANNOTATOR))
        for index in range(count)
    ]


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released together by a barrier; re-raise the first
    error. Each thread closes its connection, so the test database can be flushed after."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait(timeout=30)
            return call()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=120) for future in futures]


def _claim_and_answer(participant: Participant) -> int | None:
    """One annotator's step: take the next item and answer it; the assignment id or None."""
    assignment = campaign_assign_next(participant=participant)
    if assignment is None:
        return None
    answers = {criterion.name: 5 for criterion in participant.campaign.criteria.all()}
    rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    return assignment.pk


def _assert_overlap_held(study: Campaign) -> None:
    """No item is held or answered by more than k annotators, and each item's ``n_live``
    counts exactly its live (active or submitted) assignments."""
    items = CampaignItem.objects.filter(campaign=study).annotate(
        live=Count("assignments", filter=~Q(assignments__status=Assignment.Status.EXPIRED))
    )
    for item in items:
        assert item.live <= study.overlap, f"{item}: {item.live} live assignments, overlap {study.overlap}"
        assert item.n_live == item.live, f"{item}: n_live {item.n_live}, live assignments {item.live}"
    given = Counter(Assignment.objects.filter(campaign=study).values_list("participant_id", "item_id"))
    assert all(count == 1 for count in given.values()), "an annotator was given the same item twice"


def _claim_until_pool_is_used_up(study: Campaign, participants: list[Participant]) -> int:
    """Rounds of simultaneous claims until a round hands out nothing; returns the rounds run."""
    for rounds in range(1, MAX_ROUNDS + 1):
        claimed = _at_once([functools.partial(_claim_and_answer, participant) for participant in participants])
        _assert_overlap_held(study)
        if not any(claimed):
            return rounds
    pytest.fail(f"the pool was not used up after {MAX_ROUNDS} rounds")


def _assert_pool_used_up(study: Campaign) -> None:
    regular = CampaignItem.objects.filter(campaign=study, kind=CampaignItem.Kind.REGULAR)
    assert all(item.n_live == study.overlap for item in regular), "a slot was left unclaimed"
    assert Assignment.objects.filter(campaign=study, status=Assignment.Status.SUBMITTED).count() == (
        regular.count() * study.overlap
    )


@postgresql_only
def test_sixteen_annotators_claiming_at_once_never_exceed_the_overlap(transactional_db) -> None:
    # 12 users, top 2, 2 runs: 48 items, 144 slots, 9 rounds of 16 claims.
    study = campaign(runs=explained_runs(n_users=12, depth=2, n_runs=2), overlap=OVERLAP, items_per_annotator=1_000)
    participants = _participants(study, 16)

    rounds = _claim_until_pool_is_used_up(study, participants)

    _assert_pool_used_up(study)
    assert rounds >= 9


def test_four_annotators_claiming_at_once_never_exceed_the_overlap(transactional_db) -> None:
    # The same race, smaller, on either database (SQLite too, where writers take turns).
    study = campaign(runs=explained_runs(n_users=8, depth=1, n_runs=2), overlap=OVERLAP, items_per_annotator=1_000)
    participants = _participants(study, 4)

    _claim_until_pool_is_used_up(study, participants)

    _assert_pool_used_up(study)


def test_one_annotator_in_many_tabs_holds_one_active_assignment(transactional_db) -> None:
    study = campaign(runs=explained_runs(n_users=8, depth=1, n_runs=2), overlap=OVERLAP, items_per_annotator=1_000)
    (participant,) = _participants(study, 1)
    tabs = 8 if ON_POSTGRESQL else 4

    for _ in range(4):
        served = _at_once([lambda: campaign_assign_next(participant=participant)] * tabs)

        assert len({assignment.pk for assignment in served}) == 1, "tabs were given different items"
        active = Assignment.objects.filter(participant=participant, status=Assignment.Status.ACTIVE)
        assert list(active.values_list("pk", flat=True)) == [served[0].pk]
        _assert_overlap_held(study)
        answers = {criterion.name: 5 for criterion in study.criteria.all()}
        rating_submit(assignment=served[0], answers=answers, submission_id=uuid.uuid4())


@postgresql_only
def test_a_slow_claim_does_not_hold_up_other_annotators(transactional_db, monkeypatch) -> None:
    study = campaign(runs=explained_runs(n_users=8, depth=1, n_runs=2), overlap=OVERLAP, items_per_annotator=1_000)
    slow, quick = _participants(study, 2)
    slow_is_claiming, release_slow = threading.Event(), threading.Event()
    claim = assignments._claim_regular

    def paused_claim(
        participant: Participant, previous: assignments._Recent | None, last_key: int | None
    ) -> CampaignItem | None:
        if participant.pk == slow.pk:  # inside the slow annotator's claim transaction
            slow_is_claiming.set()
            release_slow.wait(timeout=30)
        return claim(participant, previous, last_key)

    def quick_claim() -> Assignment | OperationalError | None:
        assert slow_is_claiming.wait(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            return campaign_assign_next(participant=quick)
        except OperationalError as exc:  # lock_timeout: it waited on the slow claim's locks
            return exc
        finally:
            release_slow.set()

    monkeypatch.setattr(assignments, "_claim_regular", paused_claim)
    slow_result, quick_result = _at_once([lambda: campaign_assign_next(participant=slow), quick_claim])

    assert isinstance(slow_result, Assignment)
    assert isinstance(quick_result, Assignment), f"the quick annotator waited for the slow one: {quick_result}"


def test_an_expired_lease_returns_the_item_to_the_pool(db) -> None:
    # One item and one slot: only a lease that runs out lets a second annotator have it.
    study = campaign(runs=explained_runs(n_users=8, depth=1, n_runs=1), sample="random", sample_size=1, overlap=1)
    first, second = _participants(study, 2)
    held = campaign_assign_next(participant=first)
    assert held is not None
    assert campaign_assign_next(participant=second) is None

    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert lease_sweep(campaign=study) == 1

    held.refresh_from_db()
    assert held.status == Assignment.Status.EXPIRED
    assert CampaignItem.objects.get(pk=held.item_id).n_live == 0
    taken = campaign_assign_next(participant=second)
    assert taken is not None and taken.item_id == held.item_id
    assert CampaignItem.objects.get(pk=held.item_id).n_live == 1
    assert lease_sweep(campaign=study) == 0  # a fresh lease is left alone


# Rounds of the mixed-load test: the deadlock it guards against showed in some runs only.
MIXED_ROUNDS = 20


def _late_answer(assignment: Assignment) -> str:
    """An annotator answering after their lease ran out: stored, or refused with a message."""
    answers = {criterion.name: 4 for criterion in assignment.campaign.criteria.all()}
    try:
        rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    except assignments.SubmitError:
        return "refused"
    return "stored"


@postgresql_only
def test_claims_submits_late_answers_and_sweeps_together_never_deadlock(transactional_db, monkeypatch) -> None:
    # Claimers take and answer items while others answer items whose lease ran out (which
    # re-takes a slot) and sweeps expire leases: the three paths lock items, assignments and
    # participants at the same time. With the retry off, any deadlock or serialization
    # failure fails a thread: the lock order alone must hold.
    monkeypatch.setattr(assignments, "_RETRYABLE", frozenset())
    study = campaign(runs=explained_runs(n_users=40, depth=2, n_runs=2), overlap=OVERLAP, items_per_annotator=1_000)
    claimers = _participants(study, 20)
    late = [
        participant_join(campaign=study, user=UserFactory(username=f"late{index}", role=ANNOTATOR))
        for index in range(10)
    ]
    outcomes: Counter[str] = Counter()
    for _ in range(MIXED_ROUNDS):
        held = [campaign_assign_next(participant=participant) for participant in late]
        expired = [assignment for assignment in held if assignment is not None]
        Assignment.objects.filter(pk__in=[a.pk for a in expired]).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        calls: list[Callable[[], Any]] = [functools.partial(_claim_and_answer, p) for p in claimers]
        calls += [functools.partial(_late_answer, assignment) for assignment in expired]
        calls += [functools.partial(lease_sweep, campaign=study)] * 4

        results = _at_once(calls)

        outcomes.update(result for result in results if isinstance(result, str))
        _assert_overlap_held(study)
    assert outcomes["stored"] + outcomes["refused"] > 0


class _DatabaseError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _failing_once(sqlstate: str) -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def transaction_body() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected") from _DatabaseError(sqlstate)
        return "done"

    return transaction_body, calls


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_deadlocked_or_unserializable_transaction_runs_once_more(sqlstate: str) -> None:
    body, calls = _failing_once(sqlstate)

    assert assignments._retried(body)() == "done"
    assert len(calls) == 2


def test_other_errors_and_inner_transactions_are_not_run_again(db) -> None:
    body, calls = _failing_once("40P01")  # db: the test runs inside a transaction
    with pytest.raises(OperationalError):
        assignments._retried(body)()
    assert len(calls) == 1


def test_a_lock_timeout_is_not_run_again() -> None:
    body, calls = _failing_once("55P03")
    with pytest.raises(OperationalError):
        assignments._retried(body)()
    assert len(calls) == 1
