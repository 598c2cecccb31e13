"""Handing items to annotators and storing their answers, safely under concurrency.

Guarantees:
- an item is never held or answered by more than ``campaign.overlap`` participants: its
  ``n_live`` counter changes only while the item row is locked, and claims skip rows another
  transaction holds (``FOR NO KEY UPDATE SKIP LOCKED`` on PostgreSQL; SQLite runs
  writers one at a time, since its transactions start IMMEDIATE);
- a participant never gets the same item twice (unique participant + item), and never two
  consecutive items of the same recommendation or dataset user while the pool holds another
  item for them;
- a submission id is stored once: a repeated POST changes nothing and returns the same result.

Locks, on PostgreSQL, are taken in one order: participant, then assignment, then item, items in
id order; and all are FOR NO KEY UPDATE. The key share locks that foreign-key checks take at
commit (Django's constraints are deferred) never wait on those, so a transaction that inserts
an assignment or a rating cannot wait at COMMIT on a sweep that waits on it. A transaction that
still meets a deadlock or serialization failure is run again once (``_retried``).
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, ParamSpec, TypeVar

from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import (
    Assignment,
    Campaign,
    CampaignItem,
    ClaimLabel,
    Criterion,
    ItemClaim,
    Participant,
    Rating,
    RatingRevision,
    Submission,
)
from annotation.services.routing import REFRESH_EVERY, REFRESH_SECONDS
from recommendations.models import Recommendation
from recommendations.shared.queue import enqueue_on_commit
from recommendations.shared.select import Layout, select_list, select_models, table

SWEEP_LIMIT = 200
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# whole, so running it again is safe.
_RETRYABLE = frozenset({"40P01", "40001"})

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def _retried(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` (one transaction) again once if the database rolled it back for a
    deadlock or a serialization failure. Inside an outer transaction the error propagates:
    only the outermost block can be run again."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OperationalError as exc:
            if connection.in_atomic_block or getattr(exc.__cause__, "sqlstate", None) not in _RETRYABLE:
                raise
            logger.warning("%s: %s; running it again", func.__name__, str(exc).splitlines()[0])
            return func(*args, **kwargs)

    return wrapper


class SubmitError(ValueError):
    """A submission cannot be stored; the message is for the annotator, and nothing changed."""


@dataclass
class SubmitResult:
    assignment: Assignment
    duplicate: bool = False
    revised: bool = False
    feedback: list[dict[str, Any]] = field(default_factory=list)
    # With ``then_next``: whether the next item was looked for in the same transaction, and
    # what ``campaign_assign_next`` would have returned (None: the participant is done).
    next_claimed: bool = False
    following: Assignment | None = None


@_retried
def lease_sweep(*, campaign: Campaign) -> int:
    """Expire up to SWEEP_LIMIT unsubmitted assignments whose lease ran out and give their
    slots back to the pool. Returns how many expired. Safe to run concurrently: each
    assignment is expired by exactly one caller (locked rows are skipped, and the status
    update is guarded)."""
    now = timezone.now()
    expired = 0
    with transaction.atomic():
        stale = list(
            Assignment.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(campaign=campaign, status=Assignment.Status.ACTIVE, expires_at__lt=now)
            .values_list("pk", "item_id")[:SWEEP_LIMIT]
        )
        # Items in id order: two sweeps never wait on each other's items in a cycle.
        for assignment_id, item_id in sorted(stale, key=lambda row: (row[1], row[0])):
            if Assignment.objects.filter(pk=assignment_id, status=Assignment.Status.ACTIVE).update(
                status=Assignment.Status.EXPIRED
            ):
                CampaignItem.objects.filter(pk=item_id, kind=CampaignItem.Kind.REGULAR, n_live__gt=0).update(
                    n_live=F("n_live") - 1
                )
                expired += 1
    return expired


def _claim_regular(participant: Participant, previous: _Recent | None, last_key: int | None) -> CampaignItem | None:
    """Lock and take one slot of a pool item this participant has not had; None if none.
    ``last_key``: the shuffle key of their last pool item, if any."""
    campaign = participant.campaign
    values: dict[str, Any] = {"campaign": campaign.pk, "overlap": campaign.overlap, "participant": participant.pk}
    # A first-person participant only gets their own items, all of one (their own) dataset
    # user: nothing to space out.
    spaced = previous is not None and not campaign.is_first_person
    if previous is not None and spaced:
        values |= {"recommendation": previous.recommendation_id, "user": previous.user_id}
    # Pools in the order they are tried: (spaced, priority or None for any).
    pools: list[tuple[bool, int | None]] = [(spaced, None)]
    if campaign.routing == Campaign.Routing.UNCERTAINTY:
        # Routed: the items of the highest priority this participant may take now first; the
        # rest if other annotators hold every one of those at this moment.
        best = _pool_best_priority(campaign, spaced, values)
        if best:
            pools.insert(0, (spaced, best))
    if spaced:
        # Spacing is a preference, not a reason to send the participant away while the pool
        # still holds items for them: when only the previous recommendation's or user's are
        # left, one of those.
        pools.append((False, None))
    # Each participant walks the shuffled pool as a ring from their own random starting key,
    # so the order differs between annotators while every query stays on the pool index. Each
    # claim goes on from the key of their last pool item: starting from the first key every
    # time would step again over every item they already had (an index probe each, so the
    # 500th claim would cost 500). Items passed over while full come round after the wrap.
    start = last_key
    if start is None:
        start = random.Random(f"{campaign.seed}:{participant.pk}").randrange(2**31)  # noqa: S311 - ordering only
    values["start"] = start
    for spaced_pool, priority in pools:
        for half in (">=", "<"):
            item = _pool_take(campaign, values | {"priority": priority}, spaced=spaced_pool, half=half)
            if item is not None:
                return item
    return None


# The claim is the hottest statement of a crowd study (every submit makes one), so it is one
# hand-written statement rather than three ORM queries (building and compiling those cost more
# than running them): pick the first free pool item in ring order, lock it (PostgreSQL: rows
# other transactions hold are skipped), take a slot and return the row. Both backends run the
# same text; only the lock clause is PostgreSQL's (SQLite runs one writer at a time).
_CLAIMED = Layout(CampaignItem, "")


def _pool_where(campaign: Campaign, *, spaced: bool, priority: bool) -> tuple[str, str]:
    """FROM and WHERE of the pool a participant may claim from (named parameters: campaign,
    overlap, participant, and recommendation/user when spaced, priority when given)."""
    joins = ""
    conditions = [
        "ci.campaign_id = %(campaign)s",
        f"ci.kind = '{CampaignItem.Kind.REGULAR}'",
        "ci.n_live < %(overlap)s",
        f"NOT EXISTS (SELECT 1 FROM {table(Assignment)} a"
        " WHERE a.item_id = ci.id AND a.participant_id = %(participant)s)",
    ]
    if campaign.is_first_person:
        conditions.append("ci.participant_id = %(participant)s")
    if spaced:
        joins = f" INNER JOIN {table(Recommendation)} r ON r.id = ci.recommendation_id"
        conditions += ["ci.recommendation_id <> %(recommendation)s", "r.user_id <> %(user)s"]
    if priority:
        conditions.append("ci.priority = %(priority)s")
    return f"{table(CampaignItem)} ci{joins}", " AND ".join(conditions)


def _pool_best_priority(campaign: Campaign, spaced: bool, values: dict[str, Any]) -> int | None:
    """The highest priority among the items this participant may take now."""
    tables, where = _pool_where(campaign, spaced=spaced, priority=False)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ci.priority FROM {tables} WHERE {where} ORDER BY ci.priority DESC LIMIT 1", values)
        row = cursor.fetchone()
    return row[0] if row else None


def _pool_take(campaign: Campaign, values: dict[str, Any], *, spaced: bool, half: str) -> CampaignItem | None:
    """Take a slot of the first free item of one half of the ring (``>=`` or ``<`` the start key)."""
    tables, where = _pool_where(campaign, spaced=spaced, priority=values["priority"] is not None)
    lock = " FOR NO KEY UPDATE OF ci SKIP LOCKED" if connection.vendor == "postgresql" else ""
    # Ordered by shuffle_key alone, which the pool indexes end with: a tie-breaker on id made
    # PostgreSQL sort every item of the top priority (57 ms a claim on bench_annotate's data,
    # whose statistics predate the routing refresh) instead of stopping at the first free one.
    sql = (
        f"UPDATE {table(CampaignItem)} SET n_live = n_live + 1 WHERE id = ("
        f"SELECT ci.id FROM {tables} WHERE {where} AND ci.shuffle_key {half} %(start)s"
        f" ORDER BY ci.shuffle_key LIMIT 1{lock}) RETURNING {_CLAIMED.columns}"
    )
    rows = select_models(sql, values, (_CLAIMED,))
    return rows[0][0] if rows else None


def _next_unassigned(participant: Participant, kinds: tuple[str, ...]) -> CampaignItem | None:
    return (
        CampaignItem.objects.filter(campaign=participant.campaign, kind__in=kinds)
        .exclude(assignments__participant=participant)
        .order_by("shuffle_key", "id")
        .first()
    )


def _assign(participant: Participant, item: CampaignItem, position: int) -> Assignment:
    campaign = participant.campaign
    now = timezone.now()
    swapped = False
    if item.explanation_b_id is not None:
        # Sides are random per item and annotator, reproducible from the campaign seed.
        swapped = random.Random(f"{campaign.seed}:{participant.pk}:{item.pk}").random() < 0.5  # noqa: S311
    return Assignment.objects.create(
        campaign=campaign,
        participant=participant,
        item=item,
        position=position,
        swapped=swapped,
        served_at=now,
        expires_at=now + timedelta(minutes=campaign.lease_minutes),
    )


class _Recent(NamedTuple):
    """What a claim needs of one of the participant's recent assignments."""

    pk: int
    status: str
    position: int
    kind: str
    shuffle_key: int
    recommendation_id: int
    user_id: int


