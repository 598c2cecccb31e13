"""Annotation campaigns: what is rated, by whom, with which answers.

A campaign's items are fixed when it is created (``campaign_create``); annotators are
``Participant`` rows; each item an annotator is given is one ``Assignment``; each answer
to one criterion is one ``Rating``. Every row a click produces has a natural key with a
unique constraint, so a repeated request can never store an answer twice.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone

from annotation.privacy import KINDS
from annotation.querysets import AssignmentQuerySet, CampaignQuerySet
from explanations.models import Explanation, GenerationRun
from recommendations.models import DatasetUser, Recommendation, RecommenderRun

PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"


def validate_completion_url(value: str) -> None:
    """An https URL, ``{code}`` allowed anywhere. Crowd workers are redirected to it after
    their last answer: a ``javascript:`` or ``data:`` URL would run in the site's origin, and
    the Content-Security-Policy (form-action 'self' https:) would stop a plain http one."""
    if not value:
        return
    try:
        URLValidator(schemes=["https"])(value.replace("{code}", "CODE"))
    except ValidationError:
        raise ValidationError(
            "Give an https:// URL (use {code} where the completion code goes).", code="invalid"
        ) from None


def _token() -> str:
    return secrets.token_urlsafe(16)


def _completion_code() -> str:
    return secrets.token_hex(4).upper()


class Campaign(models.Model):
    """A human evaluation study over the explanations of one or more generation runs."""

    class Mode(models.TextChoices):
        LIKERT = "likert", "Likert: rate each explanation on every criterion"
        PAIRWISE = "pairwise", "Pairwise: which of two explanations is better (A / B / tie)"
        CLAIMS = "claims", "Claims: is each claim of an explanation supported by the user's history and the item?"

    class Sample(models.TextChoices):
        ALL = "all", "All recommendations"
        RANDOM = "random", "Seeded random N"
        STRATIFIED = "stratified", "N stratified by user activity and item popularity"

    class Audience(models.TextChoices):
        THIRD_PERSON = "third_person", "Third person: annotators rate explanations written for dataset users"
        FIRST_PERSON = (
            "first_person",
            ("First person: each participant rates some items, is recommended to and rates their own explanations"),
        )

    class Routing(models.TextChoices):
        RANDOM = "random", "Random order"
        UNCERTAINTY = "uncertainty", "Routed: items of the generators the ranking cannot yet tell apart first"

    class Status(models.TextChoices):
        REVIEW = "review", "In review (not open yet)"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    name = models.CharField(max_length=200)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.LIKERT)
    audience = models.CharField(max_length=12, choices=Audience.choices, default=Audience.THIRD_PERSON)
    elicit_count = models.PositiveSmallIntegerField(
        default=15, help_text="First person: items a participant rates before they are recommended to."
    )
    first_person_k = models.PositiveSmallIntegerField(
        default=3, help_text="First person: recommendations made and explained for each participant."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    recommender_run = models.ForeignKey(RecommenderRun, on_delete=models.PROTECT, related_name="campaigns")
    generation_runs = models.ManyToManyField(GenerationRun, related_name="campaigns")
    sample = models.CharField(max_length=20, choices=Sample.choices, default=Sample.ALL)
    sample_size = models.PositiveIntegerField(default=50)
    seed = models.IntegerField(default=0)
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Distinct annotators per item (k).")
    items_per_annotator = models.PositiveIntegerField(default=20)
    lease_minutes = models.PositiveIntegerField(
        default=30, help_text="An item not submitted within this time returns to the pool."
    )
    routing = models.CharField(max_length=12, choices=Routing.choices, default=Routing.RANDOM)
    close_when_settled = models.BooleanField(
        default=False, help_text="Close the campaign once the ranking of its generators is settled."
    )
    settled_at = models.DateTimeField(
        null=True, blank=True, help_text="When the ranking of the generators was first found settled."
    )
    profile_fields = models.JSONField(
        default=list,
        blank=True,
        help_text="The dataset user's profile fields annotators see (none by default: zip code, age and gender "
        "together can single a person out).",
    )
    history_length = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="History rows annotators see beside an explanation; empty: as many as the prompt showed (at "
        "least 5).",
    )
    instructions = models.TextField(blank=True, help_text="Markdown; shown sanitised.")
    consent_text = models.TextField(blank=True, help_text="Markdown; empty: no consent step.")
    attention_checks = models.PositiveSmallIntegerField(
        default=2, help_text="Automatic checks per annotator: an explanation shown with another user's history."
    )
    check_every = models.PositiveSmallIntegerField(default=4, help_text="Serve a check after this many items.")
    max_check_failures = models.PositiveSmallIntegerField(
        default=1, help_text="An annotator who fails more checks than this is flagged."
    )
    completion_url = models.CharField(
        max_length=500,
        blank=True,
        default=PROLIFIC_COMPLETION_URL,
        validators=[validate_completion_url],
        help_text="Crowd annotators are sent here at the end; {code} is replaced by the completion code.",
    )
    completion_code = models.CharField(max_length=40, default=_completion_code)
    public_token = models.CharField(max_length=40, unique=True, default=_token, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[CampaignQuerySet] = CampaignQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("annotate", "Can take part in annotation campaigns"),
            # The site's campaign pages check this, not add/change_campaign: a researcher runs
            # campaigns through the services (which keep items, overlap and status consistent)
            # but may not edit campaign rows in the admin.
            ("run_campaign", "Can create, close and moderate campaigns from the site"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def is_first_person(self) -> bool:
        return self.audience == self.Audience.FIRST_PERSON

    @property
    def not_open_reason(self) -> str:
        return "This campaign is not open yet." if self.status == self.Status.REVIEW else "This campaign is closed."

    def shown_history_length(self, prompt_length: int) -> int:
        """History rows shown beside an explanation whose prompt showed ``prompt_length``."""
        return max(prompt_length, 5) if self.history_length is None else self.history_length

    def completion_redirect_url(self) -> str:
        return self.completion_url.replace("{code}", self.completion_code) if self.completion_url else ""

    def close(self) -> None:
        self.status, self.closed_at = self.Status.CLOSED, timezone.now()
        self.save(update_fields=["status", "closed_at"])


class Criterion(models.Model):
    """One question of a campaign's rubric, with its scale and labelled anchors.

    Pairwise campaigns ask the same question of two explanations and record A, B or tie.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.SlugField(max_length=50)
    question = models.TextField()
    scale_min = models.SmallIntegerField(default=1)
    scale_max = models.SmallIntegerField(default=10)
    anchors = models.JSONField(default=dict, blank=True, help_text='Labels of scale points: {"1": "…", "10": "…"}.')

    class Meta:
        ordering = ["campaign", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "name"], name="criterion_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def points(self) -> list[tuple[int, str]]:
        return [(value, str(self.anchors.get(str(value), ""))) for value in range(self.scale_min, self.scale_max + 1)]

    def as_rubric(self) -> dict[str, Any]:
        """This question as a judge's rubric entry: the judge asks it in the same words."""
        return {
            "name": self.name,
            "question": self.question,
            "anchors": self.anchors,
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
        }


