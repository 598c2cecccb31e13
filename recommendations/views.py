"""Dataset pages for researchers and the import page for admins."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from recommendations.forms import ImportForm
from recommendations.importers import ImportFailed
from recommendations.models import Dataset, DatasetUser, ImportJob, Interaction, Item
from recommendations.services import import_job_start

PAGE_SIZE = 25


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
@permission_required("recommendations.view_dataset", raise_exception=True)
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = Dataset.objects.visible_to(request.user)
    return render(request, "recommendations/dataset_list.html", {"datasets": datasets})


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
        "sample_users": DatasetUser.objects.filter(dataset=dataset).order_by("id")[:10],
        "import_job": dataset.import_jobs.first(),
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


@login_required
@permission_required("recommendations.view_importjob", raise_exception=True)
def import_job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("dataset"), pk=job_id)
    if request.htmx:
        response = render(request, "recommendations/import_job.html#progress", {"job": job})
        # 286 tells htmx to stop polling once the job has finished.
        return HttpResponseStopPolling(response.content) if job.is_terminal else response
    return render(request, "recommendations/import_job.html", {"job": job})
