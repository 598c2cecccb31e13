"""Creating and running campaigns: sampling, item building, reference items, participants.

A campaign's regular items are fixed at creation from the explanations that exist then;
later generation does not change a running study.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from annotation.agreement import ranks_generators
from annotation.models import Campaign, CampaignItem, Criterion, Participant, PrivacyFlag, validate_completion_url
from annotation.privacy import KINDS
from annotation.services.claims import accepted_claim_labels, item_claims_create, reference_claims_create
from annotation.services.errors import CampaignError
from annotation.services.first_person import check_first_person, items_per_participant
from annotation.services.items import pool_items
from annotation.services.privacy import campaign_privacy_flags_create, explanation_findings
from explanations.judging import default_rubric
from explanations.models import Explanation, GenerationRun
from explanations.querysets import explanations_by_recommendation
from recommendations.models import DatasetUser, Interaction, Recommendation

# Matched with fullmatch: "$" alone would also accept a trailing newline.
CROWD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The most history rows a rating page shows beside an explanation.
MAX_SHOWN_HISTORY = 50

# MTurk's external-question protocol: the HIT shows the link in a frame with ``assignmentId``,
# ``hitId``, ``workerId`` and ``turkSubmitTo``; while a worker only previews the HIT,
# ``assignmentId`` is this value and there is no worker id. A finished worker's browser POSTs
# ``assignmentId`` to ``turkSubmitTo`` + "/mturk/externalSubmit". Only MTurk's own hosts are
# accepted as ``turkSubmitTo``: a link may not make the site post a worker's data elsewhere.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_SUBMIT_HOSTS = frozenset({"https://www.mturk.com", "https://workersandbox.mturk.com"})
# The pages that show a HIT's frame: the worker site and the sandbox (and the older www site).
MTURK_FRAME_HOSTS = frozenset({"https://worker.mturk.com", "https://workersandbox.mturk.com", "https://www.mturk.com"})


def _stratified(recommendation_ids: list[int], size: int, rng: random.Random) -> list[int]:
    """Up to ``size`` recommendations spread over 3 x 3 strata of user activity and item
    popularity (terciles of interaction counts), allocated in proportion to stratum size."""
    pairs = dict(
        (pk, (user, item))
        for pk, user, item in Recommendation.objects.filter(pk__in=recommendation_ids).values_list(
            "pk", "user_id", "item_id"
        )
    )
    users = {user for user, _ in pairs.values()}
    items = {item for _, item in pairs.values()}
    activity = dict(
        Interaction.objects.filter(user_id__in=users)
        .values("user_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    popularity = dict(
        Interaction.objects.observed()
        .filter(item_id__in=items)
        .values("item_id")
        .annotate(n=Count("id"))
        .values_list("item_id", "n")
    )

    def tercile(values: dict[int, int], key: int) -> int:
        cuts = np.quantile(np.asarray(list(values.values()) or [0]), [1 / 3, 2 / 3])
        return int(np.searchsorted(cuts, values.get(key, 0), side="right"))

    strata: dict[tuple[int, int], list[int]] = defaultdict(list)
    for pk in sorted(recommendation_ids):
        user, item = pairs[pk]
        strata[(tercile(activity, user), tercile(popularity, item))].append(pk)
    # Largest-remainder allocation, so the shares add up to exactly ``size``.
    total = len(recommendation_ids)
    exact = {key: size * len(members) / total for key, members in strata.items()}
    shares = {key: int(value) for key, value in exact.items()}
    for key in sorted(exact, key=lambda k: (shares[k] - exact[k], k))[: size - sum(shares.values())]:
        shares[key] += 1
    chosen: list[int] = []
    for key in sorted(strata):
        chosen.extend(rng.sample(strata[key], min(shares[key], len(strata[key]))))
    return sorted(chosen)


def _sample(recommendation_ids: list[int], sample: str, size: int, rng: random.Random) -> list[int]:
    ordered = sorted(recommendation_ids)
    if sample == Campaign.Sample.ALL or size >= len(ordered):
        return ordered
    if sample == Campaign.Sample.RANDOM:
        return sorted(rng.sample(ordered, size))
    return _stratified(ordered, size, rng)


@transaction.atomic
def campaign_create(
    *,
    created_by: Any,
    name: str,
    generation_runs: Sequence[GenerationRun],
    mode: str = Campaign.Mode.LIKERT,
    sample: str = Campaign.Sample.ALL,
    sample_size: int = 50,
    seed: int = 0,
    overlap: int = 3,
    items_per_annotator: int = 20,
    lease_minutes: int = 30,
    instructions: str = "",
    consent_text: str = "",
    attention_checks: int = 2,
    check_every: int = 4,
    max_check_failures: int = 1,
    completion_url: str | None = None,
    rubric: list[dict[str, Any]] | None = None,
    profile_fields: Sequence[str] = (),
    history_length: int | None = None,
    routing: str = Campaign.Routing.RANDOM,
    close_when_settled: bool = False,
    audience: str = Campaign.Audience.THIRD_PERSON,
    elicit_count: int = 15,
    first_person_k: int = 3,
) -> Campaign:
    """Create a campaign with its rubric, its sampled items and its attention checks, in
    review: what its annotators would see is scanned for personal data (one PrivacyFlag per
    finding) and it opens (``campaign_open``) once the researcher has decided every flag.

    Every chosen generation run must explain the same recommender run. Likert and claims
    campaigns get one item per (sampled recommendation, run); a claims item's explanation is
    cut into claims (``services.claims``) and the rubric is not used. Pairwise campaigns one item per
    (recommendation, pair of runs), the explanation of the earlier run being ``a``. Sampling
    and the pool order are seeded, so the same arguments build the same items.
    Annotators see the dataset user's ``profile_fields`` (none by default) and
    ``history_length`` history rows (None: as many as the prompt showed, at least 5).
    ``routing`` serves items at random or where the generator ranking is least settled, and
    ``close_when_settled`` closes the campaign once it is (``services.routing``); both only for
    campaigns that compare generators. Raises ``CampaignError`` (and writes nothing) when the choice cannot make a campaign.

    A first-person campaign (``audience``) has no pool and no attention checks: each participant
    rates ``elicit_count`` items, is recommended ``first_person_k`` and rates the explanations of
    those (``services.first_person``), as many items as that makes.
    """
    runs = sorted(generation_runs, key=lambda run: run.pk)
    _check_campaign_choice(runs, mode, overlap, items_per_annotator, completion_url)
    _check_routing(runs, mode, routing, close_when_settled)
    profile_fields = _check_shown(runs[0].recommender_run.dataset_id, profile_fields, history_length)
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    if audience == Campaign.Audience.FIRST_PERSON:
        check_first_person(
            recommender_run=runs[0].recommender_run,
            mode=mode,
            routing=routing,
            close_when_settled=close_when_settled,
            elicit_count=elicit_count,
            k=first_person_k,
        )
        explained, chosen, attention_checks = {}, [], 0
        items_per_annotator = items_per_participant(mode, len(runs), first_person_k)
    elif audience == Campaign.Audience.THIRD_PERSON:
        explained = explanations_by_recommendation(runs)
        if not explained:
            raise CampaignError("No recommendation has a finished explanation in every chosen run.")
        chosen = _sample(list(explained), sample, sample_size, rng)
    else:
        raise CampaignError(f"Audience is one of {', '.join(Campaign.Audience.values)}.")

    campaign = Campaign.objects.create(
        name=name,
        mode=mode,
        audience=audience,
        elicit_count=elicit_count,
        first_person_k=first_person_k,
        status=Campaign.Status.REVIEW,
        recommender_run_id=runs[0].recommender_run_id,
        sample=sample,
        sample_size=sample_size,
        seed=seed,
        overlap=overlap,
        items_per_annotator=items_per_annotator,
        lease_minutes=lease_minutes,
        routing=routing,
        close_when_settled=close_when_settled,
        profile_fields=profile_fields,
        history_length=history_length,
        instructions=instructions,
        consent_text=consent_text,
        attention_checks=attention_checks,
        check_every=check_every,
        max_check_failures=max_check_failures,
        created_by=created_by,
        **({} if completion_url is None else {"completion_url": completion_url}),
    )
    campaign.generation_runs.set(runs)
    if mode != Campaign.Mode.CLAIMS:
        _criteria_create(campaign, rubric or default_rubric())

    items = pool_items(campaign, chosen, explained, runs)
    items += _attention_items(campaign, chosen, explained, runs, attention_checks, rng)
    # Random 31-bit keys rather than a permutation: each annotator starts reading the pool
    # at their own random key, so annotators see the items in different orders.
    for item in items:
        item.shuffle_key = rng.randrange(2**31)
    CampaignItem.objects.bulk_create(items, batch_size=2000)
    if mode == Campaign.Mode.CLAIMS:
        item_claims_create(items)
        # An explanation with nothing to label (no sentence with a word in it) is no item.
        campaign.items.exclude(kind=CampaignItem.Kind.ATTENTION).filter(claims__isnull=True).delete()
    campaign_privacy_flags_create(campaign)
    return campaign


def campaign_open(*, campaign: Campaign) -> None:
    """Open a campaign in review to annotators once every privacy finding is decided;
    CampaignError, saying how many are left, otherwise. Idempotent for an open campaign."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status == Campaign.Status.OPEN:
            campaign.status = locked.status
            return
        if locked.status != Campaign.Status.REVIEW:
            raise CampaignError("A closed campaign does not open again.")
        pending = locked.privacy_flags.filter(decision=PrivacyFlag.Decision.PENDING).count()
        if pending:
            raise CampaignError(f"Decide the {pending} privacy finding{'s' if pending > 1 else ''} first.")
        if not locked.is_first_person and not locked.items.filter(kind=CampaignItem.Kind.REGULAR).exists():
            raise CampaignError("Every item was excluded: nothing is left to rate.")
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.OPEN)
        campaign.status = Campaign.Status.OPEN


