"""First-person campaigns: elicited ratings kept apart from the data, fold-in recommendations,
explanations generated for them, own items served only to their participant, deletion on request."""

import pytest
from django.urls import reverse

from annotation.models import Assignment, Campaign, CampaignItem, Participant
from annotation.services.assignments import campaign_assign_next
from annotation.services.errors import CampaignError
from annotation.services.first_person import (
    elicitation_items,
    elicited_rating_set,
    elicited_ratings,
    first_person_items_create,
    first_person_progress,
    first_person_recommend,
    participant_data_delete,
)
from explanations.models import Explanation, GenerationRun
from recommendations.models import DatasetUser, Interaction, Item, Recommendation, RecommenderRun
from recommendations.services.splits import dataset_rows
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.annotation.factories import take
from tests.annotation.first_person import (
    catalogue_run,
    first_person_campaign,
    liked_first,
    observed_interactions,
    parent_runs,
    participant,
    rate,
    recommended,
)
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(tmp_path):
    run = catalogue_run()
    return first_person_campaign(parent_runs(run, tmp_path / "tiny"))


def test_a_first_person_campaign_has_no_pool_and_rates_every_own_item(campaign) -> None:
    assert campaign.is_open and not campaign.items.exists()
    assert campaign.attention_checks == 0
    assert campaign.items_per_annotator == 3 * 2  # K recommendations x two runs (Likert)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": Campaign.Mode.CLAIMS}, "Likert or pairwise"),
        ({"routing": Campaign.Routing.UNCERTAINTY}, "no routing"),
        ({"elicit_count": 2}, "rate 3 to"),
        ({"first_person_k": 0}, "Recommend 1 to"),
        ({"audience": "second_person"}, "Audience is one of"),
    ],
)
def test_bad_first_person_choices_are_refused_and_write_nothing(tmp_path, options, message) -> None:
    runs = parent_runs(catalogue_run(), tmp_path / "tiny")
    before = Campaign.objects.count()
    with pytest.raises(CampaignError, match=message):
        first_person_campaign(runs, **options)
    assert Campaign.objects.count() == before


def test_elicited_ratings_are_a_separate_user_that_no_dataset_wide_read_sees(campaign) -> None:
    dataset_id = campaign.recommender_run.dataset_id
    observed, rows = observed_interactions(dataset_id), len(dataset_rows(campaign.recommender_run.dataset))
    someone = participant(campaign, "p1")
    rate(someone, liked_first(campaign, 6))
    someone.refresh_from_db()
    user = someone.dataset_user
    assert user is not None and user.elicited and user.dataset_id == dataset_id
    assert Interaction.objects.filter(user=user).count() == 6
    # Splits and training read dataset_rows; popularity, probes and re-identification of_dataset.
    assert observed_interactions(dataset_id) == observed
    assert len(dataset_rows(campaign.recommender_run.dataset)) == rows
    popular = Item.objects.filter(dataset_id=dataset_id).most_interacted()
    assert sum(item.n_interactions for item in popular) == observed  # type: ignore[attr-defined]
    # A recommender trained now learns from exactly the same interactions.
    again = recommender_run_create(created_by=None, dataset=campaign.recommender_run.dataset, algorithm="SVD", k=3)
    recommender_run_execute(run_id=again.pk)
    again.refresh_from_db()
    assert again.split is not None
    assert again.split.n_train + again.split.n_test == observed
    assert not Recommendation.objects.filter(run=again, user=user).exists()


