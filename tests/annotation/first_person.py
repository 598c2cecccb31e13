"""First-person campaign fixtures: a trained run over a small catalogue, generation runs of tiny
local models (so that a participant's explanations really are generated), and a participant who
rates items and is recommended to."""

from pathlib import Path
from typing import Any

from django.utils import timezone

from annotation.models import Campaign, Participant
from annotation.services.campaigns import campaign_create, campaign_open, participant_join
from annotation.services.first_person import elicited_rating_set, first_person_recommend
from explanations.models import GenerationRun, Generator
from explanations.services.generation import GENERATION
from recommendations.models import Interaction, Item, RecommenderRun
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.explanations.factories import template, tiny_generator
from tests.explanations.tiny import build_tiny_llama
from tests.factories import UserFactory
from tests.recommendations.factories import rated_dataset
from xrec_site.roles import ANNOTATOR


def catalogue_run(*, n_users: int = 30, n_items: int = 40, k: int = 3) -> RecommenderRun:
    """A finished SVD run whose model knows every item of a seeded catalogue."""
    dataset = rated_dataset(name="catalogue", n_users=n_users, n_items=n_items, per_user=12)
    run = recommender_run_create(
        created_by=None, dataset=dataset, algorithm="SVD", k=k, hyperparameters={"n_factors": 4, "n_epochs": 10}
    )
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RecommenderRun.Status.SUCCEEDED, run.error
    return run


def parent_runs(recommender_run: RecommenderRun, model_dir: Path, n: int = 2) -> list[GenerationRun]:
    """``n`` finished generation runs of distinct tiny generators over ``recommender_run``: what
    a first-person campaign repeats for each participant (their own explanations are not needed)."""
    if not (model_dir / "config.json").exists():
        build_tiny_llama(model_dir)
    runs = []
    for index in range(n):
        generator = tiny_generator(model_dir, name=f"tiny-{index}")
        generator.seed = index
        generator.save()
        runs.append(
            GenerationRun.objects.create(
                recommender_run=recommender_run,
                generator=generator,
                template=template(),
                seed=index,
                max_words=20,
                status=GenerationRun.Status.SUCCEEDED,
                finished_at=timezone.now(),
            )
        )
    return runs


def first_person_campaign(runs: list[GenerationRun], **options: Any) -> Campaign:
    options = {"name": "my own", "audience": Campaign.Audience.FIRST_PERSON, "elicit_count": 5} | options
    made = campaign_create(created_by=None, generation_runs=runs, **options)  # type: ignore[arg-type]
    campaign_open(campaign=made)
    return made


def participant(campaign: Campaign, username: str) -> Participant:
    return participant_join(campaign=campaign, user=UserFactory(username=username, role=ANNOTATOR))


def rate(participant: Participant, ratings: dict[int, int]) -> None:
    for item, value in ratings.items():
        elicited_rating_set(participant=participant, item_id=item, rating=value)


def liked_first(campaign: Campaign, n: int, *, reverse: bool = False) -> dict[int, int]:
    """``n`` catalogue items rated 5 for the first half (by id) and 1 for the rest, or the opposite."""
    ids = list(
        Item.objects.filter(dataset_id=campaign.recommender_run.dataset_id).order_by("pk").values_list("pk", flat=True)
    )[:n]
    high, low = (1, 5) if reverse else (5, 1)
    return {pk: high if index < n // 2 else low for index, pk in enumerate(ids)}


def recommended(participant: Participant, ratings: dict[int, int]) -> Participant:
    """Rate, be recommended to, and have the explanations generated here (no worker)."""
    rate(participant, ratings)
    participant = first_person_recommend(participant=participant)
    for run in GenerationRun.objects.filter(recommender_run_id=participant.recommender_run_id):
        GENERATION.run_here(run)
    return participant


def observed_interactions(dataset_id: int) -> int:
    return Interaction.objects.of_dataset(dataset_id).count()


def generator_names(runs: list[GenerationRun]) -> list[str]:
    return [Generator.objects.get(pk=run.generator_id).name for run in runs]
