"""Human pairwise preferences: majority per pair, export, and the page that tunes a judge on them."""

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.urls import reverse

from annotation.exports import campaign_preferences
from annotation.models import Assignment, Campaign, Participant
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join, participant_set_excluded
from explanations.models import AdapterTraining, Generator
from tests.annotation.factories import campaign, explained_runs
from tests.conftest import client_for, table_counts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Vote = Callable[[Assignment, int], str]


def pairwise(votes: list[Vote], criteria: int = 1) -> Campaign:
    """A pairwise campaign over two runs where annotator ``i`` answers ``votes[i](assignment, i)``."""
    rubric = [
        {"name": f"c{index}", "question": f"Question {index}?", "scale_min": 1, "scale_max": 10}
        for index in range(criteria)
    ]
    study = campaign(
        runs=explained_runs(n_users=4), mode="pairwise", overlap=len(votes), items_per_annotator=50, rubric=rubric
    )
    for index, vote in enumerate(votes):
        participant = participant_join(campaign=study, user=UserFactory())
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            answers = {c.name: vote(assignment, index) for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    return study


def version_1(assignment: Assignment, _: int) -> str:
    return "a" if "Version 1" in assignment.item.explanation.text else "b"


def test_each_pair_gets_the_majority_of_its_votes() -> None:
    study = pairwise([version_1, version_1, lambda *_: "tie"])

    preferences = campaign_preferences(study)

    assert len(preferences) == 4  # one per recommendation of the 4 users
    for preference in preferences:
        assert sum(preference["votes"].values()) == 3 and preference["votes"]["tie"] == 1
        better = "a" if preference["votes"]["a"] == 2 else "b"
        assert preference["winner"] == better
    assert {json.dumps(p, sort_keys=True) for p in preferences} == {
        json.dumps(p, sort_keys=True) for p in campaign_preferences(study)
    }


def test_a_shared_top_vote_is_a_tie_and_excluded_annotators_never_count() -> None:
    study = pairwise([lambda *_: "a", lambda *_: "b"])
    assert {p["winner"] for p in campaign_preferences(study)} == {"tie"}

    second = Participant.objects.filter(campaign=study).order_by("pk").last()
    assert second is not None
    participant_set_excluded(participant=second, excluded=True)

    assert {p["winner"] for p in campaign_preferences(study)} == {"a"}
    assert all(sum(p["votes"].values()) == 1 for p in campaign_preferences(study))


def test_criteria_choose_which_answers_vote() -> None:
    study = pairwise([lambda assignment, _: "a"], criteria=2)
    assert all(p["votes"]["a"] == 2 for p in campaign_preferences(study))
    assert all(p["votes"]["a"] == 1 for p in campaign_preferences(study, criteria=["c1"]))
    assert campaign_preferences(study, criteria=["nope"]) == []


def test_the_export_and_the_tuning_page(researcher, admin_user, tiny_generator_row) -> None:
    study = pairwise([version_1, version_1])
    export = reverse("annotation:campaign_preferences", args=[study.pk])
    tune = reverse("annotation:campaign_tune_judge", args=[study.pk])

    rows = [json.loads(line) for line in client_for(researcher).get(export).content.decode().splitlines()]
    assert len(rows) == 4 and {"recommendation", "a", "b", "votes", "winner"} <= set(rows[0])
    # Researchers read preferences but do not start trainings.
    assert client_for(researcher).get(tune).status_code == 403

    admin = client_for(admin_user)
    page = admin.get(reverse("annotation:campaign_detail", args=[study.pk]))
    assert tune in page.content.decode()
    response = admin.post(
        tune,
        {
            "base_generator": tiny_generator_row.pk,
            "criteria": ["c0"],
            "epochs": 2,
            "learning_rate": 1e-3,
            "r": 4,
            "seed": 1,
        },
    )

    training = AdapterTraining.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "explanations:adapter_detail", args=[training.pk]
    )
    assert training.source == AdapterTraining.Source.PREFERENCES and training.epochs == 2 and training.r == 4
    assert training.max_length == 1024 and f"campaign #{study.pk}" in training.source_description
    stored = json.loads(Path(training.source_path).read_text(encoding="utf-8"))
    assert stored["rubric"][0]["question"] == "Question 0?" and len(stored["preferences"]) == 4


def test_bad_tuning_requests_change_nothing(admin_user, tiny_generator_row) -> None:
    runs = explained_runs(n_users=2)
    likert = campaign(runs=runs)
    admin = client_for(admin_user)
    assert admin.get(reverse("annotation:campaign_tune_judge", args=[likert.pk])).status_code == 404
    assert admin.get(reverse("annotation:campaign_preferences", args=[likert.pk])).status_code == 400

    unrated = campaign(runs=runs, mode="pairwise", name="unrated")
    before = table_counts()
    response = admin.post(
        reverse("annotation:campaign_tune_judge", args=[unrated.pk]),
        {
            "base_generator": tiny_generator_row.pk,
            "criteria": ["reasonability"],
            "epochs": 1,
            "learning_rate": 1e-3,
            "r": 4,
            "seed": 0,
        },
    )
    assert response.status_code == 200 and "need at least 2 preferences" in response.content.decode()
    assert table_counts() == before


def test_a_learning_rate_of_zero_is_refused_before_anything_is_stored(admin_user, tiny_generator_row) -> None:
    rated = pairwise([version_1])
    before = table_counts()

    zero = client_for(admin_user).post(
        reverse("annotation:campaign_tune_judge", args=[rated.pk]),
        {
            "base_generator": tiny_generator_row.pk,
            "criteria": ["c0"],
            "epochs": 1,
            "learning_rate": 0,
            "r": 4,
            "seed": 0,
        },
    )

    assert zero.status_code == 200 and "Must be greater than 0." in zero.content.decode()
    assert table_counts() == before


@pytest.fixture
def tiny_generator_row(tmp_path: Path) -> Generator:
    """A local-model generator whose folder has a config; these tests never load the model."""
    (tmp_path / "config.json").write_text("{}")
    return Generator.objects.create(name="judge-base", backend=Generator.Backend.HF, model=str(tmp_path))