def test_a_rating_off_the_scale_or_of_another_catalogue_is_refused_and_changes_nothing(campaign, tmp_path) -> None:
    someone = participant(campaign, "p1")
    item = Item.objects.filter(dataset_id=campaign.recommender_run.dataset_id)[0]
    for bad_item, bad_rating in ((item.pk, 6), (item.pk, 0), (10**9, 3)):
        with pytest.raises(CampaignError):
            elicited_rating_set(participant=someone, item_id=bad_item, rating=bad_rating)
    assert not DatasetUser.objects.filter(elicited=True).exists()
    elicited_rating_set(participant=someone, item_id=item.pk, rating=4)
    elicited_rating_set(participant=someone, item_id=item.pk, rating=2)  # a change replaces
    assert elicited_ratings(someone) == {item.pk: 2.0}
    elicited_rating_set(participant=someone, item_id=item.pk, rating=None)  # and clearing takes it back
    assert elicited_ratings(someone) == {}


def test_too_few_ratings_recommend_nothing(campaign) -> None:
    someone = participant(campaign, "p1")
    rate(someone, liked_first(campaign, 4))
    with pytest.raises(CampaignError, match="Rate at least 5 items first \\(4 so far\\)"):
        first_person_recommend(participant=someone)
    assert not RecommenderRun.objects.filter(kind=RecommenderRun.Kind.FIRST_PERSON).exists()


def test_recommendations_follow_the_elicited_ratings_and_never_repeat_a_rated_item(campaign) -> None:
    one, other = participant(campaign, "p1"), participant(campaign, "p2")
    ratings = liked_first(campaign, 20)
    rate(one, ratings)
    rate(other, liked_first(campaign, 20, reverse=True))
    one, other = first_person_recommend(participant=one), first_person_recommend(participant=other)
    picks = {
        p.pseudonym: list(
            Recommendation.objects.filter(run=p.recommender_run).order_by("rank").values_list("item_id", flat=True)
        )
        for p in (one, other)
    }
    assert all(len(items) == 3 for items in picks.values())
    assert picks[one.pseudonym] != picks[other.pseudonym]
    assert not set(picks[one.pseudonym]) & set(ratings)
    fold_in = one.recommender_run
    assert fold_in is not None
    assert fold_in.kind == RecommenderRun.Kind.FIRST_PERSON and fold_in.parent_id == campaign.recommender_run_id
    assert fold_in.source["method"] == "factors" and fold_in.source["n_ratings"] == 20
    # Kept out of the lists a researcher picks runs from.
    assert not RecommenderRun.objects.listed().filter(pk=fold_in.pk).exists()
    # Recommended once: ratings can no longer change, and asking again changes nothing.
    with pytest.raises(CampaignError, match="can no longer change"):
        elicited_rating_set(participant=one, item_id=next(iter(ratings)), rating=3)
    assert first_person_recommend(participant=one).recommender_run_id == fold_in.pk


def test_each_campaign_run_is_repeated_for_the_participant_and_their_items_are_theirs_alone(campaign) -> None:
    one = recommended(participant(campaign, "p1"), liked_first(campaign, 6))
    children = GenerationRun.objects.filter(recommender_run=one.recommender_run).order_by("parent_id")
    parents = list(campaign.generation_runs.order_by("pk"))
    assert [run.parent_id for run in children] == [run.pk for run in parents]
    for child, parent in zip(children, parents, strict=True):
        assert (child.generator_id, child.template_id, child.seed, child.max_words) == (
            parent.generator_id,
            parent.template_id,
            parent.seed,
            parent.max_words,
        )
        assert child.status == GenerationRun.Status.SUCCEEDED
    assert not GenerationRun.objects.listed().filter(pk__in=children).exists()
    progress = first_person_progress(one)
    assert progress["finished"] and not progress["ready"] and progress["total"] == 6
    assert first_person_items_create(participant=one) == 6
    assert first_person_items_create(participant=one) == 6  # idempotent
    # Another participant, still eliciting, is given nothing and is not finished.
    other = participant(campaign, "p2")
    assert campaign_assign_next(participant=other) is None
    other.refresh_from_db()
    assert other.completed_at is None
    served = []
    while (assignment := campaign_assign_next(participant=one)) is not None:
        served.append(assignment.item)
        Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED)
        Participant.objects.filter(pk=one.pk).update(n_done=len(served))
    assert len(served) == 6 and {item.participant_id for item in served} == {one.pk}
    assert {item.recommendation.user_id for item in served} == {one.dataset_user_id}


