"""The rating page and its submit cost a fixed number of queries, whatever the campaign's size.

Each size is a separate dataset, recommender run and campaign: the small one has 2 dataset
users with short histories and one annotator; the large one 20 users with longer histories,
more explanations, and other annotators who have already rated items. The measured annotator
has answered a few items of their own in the large one, fewer than ``check_every``: a due
quality-control check adds one lookup by design, which is a matter of progress, not of size.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.db.models import F
from django.urls import reverse

from annotation.models import Assignment, Campaign, CampaignItem
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join
from recommendations.models import RecommenderRun
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.annotation.factories import campaign, claim_runs, explained_runs
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.recommendations.factories import rated_dataset
from xrec_site.roles import ANNOTATOR

# Measured on this code; a change that adds a query per history row, explanation or rating
# breaks the equality below, and one that adds a fixed query must raise these on purpose.
# 9 since the explanations and their recommendation are read in one query.
PAGE_QUERIES = 9
# 23 since the submit locks the participant before the assignment (one lock order with claims);
# 22 since the next item's partial no longer reads the account's roles (only pages show them).
# 18 since the submit claims the next item in its own transaction, under the one participant
# lock (no second BEGIN, COMMIT, participant lock and read), and the next item's explanations
# and recommendation are one query.
# 17 since a claim locks its item and takes the slot in one statement; 16 since the submit
# reads the assignment and the campaign's criteria in one statement.
SUBMIT_QUERIES = 16
# Claims mode: the page also reads the item's claims (and no criteria); the submit reads the
# claims once (form and service share them), locks the labels, inserts them at once, and the
# next page reads its claims.
CLAIMS_PAGE_QUERIES = 10
CLAIMS_SUBMIT_QUERIES = 19
# Routed: the claim of the next item first reads the highest priority open to the annotator.
ROUTED_SUBMIT_QUERIES = SUBMIT_QUERIES + 1

MaxQueries = Callable[..., AbstractContextManager[Any]]


def _trained_run(*, name: str, n_users: int, n_items: int, per_user: int) -> RecommenderRun:
    dataset = rated_dataset(name=name, n_users=n_users, n_items=n_items, per_user=per_user)
    run = recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD", k=2, hyperparameters={})
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    return run


def _answer_all(assignment: Assignment) -> dict[str, Any]:
    """Every criterion answered 6, or every claim supported."""
    if assignment.campaign.mode == Campaign.Mode.CLAIMS:
        return {claim.field_name: "supported" for claim in assignment.item.claims.all()}
    return dict.fromkeys((criterion.name for criterion in assignment.campaign.criteria.all()), 6)


def _annotate(participant: Any, items: int) -> None:
    for _ in range(items):
        assignment = campaign_assign_next(participant=participant)
        assert assignment is not None
        rating_submit(assignment=assignment, answers=_answer_all(assignment), submission_id=uuid.uuid4())


def _study(
    *,
    name: str,
    n_users: int,
    per_user: int,
    others: int,
    answered: int,
    mode: str = Campaign.Mode.LIKERT,
    routing: str = Campaign.Routing.RANDOM,
) -> tuple[Campaign, Any]:
    """A campaign with ``others`` annotators who each answered 3 items, and the account of
    the annotator to measure, who answered ``answered`` items."""
    run = _trained_run(name=name, n_users=n_users, n_items=2 * per_user + 10, per_user=per_user)
    study = campaign(
        runs=(claim_runs if mode == Campaign.Mode.CLAIMS else explained_runs)(run=run, depth=2, n_runs=2),
        mode=mode,
        routing=routing,
        overlap=3,
        items_per_annotator=1_000,
        instructions="Rate **each** explanation on its own.",
    )
    # Every item at the top of the key range: the claim then finds its item in the first of
    # its two reads whatever the annotator's random starting key, so the count is exact.
    CampaignItem.objects.filter(campaign=study).update(shuffle_key=2**31 - 1 - F("id"))
    for _ in range(others):
        _annotate(participant_join(campaign=study, user=UserFactory(role=ANNOTATOR)), 3)
    user = UserFactory(role=ANNOTATOR)
    _annotate(participant_join(campaign=study, user=user), answered)
    return study, user


def _page_and_submit_queries(
    study: Campaign, user: Any, max_queries: MaxQueries, limits: tuple[int, int] = (PAGE_QUERIES, SUBMIT_QUERIES)
) -> tuple[int, int]:
    participant = study.participants.get(user=user)
    held = campaign_assign_next(participant=participant)
    assert held is not None
    client = client_for(user)

    with max_queries(limits[0]) as page:
        response = client.get(reverse("annotation:assignment", args=[held.pk]))
    assert response.status_code == 200

    answers = {"submission_id": str(uuid.uuid4()), "visible_ms": "4200"} | _answer_all(held)
    with max_queries(limits[1]) as submit:
        response = client.post(reverse("annotation:submit", args=[held.pk]), answers, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "HX-Push-Url" in response, "the next item is swapped in"
    assert Assignment.objects.get(pk=held.pk).status == Assignment.Status.SUBMITTED
    return len(page), len(submit)


def test_rating_page_and_submit_cost_the_same_queries_in_a_small_and_a_large_campaign(
    db, django_assert_max_num_queries: MaxQueries
) -> None:
    small = _study(name="small", n_users=2, per_user=6, others=0, answered=0)
    large = _study(name="large", n_users=20, per_user=15, others=6, answered=2)

    small_counts = _page_and_submit_queries(*small, django_assert_max_num_queries)
    large_counts = _page_and_submit_queries(*large, django_assert_max_num_queries)

    assert small_counts == large_counts, (small_counts, large_counts)


def test_claims_page_and_submit_cost_the_same_queries_in_a_small_and_a_large_campaign(
    db, django_assert_max_num_queries: MaxQueries
) -> None:
    small = _study(name="small", n_users=2, per_user=6, others=0, answered=0, mode=Campaign.Mode.CLAIMS)
    large = _study(name="large", n_users=20, per_user=15, others=6, answered=2, mode=Campaign.Mode.CLAIMS)
    limits = (CLAIMS_PAGE_QUERIES, CLAIMS_SUBMIT_QUERIES)

    small_counts = _page_and_submit_queries(*small, django_assert_max_num_queries, limits)
    large_counts = _page_and_submit_queries(*large, django_assert_max_num_queries, limits)

    assert small_counts == large_counts, (small_counts, large_counts)


def test_routed_page_and_submit_cost_one_query_more_whatever_the_campaigns_size(
    db, django_assert_max_num_queries: MaxQueries
) -> None:
    routed = Campaign.Routing.UNCERTAINTY
    small = _study(name="small", n_users=2, per_user=6, others=0, answered=0, routing=routed)
    large = _study(name="large", n_users=20, per_user=15, others=6, answered=2, routing=routed)
    CampaignItem.objects.filter(campaign=large[0]).update(priority=1)  # as a refresh would leave them
    limits = (PAGE_QUERIES, ROUTED_SUBMIT_QUERIES)

    small_counts = _page_and_submit_queries(*small, django_assert_max_num_queries, limits)
    large_counts = _page_and_submit_queries(*large, django_assert_max_num_queries, limits)

    assert small_counts == large_counts == (PAGE_QUERIES, ROUTED_SUBMIT_QUERIES), (small_counts, large_counts)
