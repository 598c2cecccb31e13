"""First-person campaigns: participants rate explanations of their own recommendations.

A participant first rates ``campaign.elicit_count`` items of the catalogue on the elicitation
page. Their ratings are the interactions of a new dataset user of their own
(``DatasetUser.elicited``): no split, training set or dataset-wide figure reads them
(``InteractionQuerySet.observed``). The campaign's trained run folds them in without retraining
(``recommendations.services.foldin``) and the top ``campaign.first_person_k`` become a
first-person recommender run of one user; every generation run of the campaign is repeated over
it (``GenerationRun.parent``: same generator, prompt and controls) on the gpu workers while the
participant waits. Once those runs finish, the participant's own items are written (only they
are given them), and they rate them blind like any other item: sides of a pair are randomised
per assignment as usual.

Everything a participant leaves behind (ratings, recommendations, explanations, answers) goes
with them when they ask (``participant_data_delete``).
"""

from __future__ import annotations

import random
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotation.models import Assignment, Campaign, CampaignItem, Participant
from annotation.services.assignments import participant_locked
from annotation.services.errors import CampaignError
from annotation.services.items import pool_items
from explanations.models import Explanation, GenerationRun
from explanations.prompts import Controls
from explanations.querysets import explanations_by_recommendation
from explanations.services.generation import generation_run_retry_failed, generation_run_start
from explanations.services.generators import GenerationError
from recommendations.models import Dataset, DatasetUser, Interaction, Item, Recommendation, RecommenderRun
from recommendations.services.foldin import FoldInError, fold_in_top_k

ELICIT_PAGE = 24
MAX_ELICIT = 100
MAX_FIRST_PERSON_K = 20
POPULAR_SECONDS = 600


def rating_scale(dataset: Dataset) -> list[int]:
    """The whole-number ratings a participant may give: the dataset's own scale (1 to 5 when it
    has none); a dataset of events only (no ratings) has one answer, 1: "I like it"."""
    if dataset.is_implicit:
        return [1]
    low = round(dataset.rating_min) if dataset.rating_min is not None else 1
    high = round(dataset.rating_max) if dataset.rating_max is not None else 5
    return list(range(low, high + 1)) if high > low else [1, 2, 3, 4, 5]


def check_first_person(
    *, recommender_run: RecommenderRun, mode: str, routing: str, close_when_settled: bool, elicit_count: int, k: int
) -> None:
    """CampaignError, in words for the researcher, when a first-person campaign cannot be made
    from these choices."""
    if mode == Campaign.Mode.CLAIMS:
        raise CampaignError("A first-person campaign is Likert or pairwise.")
    if routing != Campaign.Routing.RANDOM or close_when_settled:
        raise CampaignError("A first-person campaign serves each participant only their own items: no routing.")
    if recommender_run.kind != RecommenderRun.Kind.TRAINED or not recommender_run.model_path:
        raise CampaignError("A first-person campaign needs a recommender trained here, to fold participants into.")
    if not 3 <= elicit_count <= MAX_ELICIT:
        raise CampaignError(f"Ask participants to rate 3 to {MAX_ELICIT} items.")
    if not 1 <= k <= MAX_FIRST_PERSON_K:
        raise CampaignError(f"Recommend 1 to {MAX_FIRST_PERSON_K} items to each participant.")