def _check_campaign_choice(
    runs: list[GenerationRun], mode: str, overlap: int, items_per_annotator: int, completion_url: str | None
) -> None:
    """CampaignError, in words for the researcher, when these choices cannot make a campaign."""
    if not runs:
        raise CampaignError("Choose at least one generation run.")
    if len({run.recommender_run_id for run in runs}) > 1:
        raise CampaignError("All generation runs must explain the same recommender run.")
    if mode == Campaign.Mode.PAIRWISE and len(runs) < 2:
        raise CampaignError("A pairwise campaign compares at least two generation runs.")
    if overlap < 1 or items_per_annotator < 1:
        raise CampaignError("Overlap and items per annotator must be at least 1.")
    if completion_url:
        try:
            validate_completion_url(completion_url)
        except ValidationError as exc:
            raise CampaignError(exc.messages[0]) from None


def _check_routing(runs: list[GenerationRun], mode: str, routing: str, close_when_settled: bool) -> None:
    """CampaignError for a routing that is not one, or routing or stopping on a campaign that
    ranks no generators (a claims campaign, or a Likert one over a single run)."""
    if routing not in Campaign.Routing.values:
        raise CampaignError(f"Routing is one of {', '.join(Campaign.Routing.values)}.")
    if not ranks_generators(mode, len(runs)) and (routing != Campaign.Routing.RANDOM or close_when_settled):
        raise CampaignError(
            "Routing and closing when settled need a campaign that ranks generators: pairwise, or Likert "
            "over two or more runs."
        )