def _recent(participant: Participant, count: int) -> list[_Recent]:
    """The participant's last ``count`` assignments, newest first (only the columns a claim
    reads: one narrow row each costs a fraction of three whole joined models)."""
    rows = (
        Assignment.objects.filter(participant=participant)
        .order_by("-position")
        .values_list(
            "pk", "status", "position", "item__kind", "item__shuffle_key",
            "item__recommendation_id", "item__recommendation__user_id",
        )[:count]
    )  # fmt: skip
    return [_Recent(*row) for row in rows]


@_retried
def campaign_assign_next(*, participant: Participant) -> Assignment | None:
    """The participant's current item, or a newly claimed one; None when they are done.

    Order: training items first (until all are answered), then pool items, with a gold or
    attention item after every ``check_every`` others while any are left. A participant holds
    at most one active assignment per campaign (always their newest); asking again returns it
    with its lease renewed. Expired leases are swept when the pool seems empty, so an item
    whose annotator walked away goes to the next annotator who needs one. Marks the
    participant completed when the quota is met or the pool has nothing left for them.
    """
    if not participant.campaign.is_open:
        return None
    with transaction.atomic():
        return _assign_next(participant_locked(participant.pk))


def participant_locked(pk: int) -> Participant:
    """The participant row, locked (inside a transaction), with its campaign. The participant's
    lock (not the campaign's: ``OF p``) serialises one annotator's tabs and requests and leaves
    every other annotator free to claim or submit at the same time. Hand-written, as the claim
    is: every submit and claim starts here. Participant.DoesNotExist if there is no such row."""
    lock = " FOR NO KEY UPDATE OF p" if connection.vendor == "postgresql" else ""
    rows = select_models(
        f"SELECT {select_list(_PARTICIPANT)} FROM {table(Participant)} p"
        f" INNER JOIN {table(Campaign)} c ON c.id = p.campaign_id WHERE p.id = %s{lock}",
        [pk],
        _PARTICIPANT,
    )
    if not rows:
        raise Participant.DoesNotExist(f"No participant {pk}.")
    participant: Participant = rows[0][0]
    participant.campaign = rows[0][1]
    return participant