def items_per_participant(mode: str, n_runs: int, k: int) -> int:
    """Items a first-person participant rates: one per recommendation and run (Likert), or per
    recommendation and pair of runs (pairwise)."""
    return k * (n_runs if mode != Campaign.Mode.PAIRWISE else n_runs * (n_runs - 1) // 2)


def _check_eliciting(participant: Participant) -> Campaign:
    campaign = participant.campaign
    if not campaign.is_first_person:
        raise CampaignError("This campaign does not ask for your own ratings.")
    if not campaign.is_open:
        raise CampaignError(campaign.not_open_reason)
    if participant.elicited_at is not None:
        raise CampaignError("Your ratings are in and your recommendations are made; they can no longer change.")
    return campaign


def elicitation_items(campaign: Campaign, query: str = "") -> list[Item]:
    """Items to offer on the elicitation page: those whose title contains ``query`` (by title),
    or with no query the catalogue's most rated (observed interactions only; cached)."""
    items = Item.objects.filter(dataset_id=campaign.recommender_run.dataset_id)
    query = query.strip()[:100]
    if query:
        return list(items.search(query).order_by("title", "id")[:ELICIT_PAGE])
    key = f"xrec:elicit-popular:{campaign.recommender_run.dataset_id}"
    ids = cache.get(key)
    if ids is None:
        ids = list(items.most_interacted().values_list("pk", flat=True)[:ELICIT_PAGE])
        cache.set(key, ids, POPULAR_SECONDS)
    by_id = items.in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id]


def elicited_ratings(participant: Participant) -> dict[int, float]:
    """Item id → the participant's rating, as given on the elicitation page."""
    # Through the user's row, not ``participant.dataset_user_id``: a caller's copy of the
    # participant may predate their first rating.
    rows = Interaction.objects.filter(user__participant__pk=participant.pk).values_list("item_id", "rating")
    return {item: 1.0 if rating is None else rating for item, rating in rows}


def elicited_rating_set(*, participant: Participant, item_id: int, rating: int | None) -> dict[int, float]:
    """Store (or with ``rating`` None, take back) the participant's rating of one catalogue item,
    as an interaction of their own elicited dataset user, made on their first rating. Returns all
    their ratings. CampaignError for an item outside the campaign's dataset, a rating off the
    scale, or once their recommendations are made; nothing changes then."""
    with transaction.atomic():
        participant = participant_locked(participant.pk)
        campaign = _check_eliciting(participant)
        dataset = Dataset.objects.get(pk=campaign.recommender_run.dataset_id)
        item = Item.objects.filter(pk=item_id, dataset=dataset).first()
        if item is None:
            raise CampaignError("No such item in this catalogue.")
        scale = rating_scale(dataset)
        if rating is not None and rating not in scale:
            raise CampaignError(f"Rate from {scale[0]} to {scale[-1]}.")
        if participant.dataset_user_id is None:
            if rating is None:
                return {}
            user = DatasetUser.objects.create(
                dataset=dataset, external_id=f"first-person-{campaign.pk}-{participant.pseudonym}", elicited=True
            )
            participant.dataset_user = user
            participant.save(update_fields=["dataset_user"])
        user_id: int = participant.dataset_user_id  # type: ignore[assignment] # set just above if it was not
        Interaction.objects.filter(user_id=user_id, item=item).delete()
        if rating is not None:
            Interaction.objects.create(
                dataset=dataset,
                user_id=user_id,
                item=item,
                rating=None if dataset.is_implicit else float(rating),
                timestamp=int(time.time()),
            )
    return elicited_ratings(participant)


