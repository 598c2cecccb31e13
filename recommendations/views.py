"""Dataset and recommender-run pages for researchers; the import page for admins."""

from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from recommendations.algorithms import ALL_ALGORITHMS, HyperparameterError
from recommendations.algorithms import defaults as algorithm_defaults
from recommendations.forms import ExternalRunForm, ImportForm, RecommenderRunForm
from recommendations.importers import ImportFailed
from recommendations.models import Dataset, DatasetUser, ImportJob, Interaction, Item, Recommendation, RecommenderRun
from recommendations.services import import_job_start
from recommendations.services.external import external_run_import
from recommendations.services.training import TrainingError, recommender_run_retry, recommender_run_start
from recommendations.shared.htmx import HtmxHttpRequest, polled_partial

PAGE_SIZE = 25


@require_GET
@login_required
@permission_required("recommendations.view_dataset", raise_exception=True)
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = Dataset.objects.visible_to(request.user)
    return render(request, "recommendations/dataset_list.html", {"datasets": datasets})


@require_GET
@login_required
@permission_required("recommendations.view_dataset", raise_exception=True)
def dataset_detail(request: HtmxHttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=dataset_id)
    query = request.GET.get("q", "")
    items = Paginator(Item.objects.of_dataset(dataset).search(query).order_by("id"), PAGE_SIZE)
    context = {"dataset": dataset, "query": query, "items_page": items.get_page(request.GET.get("page"))}
    if request.htmx:
        return render(request, "recommendations/dataset_detail.html#items", context)
    interactions = Interaction.objects.of_dataset(dataset)
    histogram = interactions.rating_histogram()
    peak = max((n for _, n in histogram), default=0)
    context |= {
        "histogram": [(rating, n, 100 * n // peak if peak else 0) for rating, n in histogram],
        "top_items": Item.objects.of_dataset(dataset).most_interacted()[:10],
        "sample_users": DatasetUser.objects.filter(dataset=dataset, elicited=False).order_by("id")[:10],
        "import_job": dataset.import_jobs.first(),
        "runs": RecommenderRun.objects.visible_to(request.user).listed().filter(dataset=dataset)[:20],
    }
    return render(request, "recommendations/dataset_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("recommendations.add_importjob", raise_exception=True)
def dataset_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = import_job_start(
                created_by=request.user,
                format=form.cleaned_data["format"],
                name=form.cleaned_data["name"],
                domain=form.cleaned_data["domain"],
                replace=form.cleaned_data["replace"],
                options=form.importer_options(),
                uploads=form.uploads(),
            )
        except ImportFailed as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("recommendations:import_job", job_id=job.pk)
    jobs = ImportJob.objects.select_related("dataset")[:10]
    return render(request, "recommendations/import.html", {"form": form, "jobs": jobs})


@require_GET
@login_required
@permission_required("recommendations.view_importjob", raise_exception=True)
def import_job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("dataset"), pk=job_id)
    if request.htmx:
        return polled_partial(
            request, "recommendations/import_job.html#progress", {"job": job}, finished=job.is_terminal
        )
    return render(request, "recommendations/import_job.html", {"job": job})


@require_GET
@login_required
@permission_required("recommendations.view_recommenderrun", raise_exception=True)
def run_list(request: HttpRequest) -> HttpResponse:
    runs = RecommenderRun.objects.visible_to(request.user).listed().with_related()
    return render(request, "recommendations/run_list.html", {"runs": runs})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("recommendations.train_recommender", raise_exception=True)
def run_create(request: HttpRequest) -> HttpResponse:
    form = RecommenderRunForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = recommender_run_start(
                created_by=request.user,
                dataset=data["dataset"],
                algorithm=data["algorithm"],
                hyperparameters=data["hyperparameters"],
                split_options=form.split_options(),
                seed=data["seed"],
                k=data["k"],
                relevance_threshold=data["relevance_threshold"],
                positive_threshold=data["positive_threshold"],
            )
        except (HyperparameterError, TrainingError) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("recommendations:run_detail", run_id=run.pk)
    defaults = {name: algorithm_defaults(name) for name in ALL_ALGORITHMS}
    return render(request, "recommendations/run_form.html", {"form": form, "defaults": defaults})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("recommendations.train_recommender", raise_exception=True)
def run_import(request: HttpRequest) -> HttpResponse:
    """Lists computed elsewhere, read in the request (they are capped at 64 MiB), checked whole:
    a bad line is shown on the form and nothing is written."""
    form = ExternalRunForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = external_run_import(
                dataset=data["dataset"],
                name=data["name"],
                data=data["lists"].read(),
                file_name=data["lists"].name,
                label=data["model"],
                split_options=form.split_options(),
                relevance_threshold=data["relevance_threshold"],
                created_by=request.user,
            )
        except ImportFailed as exc:
            form.add_error(None, f"nothing was imported: {exc}")
        else:
            return redirect("recommendations:run_detail", run_id=run.pk)
    return render(request, "recommendations/run_import.html", {"form": form})


@require_GET
@login_required
@permission_required("recommendations.view_recommenderrun", raise_exception=True)
def run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(RecommenderRun.objects.visible_to(request.user).with_related(), pk=run_id)
    if request.htmx and request.htmx.target == "status":
        # Reloaded once it ends, so the metrics appear.
        return polled_partial(
            request, "recommendations/run_detail.html#status", {"run": run}, finished=run.is_terminal, reload=True
        )
    context: dict[str, Any] = {"run": run, "user_query": request.GET.get("user", "").strip()}
    if context["user_query"]:
        context |= _user_panel(run, context["user_query"])
    if request.htmx and request.htmx.target == "user-panel":
        return render(request, "recommendations/run_detail.html#user-panel", context)
    catalogue = run.metrics.get("catalogue", {})
    if catalogue.get("top_item") is not None:
        context["top_item"] = Item.objects.filter(pk=catalogue["top_item"]).first()
    histogram = run.metrics.get("histogram", [])
    peak = max((row["items"] for row in histogram), default=0)
    context["histogram"] = [row | {"width": 100 * row["items"] // peak if peak else 0} for row in histogram]
    return render(request, "recommendations/run_detail.html", context)


def _user_panel(run: RecommenderRun, external_id: str) -> dict[str, Any]:
    user = DatasetUser.objects.filter(dataset_id=run.dataset_id, external_id=external_id).first()
    if user is None or run.split is None:
        return {"panel_user": None}
    interactions = Interaction.objects.history_of(user)
    return {
        "panel_user": user,
        "history": interactions.in_train_of(run.split),
        "test_items": interactions.in_test_of(run.split),
        "recommendations": Recommendation.objects.for_run(run).for_user(user),
    }


@require_POST
@login_required
@permission_required("recommendations.train_recommender", raise_exception=True)
def run_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(RecommenderRun.objects.visible_to(request.user), pk=run_id)
    recommender_run_retry(run=run)
    return redirect("recommendations:run_detail", run_id=run.pk)
