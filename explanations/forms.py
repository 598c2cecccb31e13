import json
from typing import Any

from django import forms

from explanations.judging import default_rubric
from explanations.models import AdapterTraining, AnswerMode, GenerationRun, Generator, JudgeRun, PromptTemplate
from explanations.prompts import Controls
from recommendations.models import Item, RecommenderRun
from recommendations.shared.formfields import SMALL_INT_MAX, DbIntegerField, DbModelMultipleChoiceField


class AnswerModeField(forms.ChoiceField):
    """A judge's or probe's answer mode; left out (an older client), the default rather than an error."""

    def __init__(self, *, help_text: str) -> None:
        super().__init__(choices=AnswerMode.choices, initial=AnswerMode.LIKELIHOOD, required=False, help_text=help_text)

    def clean(self, value: Any) -> str:
        return str(super().clean(value) or AnswerMode.LIKELIHOOD)


class GenerationRunForm(forms.Form):
    recommender_run = forms.ModelChoiceField(
        queryset=RecommenderRun.objects.listed()
        .filter(status=RecommenderRun.Status.SUCCEEDED)
        .select_related("dataset"),
        label="Recommender run",
    )
    generator = forms.ModelChoiceField(queryset=Generator.objects.all())
    template = forms.ModelChoiceField(queryset=PromptTemplate.objects.all(), label="Prompt template")
    depth = DbIntegerField(initial=1, min_value=1, max_value=1000, help_text="Explain the top N of each list.")
    sample = forms.ChoiceField(choices=GenerationRun.Sample.choices, initial=GenerationRun.Sample.RANDOM)
    sample_size = DbIntegerField(initial=50, min_value=1, label="Users")
    seed = DbIntegerField(initial=0, min_value=0)
    history_length = DbIntegerField(initial=10, min_value=0, max_value=200)
    max_words = DbIntegerField(initial=75, min_value=1, max_value=500)
    aspects = forms.CharField(
        required=False, help_text="Item attributes to focus on, comma-separated, e.g. genres, year."
    )
    tone = forms.ChoiceField(choices=GenerationRun.Tone.choices, initial=GenerationRun.Tone.NEUTRAL)
    second_person = forms.BooleanField(required=False, initial=True, label="Address the user as “you”")
    include_profile = forms.BooleanField(required=False, initial=True, label="Include the user's profile")
    chunk_size = DbIntegerField(initial=8, min_value=1, max_value=256, help_text="Explanations per batched call.")
    preview_user = forms.CharField(required=False, label="Preview for user", help_text="A dataset user id.")
    preview_rank = DbIntegerField(required=False, initial=1, min_value=1, label="Preview rank")

    def clean_aspects(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.strip() for a in self.cleaned_data.get("aspects", "").split(",") if a.strip()))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        run, aspects = cleaned.get("recommender_run"), cleaned.get("aspects") or ()
        if run is not None and aspects:
            sample = Item.objects.filter(dataset_id=run.dataset_id).values_list("attributes", flat=True)[:500]
            keys = {key for attributes in sample for key in attributes}
            unknown = [a for a in aspects if a not in keys]
            if unknown:
                self.add_error(
                    "aspects",
                    f"not attributes of this dataset's items: {', '.join(unknown)} (known: {', '.join(sorted(keys))})",
                )
        return cleaned

    def controls(self) -> Controls:
        data = self.cleaned_data
        return Controls(
            history_length=data["history_length"],
            max_words=data["max_words"],
            aspects=data["aspects"],
            tone=data["tone"],
            second_person=data["second_person"],
            include_profile=data["include_profile"],
        )


def positive(value: float) -> None:
    """A form validator: learning rates and the like must be above zero."""
    if value <= 0:
        raise forms.ValidationError("Must be greater than 0.")


class AdapterTrainingForm(forms.Form):
    base_generator = forms.ModelChoiceField(
        queryset=Generator.objects.filter(backend=Generator.Backend.HF, adapter_path=""), label="Base generator"
    )
    source_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.listed().filter(status=GenerationRun.Status.SUCCEEDED),
        required=False,
        label="Teacher: a generation run",
    )
    upload = forms.FileField(
        required=False,
        label="…or teacher examples (JSONL)",
        help_text='One object a line: {"messages": [{"role": "user", "content": "..."}], "response": "..."}',
    )
    filter_max_words = DbIntegerField(
        initial=75, min_value=1, max_value=SMALL_INT_MAX, label="Drop answers longer than (words)"
    )
    filter_refusals = forms.BooleanField(required=False, initial=True, label="Drop refusals")
    r = DbIntegerField(initial=8, min_value=1, max_value=256, label="LoRA r")
    alpha = DbIntegerField(initial=16, min_value=1, max_value=SMALL_INT_MAX, label="LoRA alpha")
    dropout = forms.FloatField(initial=0.05, min_value=0, max_value=0.9)
    target_modules = forms.CharField(
        required=False, help_text="Comma-separated; empty = q, k, v, o, gate, up and down projections."
    )
    epochs = DbIntegerField(initial=1, min_value=1, max_value=100)
    learning_rate = forms.FloatField(initial=2e-4, validators=[positive])
    batch_size = DbIntegerField(initial=4, min_value=1, max_value=256)
    max_length = DbIntegerField(initial=512, min_value=16, max_value=8192)
    validation_fraction = forms.FloatField(initial=0.1, min_value=0, max_value=0.5)
    seed = DbIntegerField(initial=0, min_value=0)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if bool(cleaned.get("source_run")) == bool(cleaned.get("upload")):
            raise forms.ValidationError("Choose exactly one teacher: a generation run or a JSONL upload.")
        return cleaned

    def options(self) -> dict[str, Any]:
        names = [f.name for f in AdapterTraining._meta.fields]
        data = {
            key: value
            for key, value in self.cleaned_data.items()
            if key in names and key not in {"base_generator", "source_run"}
        }
        data["target_modules"] = [
            m.strip() for m in self.cleaned_data.get("target_modules", "").split(",") if m.strip()
        ]
        return data


class PromptTemplateForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    system_text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), label="System message")
    user_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 14}), label="User message")


class JudgeRunForm(forms.Form):
    judge = forms.ModelChoiceField(queryset=Generator.objects.all(), help_text="Any generator: local, tuned or served.")
    mode = forms.ChoiceField(choices=JudgeRun.Mode.choices, initial=JudgeRun.Mode.PAIRWISE)
    answer_mode = AnswerModeField(
        help_text="Likelihood scores every option after the answer prefix (every answer parses); text parses free answers."
    )
    generation_runs = DbModelMultipleChoiceField(
        queryset=GenerationRun.objects.listed()
        .filter(status=GenerationRun.Status.SUCCEEDED)
        .select_related("generator"),
        help_text="Runs over the same recommender run; pairwise compares every pair, in both orders.",
    )
    sample_size = DbIntegerField(initial=0, min_value=0, help_text="Recommendations to judge; 0 = all.")
    seed = DbIntegerField(initial=0, min_value=0)
    chunk_size = DbIntegerField(initial=8, min_value=1, max_value=256)
    max_new_tokens = DbIntegerField(initial=40, min_value=1, max_value=1000)
    rubric = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}),
        initial=json.dumps(default_rubric(), indent=1),
        help_text="JSON: the criteria as the annotators see them (name, question, scale_min, scale_max, anchors).",
    )

    def clean_rubric(self) -> list[dict[str, Any]]:
        try:
            rubric = json.loads(self.cleaned_data["rubric"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(rubric, list) or not all(isinstance(c, dict) for c in rubric):
            raise forms.ValidationError("Give a list of criteria.")
        return rubric


class ProbeForm(forms.Form):
    prober = forms.ModelChoiceField(
        queryset=Generator.objects.all(), help_text="Any generator: local, tuned or served."
    )
    generation_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.listed()
        .filter(status=GenerationRun.Status.SUCCEEDED)
        .select_related("generator"),
        help_text="Whose explanations are probed (with and without them in the prompt).",
    )
    target = forms.CharField(
        max_length=100,
        initial="gender",
        help_text="age (within 5 years), gender, occupation, profile (the three in one JSON answer, scored per field; text answers), popularity (quintile), popularity_fixed (the study's <50/100/150/200 interactions), item:<attribute>, e.g. item:genres, or number:<attribute>, e.g. number:price (text answers).",
    )
    tolerance = forms.FloatField(
        required=False, min_value=0, help_text="number:<attribute> only: answers this close to the truth are correct."
    )
    sample_size = DbIntegerField(initial=0, min_value=0, help_text="Explanations to probe; 0 = all.")
    seed = DbIntegerField(initial=0, min_value=0)
    chunk_size = DbIntegerField(initial=8, min_value=1, max_value=256)
    max_new_tokens = DbIntegerField(initial=16, min_value=1, max_value=200)
    answer_mode = AnswerModeField(
        help_text="Likelihood scores every option (age: bands of ±5 years); text parses free answers."
    )


class ClaimCheckForm(forms.Form):
    checker = forms.ModelChoiceField(
        queryset=Generator.objects.all(), help_text="Any generator: local, tuned or served."
    )
    generation_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.listed()
        .filter(status=GenerationRun.Status.SUCCEEDED)
        .select_related("generator"),
        help_text="Whose explanations are cut into claims and checked against the facts they were written from.",
    )
    sample_size = DbIntegerField(initial=0, min_value=0, help_text="Explanations to check; 0 = all.")
    seed = DbIntegerField(initial=0, min_value=0)
    chunk_size = DbIntegerField(initial=16, min_value=1, max_value=256)
    max_new_tokens = DbIntegerField(initial=8, min_value=1, max_value=200)
    answer_mode = AnswerModeField(help_text="Likelihood scores yes and no (P(supported)); text parses free answers.")


class JudgeTuningOptionsForm(forms.Form):
    """Tune a pairwise judge with LoRA on preferences: the base and the training's settings
    (a judge run's agreeing verdicts here; a campaign's votes in ``annotation.forms``)."""

    base_generator = forms.ModelChoiceField(
        queryset=Generator.objects.filter(backend=Generator.Backend.HF, adapter_path=""), label="Base judge model"
    )
    epochs = DbIntegerField(initial=1, min_value=1, max_value=100)
    learning_rate = forms.FloatField(initial=2e-4, validators=[positive])
    r = DbIntegerField(initial=8, min_value=1, max_value=256, label="LoRA r")
    seed = DbIntegerField(initial=0, min_value=0)

    def options(self) -> dict[str, Any]:
        return {key: self.cleaned_data[key] for key in ("epochs", "learning_rate", "r", "seed")}