class CampaignItem(models.Model):
    """One thing to rate: an explanation (Likert), two explanations of one recommendation
    (pairwise), or a quality-control item.

    ``n_live`` counts the assignments that hold or used one of the item's ``overlap`` slots
    (active leases and submissions); it changes only under the item's row lock.
    """

    class Kind(models.TextChoices):
        REGULAR = "regular", "Regular"
        GOLD = "gold", "Gold (accepted answers known)"
        ATTENTION = "attention", "Attention check (another user's history)"
        TRAINING = "training", "Training (answer shown afterwards)"

    QUALITY_CONTROL = (Kind.GOLD, Kind.ATTENTION)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REGULAR)
    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="+")
    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="+")
    explanation_b = models.ForeignKey(
        Explanation, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Pairwise only."
    )
    shown_user = models.ForeignKey(
        DatasetUser,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Attention checks: the other user whose history is shown.",
    )
    accepted = models.JSONField(
        default=dict, blank=True, help_text='Gold and training: {"criterion": [low, high]} or {"criterion": "a"}.'
    )
    feedback = models.TextField(blank=True, help_text="Training: shown after the answer.")
    participant = models.ForeignKey(
        "Participant",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="own_items",
        help_text="First person: the participant whose own recommendation this is; only they are given it.",
    )
    shuffle_key = models.PositiveIntegerField(default=0, help_text="Seeded random position in the pool.")
    n_live = models.PositiveIntegerField(default=0)
    priority = models.PositiveSmallIntegerField(
        default=0, help_text="Routed campaigns: higher goes first (annotation.services.routing)."
    )

    class Meta:
        ordering = ["campaign", "shuffle_key", "id"]
        indexes = [
            models.Index(fields=["campaign", "kind", "shuffle_key"], name="campaignitem_pool"),
            models.Index(fields=["campaign", "kind", "priority", "shuffle_key"], name="campaignitem_routed_pool"),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.kind})"