def _check_shown(dataset_id: int, profile_fields: Sequence[str], history_length: int | None) -> list[str]:
    """The profile fields to show, each one some user of the dataset has, without repeats;
    CampaignError for an unknown field or a history length outside 0 to 50."""
    fields = list(dict.fromkeys(field.strip() for field in profile_fields if field.strip()))
    users = DatasetUser.objects.filter(dataset_id=dataset_id, elicited=False)
    unknown = [field for field in fields if not users.filter(profile__has_key=field).exists()]
    if unknown:
        raise CampaignError(f"No user of this dataset has a profile field {', '.join(unknown)}.")
    if history_length is not None and not 0 <= history_length <= MAX_SHOWN_HISTORY:
        raise CampaignError(f"Show 0 to {MAX_SHOWN_HISTORY} history rows.")
    return fields


def _criteria_create(campaign: Campaign, rubric: list[dict[str, Any]]) -> None:
    """The campaign's criteria, ``position`` keeping the rubric's order."""
    for position, spec in enumerate(rubric):
        Criterion.objects.create(
            campaign=campaign,
            position=position,
            name=spec["name"],
            question=spec["question"],
            scale_min=spec.get("scale_min", 1),
            scale_max=spec.get("scale_max", 10),
            anchors=spec.get("anchors", {}),
        )