def test_pairwise_first_person_items_pair_the_two_runs_with_sides_randomised(tmp_path) -> None:
    runs = parent_runs(catalogue_run(), tmp_path / "tiny")
    campaign = first_person_campaign(runs, mode=Campaign.Mode.PAIRWISE)
    assert campaign.items_per_annotator == 3
    one = recommended(participant(campaign, "p1"), liked_first(campaign, 6))
    assert first_person_items_create(participant=one) == 3
    items = CampaignItem.objects.filter(participant=one).select_related(
        "explanation__generation_run", "explanation_b__generation_run"
    )
    for item in items:
        assert item.explanation.generation_run.parent_id == runs[0].pk
        assert item.explanation_b is not None and item.explanation_b.generation_run.parent_id == runs[1].pk


def test_deleting_a_participant_deletes_everything_they_left(campaign) -> None:
    one = recommended(participant(campaign, "p1"), liked_first(campaign, 6))
    first_person_items_create(participant=one)
    take(one)
    user_id, run_id = one.dataset_user_id, one.recommender_run_id
    assert user_id is not None and run_id is not None
    participant_data_delete(participant=one)
    assert not Participant.objects.filter(pk=one.pk).exists()
    assert not DatasetUser.objects.filter(pk=user_id).exists()
    assert not Interaction.objects.filter(user_id=user_id).exists()
    assert not RecommenderRun.objects.filter(pk=run_id).exists()
    assert not GenerationRun.objects.filter(recommender_run_id=run_id).exists()
    assert not Explanation.objects.filter(recommendation__user_id=user_id).exists()
    assert not CampaignItem.objects.filter(campaign=campaign).exists()
    assert not Assignment.objects.filter(campaign=campaign).exists()
    # The campaign's own runs and the dataset stay.
    assert (
        campaign.generation_runs.count() == 2 and RecommenderRun.objects.filter(pk=campaign.recommender_run_id).exists()
    )


def test_elicitation_offers_the_most_rated_titles_or_those_found(campaign) -> None:
    popular = elicitation_items(campaign)
    counts = [
        Interaction.objects.of_dataset(campaign.recommender_run.dataset_id).filter(item=i).count() for i in popular
    ]
    assert counts == sorted(counts, reverse=True)
    found = elicitation_items(campaign, "Item 1")
    assert found and all("Item 1" in item.title for item in found)


# --- Pages ------------------------------------------------------------------------------------


def _client(p: Participant):
    return client_for(p.user)


def test_the_annotator_is_sent_to_elicit_then_to_wait_then_to_their_items(campaign) -> None:
    someone = participant(campaign, "p1")
    client = _client(someone)
    assert client.get(reverse("annotation:next", args=[campaign.pk])).url == reverse(
        "annotation:elicit", args=[campaign.pk]
    )
    page = client.get(reverse("annotation:elicit", args=[campaign.pk]))
    assert page.status_code == 200 and b"Recommend to me" in page.content
    ratings = liked_first(campaign, 5)
    for item, value in ratings.items():
        answer = client.post(
            reverse("annotation:elicit_rate", args=[campaign.pk]),
            {"item": item, "rating": value},
            HTTP_HX_REQUEST="true",
        )
        assert answer.status_code == 200 and f'id="elicit-item-{item}"'.encode() in answer.content
    assert b'<b id="elicit-count">5</b>' in answer.content and b"hx-swap-oob" in answer.content
    finish = client.post(reverse("annotation:elicit_finish", args=[campaign.pk]))
    assert finish.url == reverse("annotation:waiting", args=[campaign.pk])
    waiting = client.get(reverse("annotation:waiting", args=[campaign.pk]))
    assert waiting.status_code == 200 and b'id="progress"' in waiting.content and b"every 2s" in waiting.content
    polled = client.get(reverse("annotation:waiting", args=[campaign.pk]), HTTP_HX_REQUEST="true")
    assert polled.status_code == 200 and b'0</span> of <span id="progress-total">6' in polled.content
    someone.refresh_from_db()
    for run in GenerationRun.objects.filter(recommender_run_id=someone.recommender_run_id):
        from explanations.services.generation import GENERATION

        GENERATION.run_here(run)
    ready = client.get(reverse("annotation:waiting", args=[campaign.pk]), HTTP_HX_REQUEST="true")
    assert ready["HX-Redirect"] == reverse("annotation:next", args=[campaign.pk])
    first = client.get(reverse("annotation:next", args=[campaign.pk]))
    assert first.url.startswith("/annotate/items/")
    item_page = client.get(first.url)
    assert item_page.status_code == 200