def first_person_recommend(*, participant: Participant) -> Participant:
    """Fold the participant's ratings into the campaign's trained run, store their top-K as a
    first-person recommender run of one user, and start one generation run per campaign run over
    it (enqueued on commit). Idempotent: a participant already recommended to is returned as is.
    CampaignError (nothing stored) with too few ratings, ratings the model cannot use, or a
    generator that cannot load."""
    with transaction.atomic():
        participant = participant_locked(participant.pk)
        if participant.recommender_run_id is not None:
            return participant
        campaign = _check_eliciting(participant)
        ratings = elicited_ratings(participant)
        if len(ratings) < campaign.elicit_count:
            raise CampaignError(f"Rate at least {campaign.elicit_count} items first ({len(ratings)} so far).")
        base = RecommenderRun.objects.select_related("split").get(pk=campaign.recommender_run_id)
        try:
            folded = fold_in_top_k(run=base, ratings=ratings, k=campaign.first_person_k)
        except FoldInError as exc:
            raise CampaignError(f"No recommendations could be made: {exc}.") from None
        if not folded.items:
            raise CampaignError("No recommendations could be made: you have rated every item the model knows.")
        now = timezone.now()
        run = RecommenderRun.objects.create(
            kind=RecommenderRun.Kind.FIRST_PERSON,
            parent=base,
            dataset_id=base.dataset_id,
            split=base.split,
            name=f"first person: campaign {campaign.pk}, {participant.pseudonym}",
            source={
                "campaign": campaign.pk,
                "participant": participant.pseudonym,
                "method": folded.method,
                "n_ratings": len(ratings),
                "ignored": folded.ignored,
            },
            algorithm=base.algorithm,
            hyperparameters=base.hyperparameters,
            seed=base.seed,
            k=len(folded.items),
            relevance_threshold=base.relevance_threshold,
            status=RecommenderRun.Status.SUCCEEDED,
            phase="done",
            started_at=now,
            finished_at=now,
        )
        user_id: int = participant.dataset_user_id  # type: ignore[assignment] # ratings need a user
        Recommendation.objects.bulk_create(
            Recommendation(run=run, user_id=user_id, item_id=item, rank=rank, score=score)
            for rank, (item, score) in enumerate(folded.items, start=1)
        )
        for parent in campaign.generation_runs.select_related("generator", "template").order_by("pk"):
            try:
                generation_run_start(
                    created_by=None,
                    recommender_run=run,
                    generator=parent.generator,
                    template=parent.template,
                    depth=len(folded.items),
                    sample=GenerationRun.Sample.ALL,
                    sample_size=1,
                    seed=parent.seed,
                    controls=Controls.of(parent.controls()),
                    chunk_size=len(folded.items),
                    parent=parent,
                )
            except GenerationError as exc:
                raise CampaignError(f"Your explanations cannot be written now: {exc}.") from None
        participant.recommender_run, participant.elicited_at = run, now
        participant.save(update_fields=["recommender_run", "elicited_at"])
    return participant


def first_person_progress(participant: Participant) -> dict[str, Any]:
    """The participant's explanations: total, done, failed and pending, whether every run has
    finished, and whether their items are written (``ready``)."""
    runs = GenerationRun.objects.filter(recommender_run_id=participant.recommender_run_id)
    counts = Explanation.objects.filter(generation_run__in=runs).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=Explanation.Status.DONE)),
        failed=Count("id", filter=Q(status=Explanation.Status.FAILED)),
    )
    statuses = list(runs.values_list("status", flat=True))
    unfinished = (GenerationRun.Status.PENDING, GenerationRun.Status.RUNNING)
    finished = participant.recommender_run_id is not None and not any(s in unfinished for s in statuses)
    counts["finished"] = finished
    counts["percent"] = round(100 * (counts["done"] + counts["failed"]) / counts["total"]) if counts["total"] else 0
    counts["ready"] = CampaignItem.objects.filter(participant=participant).exists()
    return counts


# How often a participant may ask for their failed explanations again (each retry is GPU time).
FIRST_PERSON_RETRIES = 2


def first_person_retry(*, participant: Participant) -> int:
    """Generate again the explanations that failed for a participant whose runs finished with
    nothing to rate, at most FIRST_PERSON_RETRIES times. Returns how many runs started again;
    CampaignError (nothing changed) when there is nothing to retry or the retries are used up."""
    with transaction.atomic():
        participant = participant_locked(participant.pk)
        if not participant.campaign.is_open:
            raise CampaignError("This campaign is closed.")
        progress = first_person_progress(participant)
        if not progress["finished"] or progress["ready"]:  # finished: recommended, and every run done
            raise CampaignError("Your explanations are not finished, or are ready to rate: nothing to try again.")
        if participant.generation_retries >= FIRST_PERSON_RETRIES:
            raise CampaignError(
                f"Your explanations were tried {FIRST_PERSON_RETRIES + 1} times; please tell the researchers."
            )
        runs = GenerationRun.objects.filter(recommender_run_id=participant.recommender_run_id, parent__isnull=False)
        retried = 0
        for run in runs.order_by("pk"):
            before = run.status
            if generation_run_retry_failed(run=run).status != before:
                retried += 1
        if not retried:
            raise CampaignError("None of your explanations can be tried again; please tell the researchers.")
        participant.generation_retries += 1
        participant.save(update_fields=["generation_retries"])
    return retried