def _attention_items(
    campaign: Campaign,
    chosen: list[int],
    explained: dict[int, dict[int, int]],
    runs: Sequence[GenerationRun],
    count: int,
    rng: random.Random,
) -> list[CampaignItem]:
    """``count`` attention checks: a sampled explanation shown with another user's history."""
    user_of = dict(Recommendation.objects.filter(pk__in=chosen).values_list("pk", "user_id"))
    users = sorted(set(user_of.values()))
    if count == 0 or len(users) < 2:
        return []
    checks = []
    for recommendation_id in rng.sample(chosen, min(count, len(chosen))):
        others = [user for user in users if user != user_of[recommendation_id]]
        run = rng.choice(list(runs))
        checks.append(
            CampaignItem(
                campaign=campaign,
                kind=CampaignItem.Kind.ATTENTION,
                recommendation_id=recommendation_id,
                explanation_id=explained[recommendation_id][run.pk],
                shown_user_id=rng.choice(others),
                accepted={"fits_user": "no"},
            )
        )
    return checks


@transaction.atomic
def campaign_reference_item_add(
    *,
    campaign: Campaign,
    explanation: Explanation,
    kind: str,
    accepted: dict[str, Any],
    feedback: str = "",
) -> CampaignItem:
    """Add a gold or training item: one of the campaign's explanations with an accepted
    ``[low, high]`` range per criterion. Reference items show a single explanation rated
    on the rubric's scale, in pairwise campaigns too. In a claims campaign ``accepted`` maps
    claim numbers (1 = first) to labels instead (``services.claims.accepted_claim_labels``).
    Raises ``CampaignError`` (nothing stored) for an explanation outside the campaign's runs,
    an unknown criterion or claim, a range off the scale or an unknown label."""
    if kind not in (CampaignItem.Kind.GOLD, CampaignItem.Kind.TRAINING):
        raise CampaignError("A reference item is gold or training.")
    recommendation = explanation.recommendation
    findings = explanation_findings(explanation.text, recommendation.user.profile, [recommendation.item.title])
    if findings:
        shown = "; ".join(f"{KINDS[finding.kind]}: {finding.match}" for finding in findings[:3])
        raise CampaignError(f"This explanation shows what looks like personal data ({shown}); choose another.")
    if not campaign.generation_runs.filter(pk=explanation.generation_run_id).exists():
        raise CampaignError("The explanation must come from one of the campaign's generation runs.")
    if campaign.mode == Campaign.Mode.CLAIMS:
        item = _claims_reference_item_add(campaign, explanation, kind, accepted, feedback)
    else:
        item = _likert_reference_item_add(campaign, explanation, kind, accepted, feedback)
    if kind == CampaignItem.Kind.GOLD:
        # A new check for everyone, those who had been given every earlier one included.
        Participant.objects.filter(campaign=campaign).update(checks_done_at=None)
    return item