def test_the_waiting_page_stops_polling_when_nothing_could_be_written(campaign) -> None:
    someone = participant(campaign, "p1")
    rate(someone, liked_first(campaign, 5))
    someone = first_person_recommend(participant=someone)
    Explanation.objects.filter(generation_run__recommender_run_id=someone.recommender_run_id).update(status="failed")
    GenerationRun.objects.filter(recommender_run_id=someone.recommender_run_id).update(status="succeeded")
    polled = _client(someone).get(reverse("annotation:waiting", args=[campaign.pk]), HTTP_HX_REQUEST="true")
    assert polled.status_code == 286 and b'id="progress-failed"' in polled.content


def test_a_participant_with_nothing_to_rate_may_ask_for_their_explanations_again_twice(campaign) -> None:
    someone = participant(campaign, "p1")
    rate(someone, liked_first(campaign, 5))
    someone = first_person_recommend(participant=someone)
    own = Explanation.objects.filter(generation_run__recommender_run_id=someone.recommender_run_id)
    runs = GenerationRun.objects.filter(recommender_run_id=someone.recommender_run_id)
    client = _client(someone)
    waiting = reverse("annotation:waiting", args=[campaign.pk])
    retry = reverse("annotation:waiting_retry", args=[campaign.pk])

    too_early = client.post(retry, follow=True)
    assert b"nothing to try again" in too_early.content and someone_retries(someone) == 0

    for attempt in (1, 2):
        own.update(status="failed")
        runs.update(status="succeeded")
        assert b'id="retry"' in client.get(waiting).content
        assert client.post(retry).url == waiting
        assert someone_retries(someone) == attempt
        assert not own.exclude(status="pending").exists(), "every failed explanation is asked for again"
        assert set(runs.values_list("status", flat=True)) == {"running"}

    own.update(status="failed")
    runs.update(status="succeeded")
    page = client.get(waiting).content
    assert b'id="retry"' not in page and b"Please tell the researchers" in page
    refused = client.post(retry, follow=True)
    assert b"were tried 3 times" in refused.content and someone_retries(someone) == 2
    assert not own.exclude(status="failed").exists(), "a refused retry changes nothing"
    # Another participant asking changes only their own (here: nothing to retry).
    other = _client(participant(campaign, "p2"))
    other_retry = other.post(retry)
    assert other_retry.status_code == 302 and not own.exclude(status="failed").exists()


def someone_retries(p: Participant) -> int:
    return Participant.objects.get(pk=p.pk).generation_retries


def test_bad_elicitation_input_gets_a_clear_400(campaign) -> None:
    client = _client(participant(campaign, "p1"))
    url = reverse("annotation:elicit_rate", args=[campaign.pk])
    item = Item.objects.filter(dataset_id=campaign.recommender_run.dataset_id)[0]
    for data in ({"item": "x", "rating": 3}, {"item": item.pk, "rating": "-1"}, {"item": item.pk, "rating": 9}):
        answer = client.post(url, data, HTTP_HX_REQUEST="true")
        assert answer.status_code == 400
    assert not DatasetUser.objects.filter(elicited=True).exists()


