"""One of every kind of object the site's URLs name, and one account per role.

Shared by the URL walker (``test_url_access``) and the API fuzzer (``test_api_fuzz``): every
``<int:...>`` in a URL can be filled with an object that exists, and where ownership matters
there is a second annotator whose assignment the first one must not see.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from annotation.models import Assignment, Campaign, CampaignItem, Participant, PrivacyFlag
from annotation.services.assignments import rating_submit
from annotation.services.campaigns import participant_join
from explanations.models import (
    AdapterTraining,
    AttributeProbe,
    ClaimCheck,
    GenerationRun,
    Generator,
    JudgeRun,
    JudgeVerdict,
    PromptTemplate,
    TextMetrics,
)
from recommendations.models import Dataset, DatasetUser, ImportJob, RecommenderRun
from tests.annotation.factories import campaign, explained_runs, take
from tests.factories import UserFactory
from xrec_site.roles import ADMIN, ANNOTATOR, RESEARCHER, roles_sync

ROLES = ("anonymous", ANNOTATOR, RESEARCHER, ADMIN)


@dataclass
class SiteObjects:
    users: dict[str, Any]  # role → account; "anonymous" → None
    other_annotator: Any
    dataset: Dataset
    dataset_user: DatasetUser
    import_job: ImportJob
    recommender_run: RecommenderRun
    generation_runs: list[GenerationRun]
    generator: Generator  # one a generation run can start with (an endpoint, never called)
    template: PromptTemplate
    adapter_training: AdapterTraining
    judge_run: JudgeRun
    probe: AttributeProbe
    claim_check: ClaimCheck
    text_metrics: TextMetrics  # PENDING: every action page and the job action API can act on it
    campaign: Campaign  # Likert
    pairwise_campaign: Campaign
    claims_campaign: Campaign
    claims_item: CampaignItem  # a pool item of ``claims_campaign``
    privacy_flag: PrivacyFlag  # on ``campaign``
    participant: Participant  # the annotator's
    assignment: Assignment  # the annotator's, submitted
    other_participant: Participant
    other_assignment: Assignment  # the other annotator's


def _answer(assignment: Assignment) -> None:
    if assignment.item.kind == CampaignItem.Kind.ATTENTION:
        answers: dict[str, Any] = {"fits_user": "no"}
    else:
        answers = {c.name: c.scale_max for c in assignment.campaign.criteria.all()}
    rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())


def site_objects() -> SiteObjects:
    """Create the objects (a few seconds: it trains one small SVD run)."""
    roles_sync()
    users: dict[str, Any] = {"anonymous": None}
    for role in (ANNOTATOR, RESEARCHER, ADMIN):
        users[role] = UserFactory(username=f"walk-{role}", role=role)
    other = UserFactory(username="walk-other-annotator", role=ANNOTATOR)

    runs = explained_runs(n_users=6, n_runs=2)
    recommender_run = runs[0].recommender_run
    dataset = recommender_run.dataset
    now = timezone.now()
    import_job = ImportJob.objects.create(
        name="walk", format="csv", dataset=dataset, status=ImportJob.Status.SUCCEEDED, finished_at=now
    )
    judge = Generator.objects.create(name="walk-judge", model="/models/walk-judge")
    judge_run = JudgeRun.objects.create(
        judge=judge, mode=JudgeRun.Mode.PAIRWISE, status=JudgeRun.Status.SUCCEEDED, started_at=now, finished_at=now
    )
    judge_run.generation_runs.set(runs)
    first, second = (run.explanations.order_by("recommendation_id").first() for run in runs)
    assert first is not None and second is not None
    JudgeVerdict.objects.create(
        judge_run=judge_run,
        recommendation=first.recommendation,
        first=first,
        second=second,
        chunk=0,
        output="Winner: 1",
        parsed={"winner": "first"},
        status=JudgeVerdict.Status.DONE,
        judged_at=now,
    )
    # Nothing calls this endpoint: runs started in tests are never enqueued.
    endpoint = Generator.objects.create(
        name="walk-endpoint", backend=Generator.Backend.OPENAI, model="walk-model", base_url="http://127.0.0.1:9/v1"
    )
    adapter_training = AdapterTraining.objects.create(base_generator=runs[0].generator, source_run=runs[0])
    probe = AttributeProbe.objects.create(
        prober=judge, generation_run=runs[0], target="gender", options=["F", "M"], status=AttributeProbe.Status.PENDING
    )
    text_metrics = TextMetrics.objects.create(generation_run=runs[0], inputs_version="walk")
    claim_check = ClaimCheck.objects.create(checker=judge, generation_run=runs[0], status=ClaimCheck.Status.PENDING)

    study = campaign(runs=runs, overlap=2, items_per_annotator=3)
    pairwise = campaign(runs=runs, name="pairwise study", mode=Campaign.Mode.PAIRWISE)
    claims = campaign(runs=runs, name="claims study", mode=Campaign.Mode.CLAIMS)
    participant = participant_join(campaign=study, user=users[ANNOTATOR])
    assignment = take(participant)
    _answer(assignment)
    take(participant)  # and one still open, so the next page has an item to show
    other_participant = participant_join(campaign=study, user=other)
    other_assignment = take(other_participant)
    return SiteObjects(
        users=users,
        other_annotator=other,
        dataset=dataset,
        dataset_user=first.recommendation.user,
        import_job=import_job,
        recommender_run=recommender_run,
        generation_runs=runs,
        generator=endpoint,
        template=runs[0].template,
        adapter_training=adapter_training,
        judge_run=judge_run,
        probe=probe,
        claim_check=claim_check,
        text_metrics=text_metrics,
        campaign=study,
        pairwise_campaign=pairwise,
        claims_campaign=claims,
        claims_item=claims.items.filter(kind=CampaignItem.Kind.REGULAR).first(),  # type: ignore[arg-type]
        privacy_flag=PrivacyFlag.objects.create(
            campaign=study, source="instructions", kind="url", match="www.example.org"
        ),
        participant=participant,
        assignment=assignment,
        other_participant=other_participant,
        other_assignment=other_assignment,
    )
