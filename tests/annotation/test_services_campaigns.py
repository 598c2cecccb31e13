"""campaign_create and the participant services: sampling, items, rubric, crowd entry."""

import hashlib
import hmac

import pytest

from annotation.models import Campaign, CampaignItem, Participant
from annotation.services.campaigns import (
    campaign_create,
    campaign_reference_item_add,
    crowd_hash,
    crowd_participant_enter,
    participant_join,
)
from annotation.services.errors import CampaignError
from explanations.judging import default_rubric
from explanations.models import Explanation
from recommendations.models import RecommenderRun
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.annotation.factories import campaign, explained_runs

pytestmark = pytest.mark.django_db


def test_likert_campaign_has_one_item_per_recommendation_and_run_and_the_default_rubric() -> None:
    runs = explained_runs(n_users=6, n_runs=2)

    study = campaign(runs=runs)

    regular = study.items.filter(kind=CampaignItem.Kind.REGULAR)
    assert regular.count() == 6 * 2
    assert set(regular.values_list("explanation__generation_run", flat=True)) == {run.pk for run in runs}
    assert [c.name for c in study.criteria.all()] == [
        "reasonability",
        "attractiveness",
        "non_redundancy",
        "faithfulness",
    ]
    assert all((c.scale_min, c.scale_max) == (1, 10) for c in study.criteria.all())
    assert study.recommender_run_id == runs[0].recommender_run_id


def test_pairwise_campaign_pairs_every_two_runs_with_the_earlier_run_as_a() -> None:
    runs = explained_runs(n_users=5, n_runs=3)

    study = campaign(runs=runs, mode=Campaign.Mode.PAIRWISE)

    regular = list(study.items.filter(kind=CampaignItem.Kind.REGULAR).select_related("explanation", "explanation_b"))
    assert len(regular) == 5 * 3  # three pairs of runs per recommendation
    for item in regular:
        assert item.explanation_b is not None
        assert item.explanation.recommendation_id == item.explanation_b.recommendation_id == item.recommendation_id
        assert item.explanation.generation_run_id < item.explanation_b.generation_run_id


def test_random_sample_is_seeded_and_of_the_asked_size() -> None:
    runs = explained_runs(n_users=12, n_runs=1)

    def sampled(seed: int) -> set[int]:
        study = campaign(runs=runs, sample=Campaign.Sample.RANDOM, sample_size=5, seed=seed, name=f"s{seed}")
        return set(study.items.values_list("recommendation_id", flat=True))

    assert len(sampled(1)) == 5
    assert sampled(1) == sampled(1)
    assert sampled(1) != sampled(2)


def test_stratified_sample_has_the_asked_size_and_spans_activity_levels() -> None:
    runs = explained_runs(n_users=18, n_runs=1)

    study = campaign(runs=runs, sample=Campaign.Sample.STRATIFIED, sample_size=9, seed=3)

    assert study.items.filter(kind=CampaignItem.Kind.REGULAR).count() == 9


def test_attention_checks_show_another_users_history() -> None:
    study = campaign(runs=explained_runs(n_users=6, n_runs=1), attention_checks=3)

    checks = list(study.items.filter(kind=CampaignItem.Kind.ATTENTION).select_related("recommendation"))
    assert len(checks) == 3
    for check in checks:
        assert check.shown_user_id is not None and check.shown_user_id != check.recommendation.user_id
        assert check.accepted == {"fits_user": "no"}


@pytest.mark.parametrize(
    ("mode", "runs", "message"),
    [
        (Campaign.Mode.PAIRWISE, 1, "at least two"),
        (Campaign.Mode.LIKERT, 0, "at least one"),
    ],
)
def test_bad_choices_are_refused_and_write_nothing(mode: str, runs: int, message: str) -> None:
    generation_runs = explained_runs(n_users=3, n_runs=max(runs, 1))[:runs]

    with pytest.raises(CampaignError, match=message):
        campaign_create(created_by=None, name="x", generation_runs=generation_runs, mode=mode)

    assert Campaign.objects.count() == 0 and CampaignItem.objects.count() == 0


def test_runs_over_different_recommender_runs_cannot_be_mixed() -> None:
    first = explained_runs(n_users=3, n_runs=1)
    other_run = recommender_run_create(
        created_by=None,
        dataset=first[0].recommender_run.dataset,
        algorithm="SVD",
        k=2,
        hyperparameters={"n_factors": 4},
    )
    recommender_run_execute(run_id=other_run.pk)
    second = explained_runs(n_runs=1, run=RecommenderRun.objects.get(pk=other_run.pk))

    with pytest.raises(CampaignError, match="same recommender run"):
        campaign_create(created_by=None, name="x", generation_runs=first + second)
    assert Campaign.objects.count() == 0


