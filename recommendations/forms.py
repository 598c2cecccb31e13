import json
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings

from recommendations.algorithms import ALGORITHMS, IMPLICIT_ALGORITHMS, HyperparameterError
from recommendations.algorithms import validate as validate_hyperparameters
from recommendations.importers import FORMATS, ImportFailed, parse_mapping
from recommendations.importers.base import human_bytes
from recommendations.models import Dataset, Split
from recommendations.shared.formfields import BIG_INT_MAX, BIG_INT_MIN, DbIntegerField

DATA_SUFFIXES = {".zip", ".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json", ".inter"}
ATTRIBUTE_SUFFIXES = {".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json", ".item", ".user"}


def checked_upload(upload: Any, suffixes: set[str], limit: int) -> Any:
    """``upload`` if it is at most ``limit`` bytes with one of ``suffixes``; None stays None."""
    if upload is None:
        return None
    if upload.size > limit:
        raise forms.ValidationError(f"{upload.name} is {human_bytes(upload.size)}, over the {human_bytes(limit)} limit")
    if Path(upload.name).suffix.lower() not in suffixes:
        raise forms.ValidationError(f"{upload.name}: expected one of {', '.join(sorted(suffixes))}")
    return upload


class ImportForm(forms.Form):
    format = forms.ChoiceField(choices=[(key, label) for key, (label, _) in FORMATS.items()])
    name = forms.CharField(max_length=100, help_text="A name of your choosing, e.g. ml-100k.")
    domain = forms.ChoiceField(choices=Dataset.Domain.choices, initial=Dataset.Domain.OTHER, required=False)
    interactions = forms.FileField(
        required=False,
        label="Interactions file or zip",
        help_text="MovieLens: the GroupLens zip. RecBole: the .inter file or a zip. CSV/JSONL: the interactions.",
    )
    items = forms.FileField(required=False, label="Item attributes (optional)")
    users = forms.FileField(required=False, label="User attributes (optional)")
    mapping = forms.CharField(
        required=False,
        label="Column mapping",
        help_text="CSV/JSONL and RecBole: e.g. user=uid,item=iid,rating=stars,timestamp=ts",
    )
    delimiter = forms.CharField(required=False, max_length=1, help_text="CSV only; default comma.")
    encoding = forms.CharField(required=False, max_length=40, help_text="Default UTF-8 (MovieLens: Latin-1).")
    replace = forms.BooleanField(required=False, help_text="Swap an existing dataset of the same name atomically.")

    def _check_file(self, role: str, suffixes: set[str]) -> Any:
        return checked_upload(self.cleaned_data.get(role), suffixes, settings.XREC_IMPORT_MAX_BYTES)

    def clean_interactions(self) -> Any:
        return self._check_file("interactions", DATA_SUFFIXES)

    def clean_items(self) -> Any:
        return self._check_file("items", ATTRIBUTE_SUFFIXES)

    def clean_users(self) -> Any:
        return self._check_file("users", ATTRIBUTE_SUFFIXES)

    def clean_mapping(self) -> dict[str, str]:
        try:
            return parse_mapping(self.cleaned_data.get("mapping", ""))
        except ImportFailed as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (
            cleaned.get("format") != "movielens-100k"
            and not cleaned.get("interactions")
            and "interactions" not in self.errors
        ):
            self.add_error("interactions", "Upload the interactions file (only MovieLens-100K has a bundled copy).")
        return cleaned

    def clean_domain(self) -> str:
        return self.cleaned_data.get("domain") or Dataset.Domain.OTHER

    def importer_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.cleaned_data["mapping"]:
            options["map"] = self.cleaned_data["mapping"]
        for key in ("delimiter", "encoding"):
            if self.cleaned_data[key]:
                options[key] = self.cleaned_data[key]
        return options

    def uploads(self) -> dict[str, Any]:
        """Uploaded files by role, as ``import_job_start`` takes them."""
        roles = {"interactions": "data", "items": "items", "users": "users"}
        return {role: self.cleaned_data[field] for field, role in roles.items() if self.cleaned_data.get(field)}


class RecommenderRunForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    algorithm = forms.ChoiceField(
        choices=[
            ("Surprise: explicit ratings", [(name, name) for name in ALGORITHMS]),
            ("Implicit feedback", [(name, name) for name in IMPLICIT_ALGORITHMS]),
        ],
        initial="SVD",
    )
    hyperparameters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON, e.g. {"n_factors": 50, "n_epochs": 20}. Empty: the library\'s defaults.',
    )
    split_mode = forms.ChoiceField(choices=Split.Mode.choices, initial=Split.Mode.LEAVE_LAST_OUT, label="Split")
    min_interactions = DbIntegerField(
        initial=5, min_value=2, help_text="Leave-last-out: users with fewer interactions stay in train only."
    )
    test_ratio = forms.FloatField(
        initial=0.2, min_value=0.0, max_value=1.0, help_text="Global cut-off and random: share in test."
    )
    cutoff_timestamp = DbIntegerField(
        min_value=BIG_INT_MIN,
        max_value=BIG_INT_MAX,
        required=False,
        help_text="Global cut-off: a Unix time instead of the ratio (optional).",
    )
    seed = DbIntegerField(initial=0, min_value=0)
    k = DbIntegerField(initial=10, min_value=1, max_value=1000, label="K")
    relevance_threshold = forms.FloatField(
        initial=4.0, help_text="Test ratings at or above this are relevant (every test event on unrated data)."
    )
    positive_threshold = forms.FloatField(
        required=False,
        help_text="Implicit models on rated data: train only on ratings at or above this. Empty: every interaction.",
    )

    def clean_hyperparameters(self) -> dict[str, Any]:
        text = (self.cleaned_data.get("hyperparameters") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("give a JSON object of parameter names and values")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        algorithm, hyperparameters = cleaned.get("algorithm"), cleaned.get("hyperparameters")
        if algorithm and hyperparameters is not None:
            try:
                cleaned["hyperparameters"] = validate_hyperparameters(algorithm, hyperparameters)
            except HyperparameterError as exc:
                self.add_error("hyperparameters", str(exc))
        return cleaned

    def split_options(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "mode": data["split_mode"],
            "seed": data["seed"],
            "min_interactions": data["min_interactions"],
            "test_ratio": data["test_ratio"],
            "cutoff_timestamp": data["cutoff_timestamp"],
        }


LIST_SUFFIXES = {".csv", ".jsonl", ".ndjson", ".json", ".topk", ".tsv", ".txt"}
# Imported lists are read in the request: a cap well under the dataset import's.
LIST_MAX_BYTES = 64 * 1024**2


class ExternalRunForm(forms.Form):
    """Ranked lists computed elsewhere, imported as a recommender run."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    name = forms.CharField(max_length=200, help_text="A name for the run, e.g. lightgcn-top10.")
    model = forms.CharField(max_length=40, required=False, help_text="The model that made the lists: LightGCN, SASRec…")
    lists = forms.FileField(
        help_text="CSV or JSONL with user,item,rank or user,item,score; or RecBole's top-K "
        "(user_id:token, item_id_list:token_seq)."
    )
    split_mode = forms.ChoiceField(
        choices=[("", "No split: no top-K metrics"), *Split.Mode.choices],
        required=False,
        label="Score against split",
    )
    min_interactions = DbIntegerField(initial=5, min_value=2)
    test_ratio = forms.FloatField(initial=0.2, min_value=0.0, max_value=1.0)
    seed = DbIntegerField(initial=0, min_value=0)
    relevance_threshold = forms.FloatField(initial=4.0, help_text="Test ratings at or above this are relevant.")

    def clean_lists(self) -> Any:
        return checked_upload(self.cleaned_data["lists"], LIST_SUFFIXES, LIST_MAX_BYTES)

    def split_options(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        if not data.get("split_mode"):
            return None
        return {
            "mode": data["split_mode"],
            "seed": data["seed"],
            "min_interactions": data["min_interactions"],
            "test_ratio": data["test_ratio"],
            "cutoff_timestamp": None,
        }