def test_first_person_pages_are_404_to_others_and_on_third_person_campaigns(campaign) -> None:
    from tests.annotation.factories import campaign as third_person_campaign

    outsider = participant(first_person_campaign(list(campaign.generation_runs.all()), name="other"), "p2")
    client = _client(outsider)
    for name in ("elicit", "waiting"):
        assert client.get(reverse(f"annotation:{name}", args=[campaign.pk])).status_code == 404
    third = third_person_campaign()
    from annotation.services.campaigns import participant_join

    participant_join(campaign=third, user=outsider.user)
    assert client.get(reverse("annotation:elicit", args=[third.pk])).status_code == 404


def test_titles_are_escaped_on_the_elicitation_page(campaign) -> None:
    Item.objects.filter(dataset_id=campaign.recommender_run.dataset_id).filter(title="Item 1").update(
        title="<script>alert(1)</script>"
    )
    page = _client(participant(campaign, "p1")).get(reverse("annotation:elicit", args=[campaign.pk]) + "?q=alert")
    assert b"<script>alert(1)</script>" not in page.content and b"&lt;script&gt;" in page.content


def test_a_participant_withdraws_and_their_data_is_gone(campaign) -> None:
    someone = participant(campaign, "p1")
    rate(someone, liked_first(campaign, 3))
    client = _client(someone)
    assert client.get(reverse("annotation:withdraw", args=[campaign.pk])).status_code == 200
    answer = client.post(reverse("annotation:withdraw", args=[campaign.pk]))
    assert answer.status_code == 200 and b'id="withdrawn"' in answer.content
    assert not Participant.objects.filter(pk=someone.pk).exists()
    assert not DatasetUser.objects.filter(elicited=True).exists()


def labels_of(report: dict) -> dict[int, str]:
    return {run["generation_run"]: run["label"] for run in report["runs"]}


def test_the_report_sets_first_person_ratings_beside_third_person_ones_with_intervals(tmp_path) -> None:
    import uuid

    from annotation.services.assignments import rating_submit
    from annotation.study.report import study_report
    from annotation.study.tables import report_tables
    from explanations.models import Generator
    from tests.annotation.factories import explained_runs
    from tests.annotation.test_reports import rated
    from tests.explanations.tiny import build_tiny_llama

    runs = explained_runs(run=catalogue_run(n_users=12), n_runs=2)
    build_tiny_llama(tmp_path / "tiny")
    Generator.objects.filter(pk__in=[run.generator_id for run in runs]).update(
        model=str(tmp_path / "tiny"), quantization="none"
    )
    third = rated(runs, annotators=2)  # run 1 rated 8-9, run 0 rated 4-5
    mine = first_person_campaign(runs)
    for index in range(3):
        someone = recommended(participant(mine, f"p{index}"), liked_first(mine, 6, reverse=bool(index % 2)))
        first_person_items_create(participant=someone)
        while (assignment := campaign_assign_next(participant=someone)) is not None:
            # The first run's explanations please these participants more: 7 against 3.
            parent = assignment.item.explanation.generation_run.parent_id
            value = 7 if parent == runs[0].pk else 3
            answers = {c.name: value + index % 2 for c in mine.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs, seed=0)

    assert [section["campaign"] for section in report["human"]] == [third.pk]  # third person only
    (section,) = report["first_person"]["campaigns"]
    assert section["campaign"] == mine.pk and section["participants"] == 3
    rows = report["first_person"]["comparison"]
    assert len(rows) == 2 * mine.criteria.count()
    for row in rows:
        assert row["third_person_campaign"] == f"#{third.pk} {third.name}"
        first, other, difference = row["first_person"], row["third_person"], row["difference"]
        assert first["low"] < first["estimate"] < first["high"]
        assert difference["estimate"] == pytest.approx(first["estimate"] - other["estimate"])
        assert difference["low"] < difference["estimate"] < difference["high"]
    by_run: dict[str, list[float]] = {}
    for row in rows:
        by_run.setdefault(row["run"], []).append(row["difference"]["estimate"])
    # First person preferred run 0 (7 vs 3), the crowd run 1 (4-5 vs 8-9): opposite signs.
    signs = sorted(round(sum(values) / len(values)) > 0 for values in by_run.values())
    assert signs == [False, True], by_run
    table = next(t for t in report_tables(report) if t.name == "first_person")
    assert len(table.rows) == len(rows) and table.rows[0][6] == "3"
    # Whether each campaign's ranking is settled, and in which order.
    settled = {row[0]: row for row in next(t for t in report_tables(report) if t.name == "ranking").rows}
    assert set(settled) == {f"#{third.pk} {third.name}", f"#{mine.pk} {mine.name}"}
    assert section["ranking"]["order"][0][0] == labels_of(report)[runs[0].pk]  # first person: run 0 first
    assert report["human"][0]["ranking"]["order"][0][0] == labels_of(report)[runs[1].pk]  # the crowd: run 1