_PARTICIPANT = (Layout(Participant, "p"), Layout(Campaign, "c"))


def _assign_next(participant: Participant) -> Assignment | None:
    """``campaign_assign_next`` for a participant whose row this transaction has locked."""
    campaign = participant.campaign
    if campaign.is_first_person and not CampaignItem.objects.filter(participant=participant).exists():
        return None  # still eliciting, or waiting for their explanations: not finished
    now = timezone.now()
    recent = _recent(participant, campaign.check_every + 1)
    if recent and recent[0].status == Assignment.Status.ACTIVE:
        current = Assignment.objects.select_related("item").get(pk=recent[0].pk)
        current.participant = participant
        current.expires_at = now + timedelta(minutes=campaign.lease_minutes)
        current.save(update_fields=["expires_at"])
        return current
    position = recent[0].position + 1 if recent else 1
    if participant.training_done_at is None:
        training = _next_unassigned(participant, (CampaignItem.Kind.TRAINING,))
        if training is not None:
            return _assign(participant, training, position)
        participant.training_done_at = now
        participant.save(update_fields=["training_done_at"])
    if participant.n_done >= campaign.items_per_annotator:
        return _finish(participant)
    # Training items only ever come first, so these are exact whenever they matter.
    rated = [row for row in recent if row.kind != CampaignItem.Kind.TRAINING]
    since_check = next(
        (index for index, row in enumerate(rated) if row.kind in CampaignItem.QUALITY_CONTROL), len(rated)
    )
    if since_check >= campaign.check_every and participant.checks_done_at is None:
        check = _next_unassigned(participant, CampaignItem.QUALITY_CONTROL)
        if check is not None:
            return _assign(participant, check, position)
        # Every check given: no need to look again on each later claim (a new gold item
        # clears this, ``campaign_reference_item_add``).
        participant.checks_done_at = now
        participant.save(update_fields=["checks_done_at"])
    previous = rated[0] if rated else None
    last_key = next((row.shuffle_key for row in rated if row.kind == CampaignItem.Kind.REGULAR), None)
    item = _claim_regular(participant, previous, last_key)
    if item is None and lease_sweep(campaign=campaign):
        item = _claim_regular(participant, previous, last_key)
    if item is None:
        return _finish(participant)
    return _assign(participant, item, position)