def _likert_reference_item_add(
    campaign: Campaign, explanation: Explanation, kind: str, accepted: dict[str, Any], feedback: str
) -> CampaignItem:
    """A Likert or pairwise campaign's gold or training item: accepted ranges by criterion."""
    criteria = {criterion.name: criterion for criterion in campaign.criteria.all()}
    cleaned: dict[str, list[int]] = {}
    for name, bounds in accepted.items():
        criterion = criteria.get(name)
        if criterion is None:
            raise CampaignError(f"Unknown criterion {name!r}.")
        if not isinstance(bounds, list):
            raise CampaignError(f"{name}: give a range, e.g. {name}=1-3.")
        low, high = (int(bound) for bound in bounds)
        if not criterion.scale_min <= low <= high <= criterion.scale_max:
            raise CampaignError(
                f"{name}: the accepted range must lie within {criterion.scale_min} to {criterion.scale_max}."
            )
        cleaned[name] = [low, high]
    if not cleaned:
        raise CampaignError("Give an accepted range for at least one criterion.")
    return CampaignItem.objects.create(
        campaign=campaign,
        kind=kind,
        recommendation_id=explanation.recommendation_id,
        explanation=explanation,
        accepted=cleaned,
        feedback=feedback,
        shuffle_key=secrets.randbelow(2**31),
    )


@transaction.atomic
def _claims_reference_item_add(
    campaign: Campaign, explanation: Explanation, kind: str, accepted: dict[str, Any], feedback: str
) -> CampaignItem:
    """A claims campaign's gold or training item: accepted labels by claim number."""
    item = CampaignItem.objects.create(
        campaign=campaign,
        kind=kind,
        recommendation_id=explanation.recommendation_id,
        explanation=explanation,
        feedback=feedback,
        shuffle_key=secrets.randbelow(2**31),
    )
    item.accepted = accepted_claim_labels(reference_claims_create(item), accepted)
    item.save(update_fields=["accepted"])
    return item


def campaign_close(*, campaign: Campaign) -> None:
    """Close the campaign: no more assignments, submissions or revisions. Idempotent."""
    if campaign.is_open:
        campaign.close()


def participant_set_excluded(*, participant: Participant, excluded: bool) -> None:
    """Exclude or readmit an annotator. Their answers stay stored either way; every figure and
    export reads ``excluded`` at query time, so readmitting restores them. Idempotent."""
    participant.excluded = excluded
    participant.save(update_fields=["excluded"])


def _new_pseudonym(campaign: Campaign, prefix: str) -> str:
    while True:
        pseudonym = f"{prefix}{secrets.token_hex(4)}"
        if not Participant.objects.filter(campaign=campaign, pseudonym=pseudonym).exists():
            return pseudonym


def participant_join(*, campaign: Campaign, user: Any) -> Participant:
    """The site account's participant row in ``campaign``, created on first call."""
    existing = Participant.objects.filter(campaign=campaign, user=user).first()
    if existing is not None:
        return existing
    if not campaign.is_open:
        raise CampaignError(campaign.not_open_reason)
    try:
        with transaction.atomic():
            return Participant.objects.create(campaign=campaign, user=user, pseudonym=_new_pseudonym(campaign, "S"))
    except IntegrityError:  # a second tab joined at the same moment
        return Participant.objects.get(campaign=campaign, user=user)


def crowd_hash(*, campaign: Campaign, platform: str, worker_id: str) -> str:
    """The keyed hash a crowd id is stored as. Keyed per campaign, so the same worker in two
    campaigns cannot be linked from the database, and on XREC_CROWD_SECRET, which outlives a
    rotation of SECRET_KEY."""
    key = hashlib.sha256(f"xrec-crowd:{settings.XREC_CROWD_SECRET}:{campaign.public_token}".encode()).digest()
    return hmac.new(key, f"{platform}:{worker_id}".encode(), hashlib.sha256).hexdigest()