class ItemClaim(models.Model):
    """One claim of a claims-mode item's explanation: its text and its [start, end) span in the
    explanation (``explanations.claims``). Written when the item is, with the default split;
    the researcher may move the cuts while the campaign is in review
    (``annotation.services.claims.item_claims_set``)."""

    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="claims")
    position = models.PositiveSmallIntegerField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["item", "position"]
        constraints = [models.UniqueConstraint(fields=["item", "position"], name="itemclaim_unique_position")]

    def __str__(self) -> str:
        return f"claim {self.position + 1} of item {self.item_id}"

    @property
    def field_name(self) -> str:
        """The name of this claim's answer in a form and in ``rating_submit``'s answers."""
        return f"claim_{self.pk}"


class PrivacyFlag(models.Model):
    """Something annotators of a campaign would see that looks like personal data
    (``annotation.privacy``), found before the campaign opened, with the researcher's decision.

    One flag per distinct (where, kind, match); ``items`` are the campaign items that would show
    it (none for the instructions or consent text). Excluding a flag removes its items from
    the campaign; ``n_items`` keeps how many there were.
    """

    class Decision(models.TextChoices):
        PENDING = "pending", "To decide"
        EXCLUDED = "excluded", "Items excluded"
        ACCEPTED = "accepted", "Accepted"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="privacy_flags")
    source = models.CharField(max_length=20, help_text="explanation, item title, item details, history title, ...")
    kind = models.CharField(max_length=20, help_text="email, url, phone, street_address, id_number, profile_echo")
    match = models.CharField(max_length=200)
    context = models.CharField(max_length=300, blank=True)
    items = models.ManyToManyField(CampaignItem, blank=True, related_name="privacy_flags")
    n_items = models.PositiveIntegerField(default=0)
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "source", "kind", "id"]

    def __str__(self) -> str:
        return f"{self.kind} in {self.source} ({self.decision})"

    @property
    def kind_text(self) -> str:
        """What the finding looks like, in words ("an e-mail address")."""
        return KINDS.get(self.kind, self.kind)