def _finish(participant: Participant) -> Assignment | None:
    """Mark the participant completed; returns None, for ``return _finish(...)``."""
    if participant.completed_at is None:
        participant.completed_at = timezone.now()
        participant.save(update_fields=["completed_at"])
    return None


def _check_passed(item: CampaignItem, answers: dict[str, Any]) -> bool | None:
    if item.kind == CampaignItem.Kind.REGULAR:
        return None
    for name, accepted in item.accepted.items():
        given = answers.get(name)
        if isinstance(accepted, list):
            if given is None or not accepted[0] <= int(given) <= accepted[1]:
                return False
        elif given != accepted:
            return False
    return True


def _retake_slot(assignment: Assignment) -> None:
    """An expired assignment answered late keeps its answer only if its slot is still free."""
    if assignment.item.kind != CampaignItem.Kind.REGULAR:
        return
    item = CampaignItem.objects.select_for_update(no_key=True).get(pk=assignment.item_id)
    if item.n_live >= assignment.campaign.overlap:
        raise SubmitError(
            "Your time on this item ran out and it went to another annotator, so this answer was not needed."
        )
    CampaignItem.objects.filter(pk=item.pk).update(n_live=F("n_live") + 1)


def _participant_checks_update(participant: Participant, campaign: Campaign) -> None:
    checked = Assignment.objects.filter(participant=participant, check_passed__isnull=False).exclude(
        item__kind=CampaignItem.Kind.TRAINING
    )
    participant.checks_passed = checked.filter(check_passed=True).count()
    participant.checks_failed = checked.filter(check_passed=False).count()
    participant.flagged = participant.checks_failed > campaign.max_check_failures
    participant.save(update_fields=["checks_passed", "checks_failed", "flagged"])


