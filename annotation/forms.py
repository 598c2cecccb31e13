import json
import re
import uuid
from typing import Any

from django import forms

from annotation.models import (
    Assignment,
    Campaign,
    CampaignItem,
    ClaimLabel,
    Criterion,
    ItemClaim,
    Rating,
    validate_completion_url,
)
from explanations.claims import SplitError, marked_spans
from explanations.forms import AnswerModeField, JudgeTuningOptionsForm
from explanations.judging import default_rubric
from explanations.models import GenerationRun, Generator
from recommendations.shared.formfields import SMALL_INT_MAX, DbIntegerField, DbModelMultipleChoiceField

# Pairwise answers as the page shows them; the service stores them in canonical order.
SIDE_CHOICES = [("left", "Left is better"), ("tie", "Tie"), ("right", "Right is better")]
FIT_CHOICES = [("yes", "Yes, it fits this user"), ("no", "No, it does not fit")]
# A claim's answer, with the key that gives it on the page.
CLAIM_CHOICES = [("supported", "Supported"), ("unsupported", "Not supported"), ("contradicted", "Contradicted")]


class CampaignForm(forms.Form):
    """A new campaign's settings; ``campaign_create`` checks what needs the database (the
    runs sharing a recommender run, explanations to sample)."""

    name = forms.CharField(max_length=200)
    mode = forms.ChoiceField(choices=Campaign.Mode.choices, initial=Campaign.Mode.LIKERT)
    audience = forms.ChoiceField(
        choices=Campaign.Audience.choices,
        initial=Campaign.Audience.THIRD_PERSON,
        required=False,
        help_text="First person (Likert or pairwise): each participant rates items of the catalogue, the "
        "recommender folds them in, and they rate the explanations of their own recommendations. Sampling, "
        "overlap, items per annotator and attention checks do not apply.",
    )
    elicit_count = DbIntegerField(
        initial=15,
        min_value=3,
        max_value=100,
        required=False,
        label="Items each participant rates first (first person)",
    )
    first_person_k = DbIntegerField(
        initial=3,
        min_value=1,
        max_value=20,
        required=False,
        label="Recommendations explained to each participant (first person)",
    )
    generation_runs = DbModelMultipleChoiceField(
        queryset=GenerationRun.objects.listed()
        .filter(status=GenerationRun.Status.SUCCEEDED)
        .select_related("generator"),
        help_text="Runs over the same recommender run. Pairwise compares every pair of them.",
    )
    sample = forms.ChoiceField(choices=Campaign.Sample.choices, initial=Campaign.Sample.ALL)
    sample_size = DbIntegerField(initial=50, min_value=1, label="Recommendations (N)")
    seed = DbIntegerField(initial=0, min_value=0)
    overlap = DbIntegerField(initial=3, min_value=1, max_value=50, label="Annotators per item (k)")
    items_per_annotator = DbIntegerField(initial=20, min_value=1)
    lease_minutes = DbIntegerField(initial=30, min_value=1, max_value=24 * 60, label="Lease (minutes)")
    routing = forms.ChoiceField(
        choices=Campaign.Routing.choices,
        initial=Campaign.Routing.RANDOM,
        help_text="Routed: each annotator's next item is one of the generators whose order is not yet settled "
        "(pairwise, or Likert over two or more runs).",
    )
    close_when_settled = forms.BooleanField(
        required=False, help_text="Close the campaign by itself once the ranking of its generators is settled."
    )
    profile_fields = forms.CharField(
        max_length=500,
        required=False,
        label="Profile fields shown",
        help_text="Comma-separated, e.g. age, occupation. Empty (the default): annotators see no demographics; "
        "zip code, age and gender together can single a person out.",
    )
    history_length = DbIntegerField(
        required=False,
        min_value=0,
        max_value=50,
        label="History rows shown",
        help_text="Empty: as many as the prompt showed (at least 5).",
    )
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False, help_text="Markdown.")
    consent_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Markdown; leave empty to skip consent."
    )
    attention_checks = DbIntegerField(initial=2, min_value=0, max_value=100)
    check_every = DbIntegerField(initial=4, min_value=1, max_value=SMALL_INT_MAX, label="A check after every N items")
    max_check_failures = DbIntegerField(
        initial=1, min_value=0, max_value=SMALL_INT_MAX, label="Flag after more failures than"
    )
    completion_url = forms.CharField(
        max_length=500,
        required=False,
        initial=Campaign._meta.get_field("completion_url").default,
        validators=[validate_completion_url],
        help_text="Prolific-style: workers are redirected here at the end. MTurk HITs (an external "
        "question) need none: workers submit to MTurk from the last page.",
    )
    rubric = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "class": "mono"}),
        initial=json.dumps(default_rubric(), indent=1),
        help_text="JSON: a list of {name, question, scale_min, scale_max, anchors}. Claims campaigns ask about "
        "each claim instead and use no rubric.",
    )

    def clean_audience(self) -> str:
        return self.cleaned_data["audience"] or Campaign.Audience.THIRD_PERSON

    def clean_elicit_count(self) -> int:
        return self.cleaned_data["elicit_count"] or self.fields["elicit_count"].initial

    def clean_first_person_k(self) -> int:
        return self.cleaned_data["first_person_k"] or self.fields["first_person_k"].initial

    def clean_profile_fields(self) -> list[str]:
        return [field.strip() for field in self.cleaned_data["profile_fields"].split(",") if field.strip()]

    def clean_rubric(self) -> list[dict[str, Any]]:
        try:
            rubric = json.loads(self.cleaned_data["rubric"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(rubric, list) or not rubric:
            raise forms.ValidationError("Give a non-empty list of criteria.")
        names = set()
        for index, criterion in enumerate(rubric, start=1):
            if not isinstance(criterion, dict) or not {"name", "question"} <= criterion.keys():
                raise forms.ValidationError(f"Criterion {index} needs a name and a question.")
            name = str(criterion["name"])
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", name) or name == "fits_user" or name in names:
                raise forms.ValidationError(f"Criterion {index}: names are unique lowercase identifiers.")
            names.add(name)
            low, high = criterion.get("scale_min", 1), criterion.get("scale_max", 10)
            if not (isinstance(low, int) and isinstance(high, int) and 0 <= low < high <= 100):
                raise forms.ValidationError(f"Criterion {name}: the scale must be integers with min < max.")
            if not isinstance(criterion.get("anchors", {}), dict):
                raise forms.ValidationError(f"Criterion {name}: anchors map scale points to labels.")
        return rubric


class ReidentificationForm(forms.Form):
    """The share of singled-out items a researcher accepts, for the re-identification estimate."""

    threshold = forms.FloatField(
        required=False, min_value=0.001, max_value=1.0, label="Acceptable share of items that single a user out"
    )


class ReferenceItemForm(forms.Form):
    """A gold or training item: an explanation and, per criterion, the range of answers
    that passes."""

    kind = forms.ChoiceField(
        choices=[(CampaignItem.Kind.GOLD, "Gold item"), (CampaignItem.Kind.TRAINING, "Training item")]
    )
    explanation_id = DbIntegerField(min_value=1, label="Explanation id")
    accepted = forms.CharField(
        label="Accepted answers",
        help_text="Likert and pairwise: a range per criterion, e.g. reasonability=1-3, faithfulness=1-4. Claims: a "
        "label per claim number, e.g. 1=supported, 2=contradicted (unsupported is the third label).",
        max_length=500,
    )
    feedback = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Training only.")

    def clean_accepted(self) -> dict[str, list[int] | str]:
        """``criterion=low-high, ...`` as {criterion: [low, high]}, or ``claim=label, ...`` as
        {claim number: label}; the service checks them against the rubric or the claims."""
        accepted: dict[str, list[int] | str] = {}
        for part in filter(None, (p.strip() for p in self.cleaned_data["accepted"].split(","))):
            match = re.fullmatch(r"([a-z0-9][a-z0-9_]*)\s*=\s*(?:(\d+)\s*-\s*(\d+)|([a-z]+))", part)
            if match is None:
                raise forms.ValidationError(f"{part!r}: write criterion=low-high, or claim number=label.")
            accepted[match[1]] = match[4] if match[4] else [int(match[2]), int(match[3])]
        return accepted


class AnswerForm(forms.Form):
    """The answers to one assignment, built from its campaign's rubric.

    ``submission_id`` is minted when the form is first rendered and travels with every
    retry, which is what lets the service store a double submit once. A claims item has one
    label per claim (``claim_<id>``) and, beside each, the spans of the claim the annotator
    marked as what makes it unsupported (``spans_<id>``, JSON).
    """

    submission_id = forms.UUIDField(widget=forms.HiddenInput)
    visible_ms = DbIntegerField(widget=forms.HiddenInput, required=False, min_value=0)

    def __init__(
        self,
        *args: Any,
        assignment: Assignment,
        criteria: list[Criterion],
        claims: list[ItemClaim] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.assignment = assignment
        self.criteria = criteria
        self.claims = claims or []
        if not self.is_bound:
            self.initial.setdefault("submission_id", uuid.uuid4())
        item = assignment.item
        if item.kind == CampaignItem.Kind.ATTENTION:
            self.fields["fits_user"] = forms.ChoiceField(
                choices=FIT_CHOICES, widget=forms.RadioSelect, label="Does this explanation fit this user?"
            )
            return
        for claim in self.claims:
            self.fields[claim.field_name] = forms.ChoiceField(
                choices=CLAIM_CHOICES, widget=forms.RadioSelect, label=claim.text
            )
            self.fields[f"spans_{claim.pk}"] = forms.CharField(
                required=False, max_length=2000, widget=forms.HiddenInput(attrs={"data-spans": claim.pk})
            )
        for criterion in criteria:
            if item.explanation_b_id is not None:
                choices = SIDE_CHOICES
            else:
                choices = [
                    (str(value), f"{value}{f': {anchor}' if anchor else ''}") for value, anchor in criterion.points
                ]
            self.fields[criterion.name] = forms.ChoiceField(
                choices=choices, widget=forms.RadioSelect, label=criterion.question
            )

    def clean(self) -> dict[str, Any]:
        """Each claim's marked spans, parsed; a span on a claim answered "supported" is dropped."""
        data = super().clean() or {}
        self._spans: dict[str, list[list[int]]] = {}
        for claim in self.claims:
            raw = data.get(f"spans_{claim.pk}") or "[]"
            try:
                spans = marked_spans(json.loads(raw), len(claim.text))
            except (json.JSONDecodeError, SplitError) as exc:
                self.add_error(None, f"Claim {claim.position + 1}: {exc}")
                continue
            if spans and data.get(claim.field_name) not in (None, "supported"):
                self._spans[claim.field_name] = spans
        return data

    def spans(self) -> dict[str, list[list[int]]]:
        """Claim form name → the spans marked in it, for the claims not answered "supported"."""
        return self._spans

    def set_previous_labels(self, labels: list[ClaimLabel]) -> None:
        """Pre-fill a claims revision with the stored labels and marked spans."""
        by_claim = {claim.pk: claim for claim in self.claims}
        for label in labels:
            if label.claim_id in by_claim:
                self.initial[by_claim[label.claim_id].field_name] = label.label
                self.initial[f"spans_{label.claim_id}"] = json.dumps(label.spans)

    def set_previous(self, ratings: list[Rating], criteria: list[Criterion]) -> None:
        """Pre-fill a revision with the stored answers, shown as the page shows them."""
        names = {criterion.pk: criterion.name for criterion in criteria}
        for rating in ratings:
            name = names[rating.criterion_id]
            self.initial[name] = self._shown(rating.choice) if rating.choice else str(rating.value)
        if self.assignment.check_answer:
            self.initial["fits_user"] = self.assignment.check_answer

    def _shown(self, canonical: str) -> str:
        if canonical == "tie":
            return "tie"
        left = "b" if self.assignment.swapped else "a"
        return "left" if canonical == left else "right"

    def answers(self) -> dict[str, Any]:
        """Cleaned answers for ``rating_submit``: ints, canonical sides, or yes/no."""
        data = self.cleaned_data
        if "fits_user" in self.fields:
            return {"fits_user": data["fits_user"]}
        if self.claims:
            return {claim.field_name: data[claim.field_name] for claim in self.claims}
        answers: dict[str, Any] = {}
        for criterion in self.criteria:
            value = data[criterion.name]
            if value in ("left", "right"):
                left, right = ("b", "a") if self.assignment.swapped else ("a", "b")
                answers[criterion.name] = left if value == "left" else right
            elif value == "tie":
                answers[criterion.name] = "tie"
            else:
                answers[criterion.name] = int(value)
        return answers

    def visible_seconds(self) -> float | None:
        visible_ms = self.cleaned_data.get("visible_ms")
        return None if visible_ms is None else visible_ms / 1000


class CampaignTuningForm(JudgeTuningOptionsForm):
    """LoRA tuning on a campaign's answers: the training's settings, which of the campaign's
    criteria count (all by default) and whether flagged annotators do."""

    criteria = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    include_flagged = forms.BooleanField(required=False, label="Count flagged annotators")

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.campaign_criteria = list(campaign.criteria.all())
        names = [criterion.name for criterion in self.campaign_criteria]
        criteria = self.fields["criteria"]
        assert isinstance(criteria, forms.MultipleChoiceField)
        criteria.choices, criteria.initial = [(name, name) for name in names], names


class TeacherTuningForm(CampaignTuningForm):
    """Tune a generator with LoRA on a Likert campaign's best-rated explanations."""

    threshold = forms.FloatField(help_text="Explanations whose mean score is at least this become teacher examples.")
    field_order = ["base_generator", "criteria", "threshold"]

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, campaign=campaign, **kwargs)
        self.fields["base_generator"].label = "Base model"
        self.fields["criteria"].help_text = "An explanation's score is its mean over these answers."
        if self.campaign_criteria:
            # The top fifth of the first criterion's scale, e.g. 8 on 1-10.
            first = self.campaign_criteria[0]
            self.fields["threshold"].initial = first.scale_max - (first.scale_max - first.scale_min) // 5


class CampaignClaimCheckForm(forms.Form):
    """Check a claims campaign's claims automatically, as annotators see them."""

    checker = forms.ModelChoiceField(
        queryset=Generator.objects.all(), help_text="Any generator: local, tuned or served."
    )
    answer_mode = AnswerModeField(help_text="Likelihood scores yes and no (P(supported)); text parses free answers.")


class ClaimsTeacherTuningForm(JudgeTuningOptionsForm):
    """Tune a generator with LoRA on a claims campaign's best-supported explanations."""

    threshold = forms.FloatField(
        initial=1.0,
        min_value=0.0,
        max_value=1.0,
        help_text="Explanations whose share of claim labels saying supported is at least this become teacher "
        "examples (1: every annotator found every claim supported).",
    )
    include_flagged = forms.BooleanField(required=False, label="Count flagged annotators")
    field_order = ["base_generator", "threshold"]

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_generator"].label = "Base model"


class JudgeTuningForm(CampaignTuningForm):
    """Tune a pairwise judge with LoRA on a pairwise campaign's human preferences."""

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, campaign=campaign, **kwargs)
        self.fields["criteria"].help_text = "The answers that vote for a pair's winner."