def first_person_items_create(*, participant: Participant) -> int:
    """Write the participant's own items once their generation runs have finished: Likert, one
    per recommendation and run; pairwise, one per recommendation and pair of runs (the earlier
    campaign run's explanation is ``a``). Only recommendations every run explained are used.
    Returns how many items they have; idempotent."""
    with transaction.atomic():
        participant = participant_locked(participant.pk)
        existing = CampaignItem.objects.filter(participant=participant).count()
        if existing or participant.recommender_run_id is None or not first_person_progress(participant)["finished"]:
            return existing
        campaign = participant.campaign
        children: dict[int, GenerationRun] = {
            run.parent_id: run
            for run in GenerationRun.objects.filter(recommender_run_id=participant.recommender_run_id)
            if run.parent_id is not None
        }
        runs = [children[parent_id] for parent_id in sorted(children)]
        explained = explanations_by_recommendation(runs)
        chosen = sorted(explained)
        items = pool_items(campaign, chosen, explained, runs)
        rng = random.Random(f"{campaign.seed}:{participant.pk}")  # noqa: S311 - ordering only
        for item in items:
            item.participant, item.shuffle_key = participant, rng.randrange(2**31)
        CampaignItem.objects.bulk_create(items)
        return len(items)


def first_person_counts(campaign: Campaign) -> dict[str, int]:
    """How many of a first-person campaign's participants are still eliciting, waiting for their
    explanations, rating their own items, or done."""
    participants = Participant.objects.filter(campaign=campaign)
    return participants.aggregate(
        eliciting=Count("id", filter=Q(elicited_at__isnull=True)),
        waiting=Count("id", filter=Q(elicited_at__isnull=False) & ~Q(pk__in=_with_items(campaign))),
        rating=Count("id", filter=Q(completed_at__isnull=True, pk__in=_with_items(campaign))),
        done=Count("id", filter=Q(completed_at__isnull=False)),
    )


def _with_items(campaign: Campaign) -> Any:
    return CampaignItem.objects.filter(campaign=campaign, participant__isnull=False).values("participant_id")


def participant_data_delete(*, participant: Participant) -> None:
    """Delete the participant and everything they left: answers, own items, elicited ratings and
    dataset user, recommendations and explanations; and the account too when it was made for
    this crowd link alone (it can reach nothing else)."""
    with transaction.atomic():
        participant = Participant.objects.select_for_update().get(pk=participant.pk)
        run_id, user_id, account_id = participant.recommender_run_id, participant.dataset_user_id, participant.user_id
        crowd = bool(participant.crowd_hash)
        # The slots their assignments held go back to the pool (items locked in id order, after
        # the participant, as every claim takes them).
        held = Assignment.objects.filter(
            participant=participant, status__in=[Assignment.Status.ACTIVE, Assignment.Status.SUBMITTED]
        )
        for item_id in sorted(held.values_list("item_id", flat=True)):
            CampaignItem.objects.filter(pk=item_id, kind=CampaignItem.Kind.REGULAR, n_live__gt=0).update(
                n_live=F("n_live") - 1
            )
        participant.delete()
        if run_id is not None:
            RecommenderRun.objects.filter(pk=run_id, kind=RecommenderRun.Kind.FIRST_PERSON).delete()
        if user_id is not None:
            DatasetUser.objects.filter(pk=user_id, elicited=True).delete()
        if crowd and not Participant.objects.filter(user_id=account_id).exists():
            get_user_model().objects.filter(pk=account_id).delete()
