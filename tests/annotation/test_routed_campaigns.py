"""Routed campaigns and the stopping rule on the site: priorities stored from the ranking, routed
claims, the live settled state on the campaign page, and closing when settled."""

import uuid

import pytest
from django.urls import reverse

from annotation.agreement import campaign_ranking
from annotation.models import Campaign, CampaignItem
from annotation.services import assignments
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import campaign_create, participant_join
from annotation.services.errors import CampaignError
from annotation.services.routing import routing_refresh
from annotation.study.stats.ranking import priorities
from tests.annotation.factories import campaign, explained_runs, take
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def rate_all(study: Campaign, annotators: int, score) -> None:
    """Every annotator rates every item they are given, ``score(assignment, annotator)`` on every criterion."""
    for index in range(annotators):
        participant = participant_join(campaign=study, user=UserFactory())
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            value = score(assignment, index)
            answers = {c.name: value for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())


def version(assignment) -> int:
    return int(assignment.item.explanation.text.split("Version ")[1][0])


def test_a_clear_difference_settles_the_ranking_records_it_and_closes_the_campaign(researcher) -> None:
    runs = explained_runs(n_users=8, n_runs=2)
    study = campaign(runs=runs, overlap=2, items_per_annotator=100, close_when_settled=True)
    rate_all(study, 2, lambda assignment, index: 9 if version(assignment) == 1 else 2)

    page = client_for(researcher).get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()
    ranking = routing_refresh(campaign=study)

    assert ranking is not None and ranking.settled and ranking.order == [runs[1].pk, runs[0].pk]
    study.refresh_from_db()
    assert study.settled_at is not None and study.status == Campaign.Status.CLOSED
    assert 'id="ranking-state">settled<' in page and "closes when settled" in page


def test_an_open_question_shows_as_not_settled_with_the_ratings_still_needed(researcher) -> None:
    runs = explained_runs(n_users=6, n_runs=2)
    study = campaign(runs=runs, overlap=1, items_per_annotator=100)
    rate_all(study, 1, lambda assignment, index: 5 + (assignment.item.recommendation_id + version(assignment)) % 3)

    page = client_for(researcher).get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()

    ranking = campaign_ranking(study)
    assert ranking is not None and not ranking.settled
    assert 'id="ranking-state">not settled yet<' in page and 'id="ranking-gaps"' in page
    assert "more ratings would settle it" in page or "No estimate of the ratings still needed" in page
    study.refresh_from_db()
    assert study.status == Campaign.Status.OPEN and study.settled_at is None


def test_routing_refresh_stores_the_priorities_of_the_ranking_and_a_routed_claim_takes_the_highest() -> None:
    runs = explained_runs(n_users=6, n_runs=3)
    study = campaign(runs=runs, overlap=3, items_per_annotator=4, routing=Campaign.Routing.UNCERTAINTY)
    rate_all(study, 1, lambda assignment, index: 5 + version(assignment))

    ranking = routing_refresh(campaign=study)

    assert ranking is not None
    pool = list(study.items.filter(kind=CampaignItem.Kind.REGULAR).select_related("explanation").order_by("pk"))
    answered = [item.assignments.filter(status="submitted").count() for item in pool]
    shown = [(item.recommendation_id, frozenset((item.explanation.generation_run_id,))) for item in pool]
    assert [item.priority for item in pool] == priorities(ranking, shown, answered)
    # One open item made the most urgent: the next routed claim takes it.
    target = next(item for item, count in zip(pool, answered, strict=True) if count == 0)
    CampaignItem.objects.filter(campaign=study).update(priority=0)
    CampaignItem.objects.filter(pk=target.pk).update(priority=2)
    assert take(participant_join(campaign=study, user=UserFactory())).item_id == target.pk


def test_every_refresh_every_th_submit_asks_a_worker_to_refresh(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=2), routing=Campaign.Routing.UNCERTAINTY)
    unrouted = campaign(runs=list(study.generation_runs.all()), name="random order")
    monkeypatch.setattr(assignments, "REFRESH_EVERY", 1)
    sent = []
    monkeypatch.setattr(assignments, "enqueue_on_commit", lambda name, *args: sent.append((name, *args)))

    for study_ in (study, unrouted, study):
        assignment = take(participant_join(campaign=study_, user=UserFactory()))
        answers = {c.name: 5 for c in study_.criteria.all()}
        rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())

    # The second routed submit comes within REFRESH_SECONDS of the first: no second refresh.
    assert sent == [("annotation.routing_refresh", study.pk)]


@pytest.mark.parametrize(
    ("mode", "n_runs", "options"),
    [
        (Campaign.Mode.CLAIMS, 2, {"routing": Campaign.Routing.UNCERTAINTY}),
        (Campaign.Mode.LIKERT, 1, {"close_when_settled": True}),
        (Campaign.Mode.LIKERT, 2, {"routing": "fastest"}),
    ],
)
def test_routing_is_refused_where_no_generators_are_ranked(mode, n_runs, options) -> None:
    runs = explained_runs(n_users=3, n_runs=n_runs)

    with pytest.raises(CampaignError):
        campaign_create(created_by=None, name="refused", generation_runs=runs, mode=mode, **options)
    assert not Campaign.objects.exists()


def test_the_routing_is_in_every_export_row(researcher) -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=2), routing=Campaign.Routing.UNCERTAINTY)
    rate_all(study, 1, lambda assignment, index: 5)

    body = client_for(researcher).get(reverse("annotation:campaign_export", args=[study.pk, "jsonl"])).getvalue()

    assert body and all(b'"campaign_routing": "uncertainty"' in line for line in body.splitlines())
