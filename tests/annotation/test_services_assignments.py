"""Handing out items and storing answers: order, overlap, leases, exactly-once, revisions, checks."""

import itertools
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Assignment, CampaignItem, Participant, Rating, RatingRevision, Submission
from annotation.services.assignments import (
    SubmitError,
    campaign_assign_next,
    lease_sweep,
    participant_locked,
    rating_submit,
)
from annotation.services.campaigns import campaign_reference_item_add, participant_join
from explanations.models import Explanation
from tests.annotation.factories import campaign, explained_runs, take
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def likert(study, value: int = 7) -> dict[str, int]:
    return {criterion.name: value for criterion in study.criteria.all()}


def answer(assignment: Assignment, value: int = 7, **kwargs):
    study = assignment.campaign
    answers = {"fits_user": "no"} if assignment.item.kind == CampaignItem.Kind.ATTENTION else likert(study, value)
    return rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4(), **kwargs)


def work_through(participant, limit: int = 100) -> list[Assignment]:
    given = []
    for _ in range(limit):
        assignment = campaign_assign_next(participant=participant)
        if assignment is None:
            break
        given.append(assignment)
        answer(assignment)
    return given


def test_asking_again_returns_the_same_item_with_its_lease_renewed(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1))
    participant = participant_join(campaign=study, user=annotator)

    first = take(participant)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    again = take(participant)

    assert again.pk == first.pk
    assert again.expires_at > timezone.now() + timedelta(minutes=study.lease_minutes - 1)
    assert Assignment.objects.filter(participant=participant).count() == 1


def test_quota_is_met_then_the_participant_is_completed(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=6, n_runs=1), items_per_annotator=3)
    participant = participant_join(campaign=study, user=annotator)

    given = work_through(participant)

    assert len(given) == 3
    participant.refresh_from_db()
    assert participant.completed_at is not None


def test_never_two_items_of_the_same_recommendation_or_user_in_a_row_while_another_is_left(annotator) -> None:
    # Two runs explain each recommendation, so the pool holds two items per recommendation.
    study = campaign(runs=explained_runs(n_users=6, n_runs=2), items_per_annotator=12, overlap=1)
    participant = participant_join(campaign=study, user=annotator)

    given = work_through(participant)

    users = [a.item.recommendation.user_id for a in given]
    assert len(given) == 12, "spacing never sends the participant away while items are left"
    repeats = [index for index, (a, b) in enumerate(itertools.pairwise(users), start=1) if a == b]
    # A user twice in a row only once nothing else was left: from there on, one user's items.
    assert not repeats or len(set(users[repeats[0] - 1 :])) == 1, users
    assert len({a.item_id for a in given}) == len(given)


def test_no_item_goes_to_more_than_k_annotators_and_each_is_seen_once_per_annotator() -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1), overlap=2, items_per_annotator=10)
    participants = [participant_join(campaign=study, user=UserFactory()) for _ in range(5)]

    for participant in participants:
        work_through(participant)

    per_item: dict[int, int] = {}
    for item_id in Assignment.objects.filter(campaign=study).values_list("item_id", flat=True):
        per_item[item_id] = per_item.get(item_id, 0) + 1
    assert set(per_item.values()) == {2}  # 4 items x k=2 = 8 slots, all used, none over
    assert Assignment.objects.filter(campaign=study).count() == 8
    assert all(item.n_live == 2 for item in study.items.all())


def test_annotators_see_the_pool_in_different_orders() -> None:
    study = campaign(runs=explained_runs(n_users=10, n_runs=1), overlap=5, items_per_annotator=10)
    orders = []
    for _ in range(3):
        participant = participant_join(campaign=study, user=UserFactory())
        orders.append([a.item_id for a in work_through(participant)])

    assert len({tuple(order) for order in orders}) > 1