def test_only_recommendations_every_run_explained_are_sampled() -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    failed = Explanation.objects.filter(generation_run=runs[1]).earliest("pk")
    Explanation.objects.filter(pk=failed.pk).update(status=Explanation.Status.FAILED)

    study = campaign(runs=runs)

    assert failed.recommendation_id not in set(study.items.values_list("recommendation_id", flat=True))
    assert study.items.count() == 3 * 2


def test_reference_item_ranges_are_checked_against_the_rubric() -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1))
    explanation = Explanation.objects.earliest("pk")

    with pytest.raises(CampaignError, match="within 1 to 10"):
        campaign_reference_item_add(
            campaign=study, explanation=explanation, kind="gold", accepted={"reasonability": [0, 3]}
        )
    with pytest.raises(CampaignError, match="Unknown criterion"):
        campaign_reference_item_add(campaign=study, explanation=explanation, kind="gold", accepted={"nope": [1, 3]})
    item = campaign_reference_item_add(
        campaign=study, explanation=explanation, kind="gold", accepted={"reasonability": [1, 3]}
    )
    assert item.kind == CampaignItem.Kind.GOLD and item.accepted == {"reasonability": [1, 3]}


def test_custom_rubric_is_stored_in_order() -> None:
    rubric = default_rubric(scale_max=5)[:2]
    study = campaign(runs=explained_runs(n_users=2, n_runs=1), rubric=rubric)

    assert [(c.name, c.scale_max) for c in study.criteria.all()] == [("reasonability", 5), ("attractiveness", 5)]


def test_crowd_worker_is_stored_as_a_keyed_hash_and_resumes(annotator) -> None:
    runs = explained_runs(n_users=2, n_runs=1)
    study = campaign(runs=runs)
    other = campaign(runs=runs, name="other")

    first = crowd_participant_enter(
        campaign=study, platform="prolific", worker_id="PID123abc", session={"STUDY_ID": "s"}
    )
    again = crowd_participant_enter(campaign=study, platform="prolific", worker_id="PID123abc", session={})
    elsewhere = crowd_participant_enter(campaign=other, platform="prolific", worker_id="PID123abc", session={})

    assert first.pk == again.pk
    assert "PID123abc" not in first.crowd_hash and "PID123abc" not in first.user.username
    assert first.crowd_hash != elsewhere.crowd_hash  # unlinkable across campaigns
    assert not first.user.has_usable_password() and not first.user.has_perm("annotation.annotate")
    assert first.crowd_session == {"STUDY_ID": "s"}


def test_a_returning_worker_is_recognised_after_secret_key_rotation_but_not_after_a_new_crowd_secret(settings) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    first = crowd_participant_enter(campaign=study, platform="prolific", worker_id="PID123abc", session={})

    settings.SECRET_KEY = "a-rotated-secret-key-" + "x" * 40
    rotated = crowd_participant_enter(campaign=study, platform="prolific", worker_id="PID123abc", session={})
    settings.XREC_CROWD_SECRET = "another-crowd-secret"
    rekeyed = crowd_hash(campaign=study, platform="prolific", worker_id="PID123abc")

    assert rotated.pk == first.pk
    assert rekeyed != first.crowd_hash


def test_a_worker_who_joined_before_the_crowd_secret_is_recognised_once_and_rekeyed(settings) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    first = crowd_participant_enter(campaign=study, platform="prolific", worker_id="PID123abc", session={})
    key = hashlib.sha256(f"xrec-crowd:{settings.SECRET_KEY}:{study.public_token}".encode()).digest()
    legacy = hmac.new(key, b"prolific:PID123abc", hashlib.sha256).hexdigest()
    Participant.objects.filter(pk=first.pk).update(crowd_hash=legacy)  # as stored before the upgrade

    again = crowd_participant_enter(campaign=study, platform="prolific", worker_id="PID123abc", session={})

    assert again.pk == first.pk
    assert Participant.objects.get(pk=first.pk).crowd_hash == first.crowd_hash != legacy


@pytest.mark.parametrize("worker_id", ["", "<script>", "x" * 65, "a b"])
def test_malformed_crowd_ids_are_refused(worker_id: str) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))

    with pytest.raises(CampaignError):
        crowd_participant_enter(campaign=study, platform="prolific", worker_id=worker_id, session={})
    assert Participant.objects.count() == 0


def test_joining_twice_gives_the_same_participant_and_a_closed_campaign_admits_no_one(annotator, researcher) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))

    assert participant_join(campaign=study, user=annotator).pk == participant_join(campaign=study, user=annotator).pk
    study.close()
    with pytest.raises(CampaignError, match="closed"):
        participant_join(campaign=study, user=researcher)
