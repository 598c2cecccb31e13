"""The study a report covers, as the study page and the report API read it from the query string."""

from typing import Any

from django import forms

from explanations.models import GenerationRun
from recommendations.models import RecommenderRun
from recommendations.shared.formfields import DbIntegerField, DbModelMultipleChoiceField


class StudyForm(forms.Form):
    """Which recommender run and generation runs a report covers (GET parameters)."""

    recommender_run = forms.ModelChoiceField(
        queryset=RecommenderRun.objects.listed()
        .filter(status=RecommenderRun.Status.SUCCEEDED)
        .select_related("dataset")
    )
    runs = DbModelMultipleChoiceField(
        queryset=GenerationRun.objects.listed()
        .filter(status=GenerationRun.Status.SUCCEEDED)
        .select_related("generator"),
        label="Generation runs",
    )
    seed = DbIntegerField(initial=0, min_value=0, required=False)
    exclude_flagged = forms.BooleanField(required=False, label="Leave out flagged annotators")
    reference_run = forms.ModelChoiceField(
        queryset=GenerationRun.objects.listed()
        .filter(status=GenerationRun.Status.SUCCEEDED)
        .select_related("generator"),
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


MAX_STUDIES = 12


class CrossStudyForm(forms.Form):
    """Several studies for the cross-study tables: ``R:G,G;R:G,G`` (recommender run id, then its
    generation run ids), as a GET parameter so that a page and its exports are one link."""

    studies = forms.CharField(
        max_length=2000,
        help_text="recommender run id, a colon, its generation run ids separated by commas; studies "
        "separated by semicolons, e.g. 3:10,11;7:14,15",
    )
    seed = DbIntegerField(initial=0, min_value=0, required=False)

    def clean_studies(self) -> list[tuple[RecommenderRun, list[GenerationRun]]]:
        text = self.cleaned_data["studies"]
        chosen = []
        for part in [p.strip() for p in text.split(";") if p.strip()]:
            head, colon, tail = part.partition(":")
            try:
                run_id, run_ids = int(head), [int(i) for i in tail.split(",") if i.strip()]
            except ValueError:
                raise forms.ValidationError(f"{part!r} is not RUN:GENERATION,GENERATION") from None
            if not colon or not run_ids:
                raise forms.ValidationError(f"{part!r} names no generation runs")
            recommender_run = (
                RecommenderRun.objects.filter(pk=run_id, status=RecommenderRun.Status.SUCCEEDED)
                .select_related("dataset")
                .first()
            )
            if recommender_run is None:
                raise forms.ValidationError(f"no finished recommender run #{run_id}")
            runs = list(
                GenerationRun.objects.filter(
                    pk__in=run_ids, recommender_run=recommender_run, status=GenerationRun.Status.SUCCEEDED
                ).select_related("generator")
            )
            if len(runs) != len(set(run_ids)):
                raise forms.ValidationError(f"not all of {tail} are finished generation runs of #{run_id}")
            chosen.append((recommender_run, runs))
        if not chosen or len(chosen) > MAX_STUDIES:
            raise forms.ValidationError(f"name 1 to {MAX_STUDIES} studies")
        return chosen