def test_each_claim_goes_on_round_the_shuffled_pool_from_the_last_item(annotator) -> None:
    # One run, one item per user: spacing never reorders anything here.
    study = campaign(runs=explained_runs(n_users=8, n_runs=1), overlap=1, items_per_annotator=8)
    ring = list(study.items.filter(kind=CampaignItem.Kind.REGULAR).order_by("shuffle_key").values_list("pk", flat=True))
    other = participant_join(campaign=study, user=UserFactory())
    participant = participant_join(campaign=study, user=annotator)
    first = take(participant)
    held = take(other)  # an item someone else holds (k = 1) is passed over...
    answer(first)
    start = ring.index(first.item_id)
    rotated = ring[start:] + ring[:start]

    statements: list[tuple[str, tuple]] = []

    def record(execute, sql, params, many, context):
        given = params.values() if isinstance(params, dict) else params or ()
        statements.append((sql, tuple(given)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        second = campaign_assign_next(participant=participant)
    assert second is not None
    answer(second)
    given = [first, second, *work_through(participant)]  # the pool runs dry for them
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    lease_sweep(campaign=study)
    participant.refresh_from_db()
    participant.completed_at = None
    participant.save(update_fields=["completed_at"])
    given += work_through(participant)

    # ...and comes round after the wrap once its lease ran out.
    expected = [pk for pk in rotated if pk != held.item_id] + [held.item_id]
    assert [a.item_id for a in given] == expected
    # The claim starts at the last item's key, not at the participant's first one: the
    # database never steps over the items they already had again.
    first_key = CampaignItem.objects.get(pk=first.item_id).shuffle_key
    claim = next(params for sql, params in statements if "shuffle_key >=" in sql)
    assert first_key in claim


def test_an_expired_lease_returns_the_item_to_the_pool() -> None:
    study = campaign(
        runs=explained_runs(n_users=3, n_runs=1), sample="random", sample_size=1, overlap=1, items_per_annotator=1
    )
    first = participant_join(campaign=study, user=UserFactory())
    second = participant_join(campaign=study, user=UserFactory())
    held = take(first)
    assert campaign_assign_next(participant=second) is None  # the only slot is leased

    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second.completed_at = None
    second.save()
    assert lease_sweep(campaign=study) == 1

    taken = take(second)
    assert taken is not None and taken.item_id == held.item_id
    held.refresh_from_db()
    assert held.status == Assignment.Status.EXPIRED


def test_a_late_answer_keeps_a_free_slot_but_not_one_taken_by_someone_else() -> None:
    study = campaign(
        runs=explained_runs(n_users=3, n_runs=1), sample="random", sample_size=1, overlap=1, items_per_annotator=1
    )
    late = participant_join(campaign=study, user=UserFactory())
    held = take(late)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    lease_sweep(campaign=study)
    held.refresh_from_db()

    answer(held)  # the slot is free again: the answer is kept
    held.refresh_from_db()
    assert held.status == Assignment.Status.SUBMITTED
    assert CampaignItem.objects.get(pk=held.item_id).n_live == 1

    other = campaign(
        runs=list(study.generation_runs.all()),
        sample="random",
        sample_size=1,
        overlap=1,
        items_per_annotator=1,
        name="b",
    )
    slow = participant_join(campaign=other, user=UserFactory())
    fast = participant_join(campaign=other, user=UserFactory())
    lost = take(slow)
    Assignment.objects.filter(pk=lost.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer(take(fast))  # sweeps the lease and takes the slot
    lost.refresh_from_db()
    with pytest.raises(SubmitError, match="went to another annotator"):
        answer(lost)
    assert not Rating.objects.filter(assignment=lost).exists()


def test_the_same_submission_id_is_stored_once(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    assignment = take(participant_join(campaign=study, user=annotator))
    submission_id = uuid.uuid4()

    first = rating_submit(assignment=assignment, answers=likert(study, 3), submission_id=submission_id)
    second = rating_submit(assignment=assignment, answers=likert(study, 9), submission_id=submission_id)

    assert not first.duplicate and second.duplicate
    assert Submission.objects.count() == 1
    assert list(Rating.objects.values_list("value", flat=True)) == [3, 3, 3, 3]
    assert RatingRevision.objects.count() == 0


def test_a_revision_replaces_the_answer_and_keeps_the_old_one(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    assignment = take(participant_join(campaign=study, user=annotator))
    rating_submit(assignment=assignment, answers=likert(study, 3), submission_id=uuid.uuid4())
    served_time = Assignment.objects.get(pk=assignment.pk).seconds_on_task

    result = rating_submit(
        assignment=assignment, answers=likert(study, 3) | {"faithfulness": 8}, submission_id=uuid.uuid4()
    )

    assert result.revised
    assert dict(Rating.objects.values_list("criterion__name", "value"))["faithfulness"] == 8
    revision = RatingRevision.objects.get()
    assert revision.value == 3 and revision.rating.criterion.name == "faithfulness"
    assignment.refresh_from_db()
    assert assignment.revisions == 1 and assignment.seconds_on_task == served_time


def test_a_closed_campaign_refuses_answers_and_revisions(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    assignment = take(participant_join(campaign=study, user=annotator))
    study.close()

    with pytest.raises(SubmitError, match="closed"):
        answer(assignment)
    assert Rating.objects.count() == 0 and Submission.objects.count() == 0


def test_time_on_task_is_served_to_submitted_and_visible_time_is_kept(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    assignment = take(participant_join(campaign=study, user=annotator))
    Assignment.objects.filter(pk=assignment.pk).update(served_at=timezone.now() - timedelta(seconds=30))
    assignment.refresh_from_db()

    answer(assignment, visible_seconds=12.5)

    assignment.refresh_from_db()
    assert assignment.seconds_on_task is not None and 30 <= assignment.seconds_on_task < 40
    assert assignment.visible_seconds == 12.5


def test_training_comes_first_and_gives_feedback(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1))
    explanation = Explanation.objects.earliest("pk")
    campaign_reference_item_add(
        campaign=study, explanation=explanation, kind="training", accepted={"reasonability": [1, 4]}, feedback="Vague."
    )
    participant = participant_join(campaign=study, user=annotator)

    first = take(participant)
    result = answer(first, value=8)

    assert first.item.kind == CampaignItem.Kind.TRAINING
    assert result.feedback == [{"criterion": "reasonability", "accepted": [1, 4], "given": 8, "expected": "1\u20134"}]
    assert take(participant).item.kind == CampaignItem.Kind.REGULAR
    participant.refresh_from_db()
    assert participant.training_done_at is not None and participant.checks_failed == 0  # training never flags


def test_checks_come_after_every_n_items_and_failures_flag_the_annotator(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=6, n_runs=1), attention_checks=1, check_every=2, max_check_failures=0)
    campaign_reference_item_add(
        campaign=study, explanation=Explanation.objects.earliest("pk"), kind="gold", accepted={"reasonability": [1, 3]}
    )
    participant = participant_join(campaign=study, user=annotator)

    kinds = []
    for _ in range(8):
        assignment = campaign_assign_next(participant=participant)
        if assignment is None:
            break
        kinds.append(assignment.item.kind)
        if assignment.item.kind == CampaignItem.Kind.ATTENTION:
            rating_submit(assignment=assignment, answers={"fits_user": "no"}, submission_id=uuid.uuid4())
        else:
            answer(assignment, value=9)  # outside the gold range

    assert kinds[:6] == ["regular", "regular", kinds[2], "regular", "regular", kinds[5]]
    assert {kinds[2], kinds[5]} == {"gold", "attention"}
    participant.refresh_from_db()
    assert (participant.checks_passed, participant.checks_failed) == (1, 1)
    assert participant.flagged


def test_a_revised_gold_answer_updates_the_flag(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), check_every=1, max_check_failures=0)
    campaign_reference_item_add(
        campaign=study, explanation=Explanation.objects.earliest("pk"), kind="gold", accepted={"reasonability": [1, 3]}
    )
    participant = participant_join(campaign=study, user=annotator)
    answer(take(participant))
    gold = take(participant)
    assert gold.item.kind == CampaignItem.Kind.GOLD

    answer(gold, value=9)
    participant.refresh_from_db()
    assert participant.flagged
    answer(gold, value=2)
    participant.refresh_from_db()
    assert not participant.flagged and participant.checks_passed == 1


def test_once_every_check_is_given_claims_stop_looking_for_one_until_a_new_gold_item(annotator) -> None:
    study = campaign(attention_checks=1, check_every=1, items_per_annotator=8)
    participant = participant_join(campaign=study, user=annotator)
    kinds = []
    for _ in range(4):
        assignment = take(participant)
        kinds.append(assignment.item.kind)
        answer(assignment, value=5)
    participant.refresh_from_db()
    assert kinds.count(CampaignItem.Kind.ATTENTION) == 1 and participant.checks_done_at is not None

    gold = campaign_reference_item_add(
        campaign=study, explanation=Explanation.objects.earliest("pk"), kind="gold", accepted={"reasonability": [1, 3]}
    )
    participant.refresh_from_db()
    assert participant.checks_done_at is None
    later = []
    for _ in range(2):
        assignment = take(participant)
        later.append(assignment.item_id)
        answer(assignment, value=5)
    assert gold.pk in later


def test_then_next_claims_the_next_item_in_the_same_transaction_as_a_separate_claim_would(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=6, n_runs=1), items_per_annotator=3)
    participant = participant_join(campaign=study, user=annotator)

    given = [take(participant)]
    while True:
        result = answer(given[-1], then_next=True)
        assert result.next_claimed and not result.duplicate
        if result.following is None:
            break
        assert result.following.participant.n_done == len(given), "the count the quota check saw"
        given.append(result.following)

    assert len(given) == 3 and len({a.item_id for a in given}) == 3
    assert Assignment.objects.filter(participant=participant, status=Assignment.Status.SUBMITTED).count() == 3
    participant.refresh_from_db()
    assert participant.n_done == 3 and participant.completed_at is not None
    # Each claim took one slot of its item, as campaign_assign_next does.
    assert all(CampaignItem.objects.get(pk=a.item_id).n_live == 1 for a in given)


def test_then_next_returns_the_held_item_after_a_revision_and_claims_nothing_after_training(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1))
    campaign_reference_item_add(
        campaign=study,
        explanation=Explanation.objects.earliest("pk"),
        kind="training",
        accepted={"reasonability": [1, 4]},
        feedback="Vague.",
    )
    participant = participant_join(campaign=study, user=annotator)
    training = take(participant)

    feedback = answer(training, value=8, then_next=True)
    assert feedback.feedback and not feedback.next_claimed and feedback.following is None
    assert Assignment.objects.filter(participant=participant).count() == 1, "the feedback is shown first"

    first = take(participant)
    second = answer(first, then_next=True).following
    revised = answer(first, value=2, then_next=True)

    assert revised.revised and revised.following is not None and revised.following.pk == second.pk


def test_a_repeated_submission_does_not_claim(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1))
    assignment = take(participant_join(campaign=study, user=annotator))
    submission_id = uuid.uuid4()

    first = rating_submit(assignment=assignment, answers=likert(study), submission_id=submission_id, then_next=True)
    again = rating_submit(assignment=assignment, answers=likert(study), submission_id=submission_id, then_next=True)

    assert first.following is not None
    assert again.duplicate and not again.next_claimed and again.following is None
    assert Assignment.objects.filter(participant=first.following.participant).count() == 2


def test_the_locked_participant_comes_with_its_campaign_in_one_query(annotator, django_assert_num_queries) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1), overlap=1)
    participant = participant_join(campaign=study, user=annotator)

    with transaction.atomic(), django_assert_num_queries(1):
        locked = participant_locked(participant.pk)
        assert (locked.pk, locked.campaign.pk, locked.campaign.routing) == (participant.pk, study.pk, study.routing)
    assert locked.campaign.profile_fields == study.profile_fields  # JSON decoded, as the ORM reads it
    with transaction.atomic(), pytest.raises(Participant.DoesNotExist):
        participant_locked(participant.pk + 1000)


def test_a_claimed_item_is_read_back_as_the_orm_reads_it(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1), overlap=2)
    claimed = take(participant_join(campaign=study, user=annotator)).item

    fresh = CampaignItem.objects.get(pk=claimed.pk)
    # Every field, JSON decoded: the slot taken in the same statement shows in n_live.
    assert {f.attname: getattr(claimed, f.attname) for f in CampaignItem._meta.concrete_fields} == {
        f.attname: getattr(fresh, f.attname) for f in CampaignItem._meta.concrete_fields
    }
    assert isinstance(claimed.accepted, dict) and claimed.n_live == 1