@_retried
def rating_submit(
    *,
    assignment: Assignment,
    answers: dict[str, Any],
    submission_id: uuid.UUID,
    visible_seconds: float | None = None,
    criteria: list[Criterion] | None = None,
    spans: dict[str, list[list[int]]] | None = None,
    claims: list[ItemClaim] | None = None,
    then_next: bool = False,
) -> SubmitResult:
    """Store the participant's answers to ``assignment`` (first answer or a revision).

    ``answers`` maps criterion name → int (Likert) or canonical ``a``/``b``/``tie``
    (pairwise), claim form name (``ItemClaim.field_name``) → label (claims, with the marked
    ``spans`` of each claim by the same name), or ``fits_user`` → ``yes``/``no`` for attention
    checks; the caller has validated them against the rubric (``criteria``, read from the
    campaign if not given) or the item's claims (``claims``, read from the item if not given).
    The same ``submission_id`` twice returns the first result and writes nothing: the
    Submission row is inserted first and its unique constraint settles any race. A revision
    keeps each replaced answer as a RatingRevision. Raises ``SubmitError`` (nothing written)
    if the campaign is closed, the lease expired and the slot went to someone else, or the
    submission id belongs to another assignment.

    ``then_next``: unless the item gives training feedback, also claim the participant's next
    item (``campaign_assign_next``) in the same transaction, under the same participant lock,
    into ``SubmitResult.following``.
    """
    try:
        with transaction.atomic():
            # The participant first, as a claim does: the same annotator claiming in one tab
            # (which renews this lease) and submitting in another take their locks in one order.
            participant = participant_locked(assignment.participant_id)
            locked = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
            # The campaign as just read with the lock; the item as the caller read it (what
            # changes on an item, its ``n_live``, is read again under its own lock).
            locked.participant, locked.campaign, locked.item = participant, participant.campaign, assignment.item
            Submission.objects.create(submission_id=submission_id, assignment=locked, answers=answers)
            if not locked.campaign.is_open:
                raise SubmitError("This campaign is closed; answers can no longer be changed.")
            if locked.status == Assignment.Status.EXPIRED:
                _retake_slot(locked)
            revised = locked.status == Assignment.Status.SUBMITTED
            check_passed = _check_passed(locked.item, answers)
            if locked.campaign.mode == Campaign.Mode.CLAIMS and locked.item.kind != CampaignItem.Kind.ATTENTION:
                _claim_labels_store(locked, answers, spans or {}, claims)
            if revised:
                _revise(locked, answers, check_passed)
            else:
                _first_answer(locked, answers, visible_seconds, check_passed, criteria)
            if check_passed is not None:
                _participant_checks_update(participant, locked.campaign)
            result = SubmitResult(locked, revised=revised, feedback=_feedback(locked, answers))
            if then_next and not result.feedback:
                result.next_claimed, result.following = True, _assign_next(participant)
            return result
    except IntegrityError:
        earlier = Submission.objects.filter(submission_id=submission_id).first()
        if earlier is None or earlier.assignment_id != assignment.pk:
            raise SubmitError("This form was already used for another item; reload the page.") from None
        return SubmitResult(assignment, duplicate=True, feedback=_feedback(assignment, earlier.answers))


def _first_answer(
    assignment: Assignment,
    answers: dict[str, Any],
    visible_seconds: float | None,
    check_passed: bool | None,
    criteria: list[Criterion] | None,
) -> None:
    now = timezone.now()
    if assignment.item.kind == CampaignItem.Kind.ATTENTION:
        assignment.check_answer = str(answers["fits_user"])
    elif assignment.campaign.mode != Campaign.Mode.CLAIMS:
        by_name = {criterion.name: criterion for criterion in criteria or assignment.campaign.criteria.all()}
        Rating.objects.bulk_create(
            [
                Rating(assignment=assignment, criterion=by_name[name], **_stored(value))
                for name, value in answers.items()
            ]
        )
    assignment.status, assignment.submitted_at = Assignment.Status.SUBMITTED, now
    assignment.seconds_on_task = (now - assignment.served_at).total_seconds()
    assignment.visible_seconds = visible_seconds
    assignment.check_passed = check_passed
    assignment.save(
        update_fields=["status", "submitted_at", "seconds_on_task", "visible_seconds", "check_answer", "check_passed"]
    )
    if assignment.item.kind == CampaignItem.Kind.REGULAR:
        Participant.objects.filter(pk=assignment.participant_id).update(n_done=F("n_done") + 1)
        assignment.participant.n_done += 1  # the row is locked: this is its value now
        campaign = assignment.campaign
        # Every REFRESH_EVERY-th assignment (by id, so without a count query on this path) asks
        # a worker to recompute a routed or self-closing campaign's ranking, at most once every
        # REFRESH_SECONDS per campaign: on a large campaign one refresh takes seconds.
        wants_ranking = campaign.routing == Campaign.Routing.UNCERTAINTY or campaign.close_when_settled
        if (
            wants_ranking
            and assignment.pk % REFRESH_EVERY == 0
            and cache.add(f"routing-refresh:{campaign.pk}", True, REFRESH_SECONDS)
        ):
            enqueue_on_commit("annotation.routing_refresh", campaign.pk)