def _crowd_hash_before_crowd_secret(*, campaign: Campaign, platform: str, worker_id: str) -> str:
    """The hash as stored before XREC_CROWD_SECRET existed (keyed on SECRET_KEY): a worker who
    joined a campaign before the upgrade is still recognised, once, and re-keyed."""
    key = hashlib.sha256(f"xrec-crowd:{settings.SECRET_KEY}:{campaign.public_token}".encode()).digest()
    return hmac.new(key, f"{platform}:{worker_id}".encode(), hashlib.sha256).hexdigest()


def crowd_session_clean(session: dict[str, str]) -> dict[str, str]:
    """The link's study/session ids worth keeping: well-formed ids, and an MTurk submit host.
    Raises ``CampaignError`` for a ``turkSubmitTo`` that is not MTurk's."""
    clean = {key: value for key, value in session.items() if CROWD_ID.fullmatch(value or "")}
    if submit_to := session.get("turkSubmitTo"):
        if submit_to.rstrip("/") not in MTURK_SUBMIT_HOSTS:
            raise CampaignError("The link's turkSubmitTo is not an MTurk address.")
        clean["turkSubmitTo"] = submit_to.rstrip("/")
    return clean


def mturk_submit_url(participant: Participant) -> str:
    """Where the participant's browser posts the finished MTurk assignment, or "" when the
    participant did not come from an MTurk HIT frame."""
    submit_to = participant.crowd_session.get("turkSubmitTo", "")
    if participant.platform != "mturk" or submit_to not in MTURK_SUBMIT_HOSTS:
        return ""
    if participant.crowd_session.get("assignmentId", MTURK_PREVIEW) == MTURK_PREVIEW:
        return ""
    return f"{submit_to}/mturk/externalSubmit"


def crowd_participant_enter(
    *, campaign: Campaign, platform: str, worker_id: str, session: dict[str, str]
) -> Participant:
    """Create or resume the pseudonymous participant behind a crowd link.

    The account it makes has no role and no usable password: it can only reach its own
    assignments in this campaign. A returning worker (same platform id) resumes where they
    left off. Raises ``CampaignError`` for a malformed id or a closed campaign.
    """
    if not CROWD_ID.fullmatch(worker_id or ""):
        raise CampaignError("The link lacks a valid participant id.")
    clean_session = crowd_session_clean(session)
    digest = crowd_hash(campaign=campaign, platform=platform, worker_id=worker_id)
    existing = Participant.objects.filter(campaign=campaign, crowd_hash=digest).select_related("user").first()
    if existing is None:
        legacy = _crowd_hash_before_crowd_secret(campaign=campaign, platform=platform, worker_id=worker_id)
        existing = Participant.objects.filter(campaign=campaign, crowd_hash=legacy).select_related("user").first()
        if existing is not None:
            existing.crowd_hash = digest
            existing.save(update_fields=["crowd_hash"])
    if existing is not None:
        if clean_session and existing.crowd_session != clean_session:
            # A returning worker: the platform's newest ids (an MTurk assignment) are the ones
            # the completion goes back with.
            existing.crowd_session = clean_session
            existing.save(update_fields=["crowd_session"])
        return existing
    if not campaign.is_open:
        raise CampaignError(campaign.not_open_reason)
    user_model = get_user_model()
    try:
        with transaction.atomic():
            user = user_model.objects.create(username=f"crowd-{digest[:24]}")
            user.set_unusable_password()
            user.save(update_fields=["password"])
            return Participant.objects.create(
                campaign=campaign,
                user=user,
                pseudonym=f"{platform[:1].upper()}{digest[:8]}",
                platform=platform,
                crowd_hash=digest,
                crowd_session=clean_session,
            )
    except IntegrityError:  # the same link opened twice at once
        return Participant.objects.select_related("user").get(campaign=campaign, crowd_hash=digest)


def participant_consent(*, participant: Participant) -> None:
    """Record consent once: the first time is kept, so a repeated POST changes nothing."""
    if participant.consented_at is None:
        participant.consented_at = timezone.now()
        participant.save(update_fields=["consented_at"])
