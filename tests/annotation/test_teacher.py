"""Teacher data from what people rated best: a Likert campaign's best-rated explanations tune
a generator, through the service and the campaign page."""

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from annotation.models import Campaign
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join
from annotation.services.teacher import best_rated, best_supported, campaign_teacher_start
from explanations.models import AdapterTraining, Explanation, Generator
from explanations.services.adapters import adapter_training_run, teacher_examples
from explanations.services.generators import GenerationError
from tests.annotation.factories import campaign, claim_runs, explained_runs
from tests.annotation.test_reports import rated
from tests.conftest import client_for
from tests.explanations.factories import tiny_generator

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(tmp_path: Path) -> Generator:
    from tests.explanations.tiny import build_tiny_llama  # imports torch

    return tiny_generator(build_tiny_llama(tmp_path / "tiny"), name="tiny-base")


def test_the_explanations_people_rated_best_become_the_teacher_examples(base) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    study = rated(runs)  # three annotators give run 1's explanations 8 or 9 and run 0's 4 or 5

    chosen = best_rated(study, criteria=["reasonability"], threshold=8, include_flagged=False)
    training = campaign_teacher_start(
        campaign=study, created_by=None, base_generator=base, criteria=["reasonability"], threshold=8,
        include_flagged=False, options={"epochs": 1},
    )  # fmt: skip

    best = set(Explanation.objects.filter(generation_run=runs[1]).values_list("pk", flat=True))
    assert set(chosen) == best and all(8 <= score <= 9 for score in chosen.values())
    assert training.source == AdapterTraining.Source.RATED and "mean reasonability ≥ 8" in training.source_description
    examples, dropped = teacher_examples(training)
    texts = set(Explanation.objects.filter(pk__in=best).values_list("text", flat=True))
    assert {example.response for example in examples} <= texts and len(examples) + dropped == len(best)
    with pytest.raises(GenerationError, match="need at least 2 rated explanations"):
        campaign_teacher_start(
            campaign=study, created_by=None, base_generator=base, criteria=["reasonability"], threshold=10,
            include_flagged=False, options={},
        )  # fmt: skip


def test_admins_tune_from_a_likert_campaign_page(base, admin_user, researcher) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    study = rated(runs)
    url = reverse("annotation:campaign_tune_generator", args=[study.pk])
    form = {"base_generator": base.pk, "criteria": ["reasonability", "attractiveness"], "threshold": 8,
            "epochs": 1, "learning_rate": 2e-4, "r": 8, "seed": 0}  # fmt: skip

    assert client_for(researcher).get(url).status_code == 403
    page = client_for(admin_user).get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()
    started = client_for(admin_user).post(url, form)

    training = AdapterTraining.objects.get()
    assert url in page and started.status_code == 302
    assert started["Location"] == reverse("explanations:adapter_detail", args=[training.pk])
    pairwise = campaign(runs=runs, name="pairwise", mode="pairwise")
    assert (
        client_for(admin_user).get(reverse("annotation:campaign_tune_generator", args=[pairwise.pk])).status_code == 404
    )


def _claims_labelled(django_user_model) -> tuple[Campaign, list]:
    """A claims campaign whose three annotators find every claim of run 1 supported and the
    last claim of run 0's explanations not supported."""
    runs = claim_runs(n_users=4, n_runs=2)
    study = campaign(runs=runs, mode=Campaign.Mode.CLAIMS, overlap=3, items_per_annotator=8)
    permission = Permission.objects.get(codename="annotate")
    for index in range(3):
        user = django_user_model.objects.create_user(f"teacher-coder-{index}")
        user.user_permissions.add(permission)
        participant = participant_join(campaign=study, user=user)
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            claims = list(assignment.item.claims.all())
            weak = assignment.item.explanation.generation_run_id == runs[0].pk
            answers = {c.field_name: "unsupported" if weak and c.position == 3 else "supported" for c in claims}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    return study, runs


def test_a_claims_campaigns_best_supported_explanations_become_the_teacher_examples(
    base, admin_user, django_user_model
) -> None:
    study, runs = _claims_labelled(django_user_model)
    # As generation stores them: the prompt each explanation was written from.
    Explanation.objects.filter(generation_run__in=runs).update(prompt=[{"role": "user", "content": "Why this film?"}])

    chosen = best_supported(study, threshold=1.0)
    assert set(chosen) == set(Explanation.objects.filter(generation_run=runs[1]).values_list("pk", flat=True))
    assert len(best_supported(study, threshold=0.75)) == 8  # run 0's explanations: 3 of 4 claims supported
    url = reverse("annotation:campaign_tune_generator", args=[study.pk])
    page = client_for(admin_user).get(url).content.decode()
    started = client_for(admin_user).post(
        url, {"base_generator": base.pk, "threshold": 1, "epochs": 1, "learning_rate": 2e-4, "r": 8, "seed": 0}
    )

    training = AdapterTraining.objects.get()
    assert "best-supported" in page and started.status_code == 302
    assert "share of claims found supported ≥ 1" in training.source_description
    assert training.source == AdapterTraining.Source.RATED

    adapter_training_run(training_id=training.pk)  # what the gpu worker runs

    training.refresh_from_db()
    assert training.status == AdapterTraining.Status.SUCCEEDED, training.error
    assert training.n_examples == 4 and Generator.objects.filter(adapter_training=training).exists()