def _stored(value: Any) -> dict[str, Any]:
    return {"choice": value, "value": None} if isinstance(value, str) else {"value": int(value), "choice": ""}


def _claim_labels_store(
    assignment: Assignment,
    answers: dict[str, Any],
    spans: dict[str, list[list[int]]],
    given: list[ItemClaim] | None,
) -> None:
    """A claims item's labels, first given or revised: one ClaimLabel per claim, a revision
    keeping the replaced label and spans in ``previous``. SubmitError unless every claim of
    the item, and nothing else, has a label."""
    item_claims = given if given is not None else list(assignment.item.claims.all())
    # Claims of another item never count, whatever the caller passed.
    claims = {claim.field_name: claim for claim in item_claims if claim.item_id == assignment.item_id}
    if set(answers) != set(claims) or any(label not in ClaimLabel.Label.values for label in answers.values()):
        raise SubmitError("Label every claim of this explanation, and nothing else; reload the page.")
    stored = {
        label.claim_id: label
        for label in ClaimLabel.objects.select_for_update(of=("self",), no_key=True).filter(assignment=assignment)
    }
    now = timezone.now().isoformat()
    new = []
    for name, claim in claims.items():
        label, marked = answers[name], spans.get(name, [])
        earlier = stored.get(claim.pk)
        if earlier is None:
            new.append(ClaimLabel(assignment=assignment, claim=claim, label=label, spans=marked))
        elif (earlier.label, earlier.spans) != (label, marked):
            earlier.previous = [*earlier.previous, {"label": earlier.label, "spans": earlier.spans, "replaced_at": now}]
            earlier.label, earlier.spans = label, marked
            earlier.save(update_fields=["label", "spans", "previous", "updated_at"])
    ClaimLabel.objects.bulk_create(new)


def _revise(assignment: Assignment, answers: dict[str, Any], check_passed: bool | None) -> None:
    if assignment.item.kind == CampaignItem.Kind.ATTENTION:
        assignment.check_answer = str(answers["fits_user"])
    elif assignment.campaign.mode != Campaign.Mode.CLAIMS:
        for rating in assignment.ratings.select_related("criterion").select_for_update(of=("self",), no_key=True):
            new = _stored(answers[rating.criterion.name])
            if (rating.value, rating.choice) == (new["value"], new["choice"]):
                continue
            RatingRevision.objects.create(rating=rating, value=rating.value, choice=rating.choice)
            rating.value, rating.choice = new["value"], new["choice"]
            rating.save(update_fields=["value", "choice", "updated_at"])
    assignment.revisions += 1
    assignment.check_passed = check_passed
    assignment.save(update_fields=["revisions", "check_answer", "check_passed"])


def _feedback(assignment: Assignment, answers: dict[str, Any]) -> list[dict[str, Any]]:
    """Training items: each criterion's accepted range (or each claim's accepted label) beside
    the annotator's answer, and ``expected`` in words."""
    if assignment.item.kind != CampaignItem.Kind.TRAINING:
        return []
    claims = assignment.item.claims.all() if assignment.campaign.mode == Campaign.Mode.CLAIMS else []
    numbers = {claim.field_name: claim.position + 1 for claim in claims}
    words = dict(ClaimLabel.Label.choices)
    rows = []
    for name, accepted in assignment.item.accepted.items():
        if name in numbers:
            label, expected = f"Claim {numbers[name]}", words.get(accepted, accepted)
            given = words.get(answers.get(name, ""), answers.get(name))
        else:
            label, given = name, answers.get(name)
            expected = f"{accepted[0]}\u2013{accepted[1]}" if isinstance(accepted, list) else accepted
        rows.append({"criterion": label, "accepted": accepted, "given": given, "expected": expected})
    return rows