def test_the_campaign_page_ranks_the_campaign_runs_over_every_participant(campaign) -> None:
    import uuid

    from annotation.agreement import campaign_ranking
    from annotation.services.assignments import rating_submit

    parents = list(campaign.generation_runs.order_by("pk"))
    for index in range(2):
        someone = recommended(participant(campaign, f"p{index}"), liked_first(campaign, 6, reverse=bool(index)))
        first_person_items_create(participant=someone)
        while (assignment := campaign_assign_next(participant=someone)) is not None:
            better = assignment.item.explanation.generation_run.parent_id == parents[1].pk
            answers = {c.name: 9 if better else 2 for c in campaign.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    ranking = campaign_ranking(campaign)
    assert ranking is not None and list(ranking.order) == [parents[1].pk, parents[0].pk]


def test_deleting_a_third_person_annotator_gives_their_slots_back(researcher) -> None:
    from tests.annotation.factories import campaign as third_person_campaign

    study = third_person_campaign(overlap=1)
    someone = participant(study, "p1")
    first = take(someone)
    Assignment.objects.filter(pk=first.pk).update(status=Assignment.Status.SUBMITTED)
    take(someone)
    assert CampaignItem.objects.filter(campaign=study, n_live=1).count() == 2
    answer = client_for(researcher).post(reverse("annotation:participant_delete", args=[study.pk, someone.pk]))
    assert answer.status_code == 302
    assert not Participant.objects.filter(pk=someone.pk).exists()
    assert not CampaignItem.objects.filter(campaign=study, n_live__gt=0).exists()


def test_exports_give_first_person_answers_the_lineage_of_the_campaign_run_they_repeat(campaign) -> None:
    import uuid

    from annotation.exports import rating_export_rows
    from annotation.services.assignments import rating_submit

    parents = {run.pk: run for run in campaign.generation_runs.all()}
    someone = recommended(participant(campaign, "p0"), liked_first(campaign, 6))
    first_person_items_create(participant=someone)
    while (assignment := campaign_assign_next(participant=someone)) is not None:
        answers = {c.name: 5 for c in campaign.criteria.all()}
        rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())

    rows = list(rating_export_rows(campaign))

    own = dict(
        Explanation.objects.filter(generation_run__parent__campaigns=campaign).values_list("pk", "generation_run")
    )
    assert rows and {row["generation_run_a"] for row in rows} == set(parents)
    for row in rows:
        assert row["explanation_a_id"] in own, "the participant's own explanation"
        assert GenerationRun.objects.get(pk=own[row["explanation_a_id"]]).parent_id == row["generation_run_a"]
        assert row["generator_a"].startswith(parents[row["generation_run_a"]].generator.name)
        assert row["prompt_a"] and row["seed_a"] == parents[row["generation_run_a"]].seed
