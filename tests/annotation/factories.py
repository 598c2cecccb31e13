"""Campaign fixtures: generation runs with finished explanations, written without a model."""

import json
from typing import Any

from django.utils import timezone

from annotation.models import Assignment, Campaign, Participant
from annotation.services.assignments import campaign_assign_next
from annotation.services.campaigns import campaign_create, campaign_open
from explanations.judging import default_rubric
from explanations.models import Explanation, GenerationRun, Generator
from recommendations.models import Interaction, Recommendation, RecommenderRun
from tests.explanations.factories import template, trained_run


def explained_runs(
    *,
    n_users: int = 8,
    depth: int = 1,
    n_runs: int = 2,
    run: RecommenderRun | None = None,
    include_profile: bool = True,
) -> list[GenerationRun]:
    """``n_runs`` succeeded generation runs over one SVD run, each explaining the top
    ``depth`` items of every user; each text names the user's most recent train title."""
    run = run or trained_run(n_users=n_users, k=max(depth, 2))
    prompt = template()
    runs = []
    for index in range(n_runs):
        generator, _ = Generator.objects.get_or_create(
            name=f"secret-generator-{index}", defaults={"model": f"/models/secret-model-{index}"}
        )
        generation = GenerationRun.objects.create(
            recommender_run=run,
            generator=generator,
            template=prompt,
            depth=depth,
            include_profile=include_profile,
            status=GenerationRun.Status.SUCCEEDED,
            finished_at=timezone.now(),
        )
        rows = []
        recommendations = Recommendation.objects.for_run(run).filter(rank__lte=depth).select_related("item", "user")
        for recommendation in recommendations:
            history = Interaction.objects.history_of(recommendation.user).in_train_of(run.split)  # type: ignore[arg-type]
            last = history.order_by("-timestamp").first()
            liked = last.item.title if last else "nothing"
            rows.append(
                Explanation(
                    generation_run=generation,
                    recommendation=recommendation,
                    chunk=0,
                    status=Explanation.Status.DONE,
                    text=f"Version {index}: since you enjoyed {liked}, you may like {recommendation.item.title}.",
                    generated_at=timezone.now(),
                )
            )
        Explanation.objects.bulk_create(rows)
        runs.append(generation)
    return runs


def take(participant: Participant) -> Assignment:
    """The participant's next item, which the test expects to exist."""
    assignment = campaign_assign_next(participant=participant)
    assert assignment is not None
    return assignment


def campaign(*, runs: list[GenerationRun] | None = None, **options: Any) -> Campaign:
    runs = runs or explained_runs()
    options = {"name": "study", "attention_checks": 0, "overlap": 2, "items_per_annotator": 5} | options
    made = campaign_create(created_by=None, generation_runs=runs, **options)  # type: ignore[arg-type]
    campaign_open(campaign=made)  # factory texts hold no personal data: nothing to review
    return made


def campaign_form_data(runs: list[GenerationRun], **changes: Any) -> dict[str, Any]:
    """The campaign form's POST data for a small Likert campaign over ``runs``, with ``changes``."""
    data = {
        "name": "made through the form",
        "mode": Campaign.Mode.LIKERT,
        "generation_runs": [run.pk for run in runs],
        "sample": Campaign.Sample.ALL,
        "sample_size": 50,
        "seed": 0,
        "overlap": 2,
        "items_per_annotator": 5,
        "lease_minutes": 30,
        "routing": Campaign.Routing.RANDOM,
        "audience": Campaign.Audience.THIRD_PERSON,
        "elicit_count": 15,
        "first_person_k": 3,
        "instructions": "",
        "consent_text": "",
        "attention_checks": 0,
        "check_every": 4,
        "max_check_failures": 1,
        "completion_url": "",
        "rubric": json.dumps(default_rubric()),
    }
    return data | changes


def claim_runs(**options: Any) -> list[GenerationRun]:
    """``explained_runs`` whose texts make three or four claims each: the named history title,
    then a sentence cut before "and it" and before "because"."""
    runs = explained_runs(**options)
    for explanation in Explanation.objects.filter(generation_run__in=runs).select_related("recommendation__item"):
        liked = explanation.text.split("since you enjoyed ")[1].split(", you may like")[0]
        title = explanation.recommendation.item.title
        explanation.text = (
            f"Version {explanation.generation_run.generator.name[-1]}: you enjoyed {liked}. "
            f"{title} is a drama and it keeps you guessing because its plot twists."
        )
        explanation.save(update_fields=["text"])
    return runs
