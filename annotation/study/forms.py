"""The study a report covers, as the study page and the report API read it from the query string."""

from typing import Any

from django import forms

from explanations.models import GenerationRun
from recommendations.models import RecommenderRun
from recommendations.shared.formfields import DbIntegerField, DbModelMultipleChoiceField


class StudyForm(forms.Form):
    """Which recommender run and generation runs a report covers (GET parameters)."""

    recommender_run = forms.ModelChoiceField(
        queryset=RecommenderRun.objects.filter(status=RecommenderRun.Status.SUCCEEDED).select_related("dataset")
    )
    runs = DbModelMultipleChoiceField(
        queryset=GenerationRun.objects.filter(status=GenerationRun.Status.SUCCEEDED).select_related("generator"),
        label="Generation runs",
    )
    seed = DbIntegerField(initial=0, min_value=0, required=False)
    exclude_flagged = forms.BooleanField(required=False, label="Leave out flagged annotators")
    reference_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.filter(status=GenerationRun.Status.SUCCEEDED).select_related("generator"),
        required=False,
        label="Reference run for BLEU / ROUGE-L / embedding similarity",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        run, runs = cleaned.get("recommender_run"), cleaned.get("runs")
        if run is not None and runs is not None and any(g.recommender_run_id != run.pk for g in runs):
            self.add_error("runs", "Choose generation runs of the chosen recommender run.")
        reference = cleaned.get("reference_run")
        if run is not None and reference is not None and reference.recommender_run_id != run.pk:
            self.add_error("reference_run", "Choose a reference run of the chosen recommender run.")
        return cleaned

    def report_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``study_report_cached`` for a valid form."""
        data = self.cleaned_data
        return {
            "recommender_run": data["recommender_run"],
            "generation_runs": list(data["runs"]),
            "seed": data["seed"] or 0,
            "include_flagged": not data["exclude_flagged"],
            "reference_run": data["reference_run"],
        }