class Participant(models.Model):
    """One annotator in one campaign: a site account, or a pseudonymous crowd worker.

    A crowd worker's platform id is stored only as a keyed hash (``crowd_hash``), so the
    database alone cannot tell who they are.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="participations")
    pseudonym = models.CharField(max_length=20)
    platform = models.CharField(max_length=20, blank=True, help_text="prolific, mturk, or empty for site accounts.")
    crowd_hash = models.CharField(max_length=64, blank=True)
    crowd_session = models.JSONField(default=dict, blank=True, help_text="Study and session ids from the link.")
    consented_at = models.DateTimeField(null=True, blank=True)
    training_done_at = models.DateTimeField(null=True, blank=True)
    checks_done_at = models.DateTimeField(
        null=True, blank=True, help_text="When every gold and attention item had been given to them (until a new one)."
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    n_done = models.PositiveIntegerField(default=0, help_text="Pool items answered (quality checks not counted).")
    checks_passed = models.PositiveIntegerField(default=0)
    checks_failed = models.PositiveIntegerField(default=0)
    flagged = models.BooleanField(default=False)
    dataset_user = models.OneToOneField(
        DatasetUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="participant",
        help_text="First person: the separate, elicited dataset user that holds this participant's ratings.",
    )
    recommender_run = models.ForeignKey(
        RecommenderRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="First person: the participant's recommendations, folded into the campaign's run.",
    )
    elicited_at = models.DateTimeField(null=True, blank=True, help_text="First person: ratings given, recommended.")
    generation_retries = models.PositiveSmallIntegerField(
        default=0, help_text="First person: how often they asked for their failed explanations again."
    )
    excluded = models.BooleanField(default=False, help_text="Left out of agreement and of exports by default.")
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user"], name="participant_unique_user"),
            models.UniqueConstraint(
                fields=["campaign", "crowd_hash"], condition=~models.Q(crowd_hash=""), name="participant_unique_crowd"
            ),
            models.UniqueConstraint(fields=["campaign", "pseudonym"], name="participant_unique_pseudonym"),
        ]

    def __str__(self) -> str:
        return self.pseudonym


class Assignment(models.Model):
    """One item given to one participant: served, then submitted (or its lease expires).

    ``position`` is the order in which the participant was given items; ``swapped`` says
    whether a pairwise item showed explanation B on the left.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        EXPIRED = "expired", "Expired"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    position = models.PositiveIntegerField()
    swapped = models.BooleanField(default=False)
    served_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    seconds_on_task = models.FloatField(null=True, blank=True, help_text="Server-side: served → first submit.")
    visible_seconds = models.FloatField(null=True, blank=True, help_text="Client-side: time the tab was visible.")
    check_answer = models.CharField(max_length=3, blank=True, help_text="Attention checks: yes or no.")
    check_passed = models.BooleanField(null=True, blank=True, help_text="Gold, attention and training items.")
    revisions = models.PositiveIntegerField(default=0)

    objects: ClassVar[AssignmentQuerySet] = AssignmentQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "item"], name="assignment_unique_item"),
            models.UniqueConstraint(fields=["participant", "position"], name="assignment_unique_position"),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "expires_at"], name="assignment_leases"),
            models.Index(fields=["item", "status"], name="assignment_item_status"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"

    @property
    def is_submitted(self) -> bool:
        return self.status == self.Status.SUBMITTED

    def shown_explanations(self) -> list[Explanation]:
        """The explanations in the order the page shows them (left, right for pairwise)."""
        pair = [self.item.explanation]
        if self.item.explanation_b is not None:
            pair.append(self.item.explanation_b)
        return pair[::-1] if self.swapped else pair


class Rating(models.Model):
    """One participant's answer to one criterion for one assignment, as last revised.

    Likert answers are ``value``; pairwise answers are ``choice`` in the canonical order
    (``a`` is the item's ``explanation``, whatever side it was shown on).
    """

    class Choice(models.TextChoices):
        A = "a", "A"
        B = "b", "B"
        TIE = "tie", "Tie"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ratings")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="ratings")
    value = models.SmallIntegerField(null=True, blank=True)
    choice = models.CharField(max_length=3, choices=Choice.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment", "criterion"]
        constraints = [models.UniqueConstraint(fields=["assignment", "criterion"], name="rating_unique_criterion")]

    def __str__(self) -> str:
        return f"{self.criterion_id}={self.value if self.choice == '' else self.choice}"

    @property
    def answer(self) -> Any:
        return self.choice or self.value


class RatingRevision(models.Model):
    """A rating's earlier answer, kept when its annotator revises it."""

    rating = models.ForeignKey(Rating, on_delete=models.CASCADE, related_name="revisions")
    value = models.SmallIntegerField(null=True, blank=True)
    choice = models.CharField(max_length=3, blank=True)
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rating", "id"]

    def __str__(self) -> str:
        return f"revision of rating {self.rating_id}"


class ClaimLabel(models.Model):
    """One participant's label for one claim of one assignment, as last revised, with the
    spans of the claim's text (``[[start, end], ...]`` within ``claim.text``) they marked as
    what makes it unsupported or contradicted. ``previous`` keeps replaced answers."""

    class Label(models.TextChoices):
        SUPPORTED = "supported", "Supported by the history or the item's details"
        UNSUPPORTED = "unsupported", "Not supported"
        CONTRADICTED = "contradicted", "Contradicted"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="claim_labels")
    claim = models.ForeignKey(ItemClaim, on_delete=models.CASCADE, related_name="labels")
    label = models.CharField(max_length=12, choices=Label.choices)
    spans = models.JSONField(default=list, blank=True)
    previous = models.JSONField(default=list, blank=True, help_text="Replaced answers: [{label, spans, replaced_at}].")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment", "claim"]
        constraints = [models.UniqueConstraint(fields=["assignment", "claim"], name="claimlabel_unique_claim")]

    def __str__(self) -> str:
        return f"{self.claim_id}={self.label}"


class Submission(models.Model):
    """One accepted form submission, keyed by the id the form carried.

    A double click, a retry after a network error or a re-POST carries the same id and
    finds this row, so it changes nothing.
    """

    submission_id = models.UUIDField(unique=True)
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="submissions")
    answers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return str(self.submission_id)
