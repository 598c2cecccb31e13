"""The study page and its exports (researchers): the report as HTML, JSON, Markdown, LaTeX or CSV.

Both read the study from the query string (``StudyForm``), so a page and its exports are the
same report; ``study_report_cached`` keeps a reload from recomputing it.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.study.charts import report_charts
from annotation.study.cross import cross_study_tables
from annotation.study.forms import CrossStudyForm, StudyForm
from annotation.study.report import study_report_cached
from annotation.study.tables import Table, report_tables, to_csv, to_latex, to_markdown

REPORT_FORMATS = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "tex": "application/x-tex; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}


def _study(request: HttpRequest) -> tuple[StudyForm, dict[str, Any] | None]:
    """The study form of the query string and, when it is valid, its (cached) report."""
    form = StudyForm(request.GET or None)
    if not form.is_valid():
        return form, None
    report = study_report_cached(**form.report_arguments())
    return form, report


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def study_report_view(request: HttpRequest) -> HttpResponse:
    """The study page: the form, and for a valid study its tables and charts."""
    form, report = _study(request)
    context: dict[str, Any] = {"form": form, "report": report, "query": request.GET.urlencode()}
    if report is not None:
        context |= {"tables": report_tables(report), "charts": report_charts(report)}
    return render(request, "annotation/study.html", context)


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def study_report_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The report as a download: JSON (everything), Markdown or LaTeX (every table), or one
    table as CSV (``?table=<name>``). An invalid study or table name is a 400 naming the problem."""
    form, report = _study(request)
    if report is None:
        return HttpResponse(f"bad study: {form.errors.as_text()}", status=400, content_type="text/plain")
    if fmt == "json":
        return _attachment(json.dumps(report, indent=1, default=str), fmt, "xrec-study")
    return _tables_download(request, report_tables(report), fmt, "xrec-study")


def _tables_download(request: HttpRequest, tables: list[Table], fmt: str, stem: str) -> HttpResponse:
    """Every table as Markdown or LaTeX, or the one named by ``?table=`` as CSV (400 naming the
    choices when it names none of them)."""
    if fmt == "md":
        return _attachment(to_markdown(tables), fmt, stem)
    if fmt == "tex":
        return _attachment(to_latex(tables), fmt, stem)
    chosen = [table for table in tables if table.name == request.GET.get("table", "")]
    if not chosen:
        names = ", ".join(table.name for table in tables)
        return HttpResponse(f"choose ?table= one of: {names}", status=400, content_type="text/plain")
    return _attachment(to_csv(chosen[0]), fmt, f"{stem}-{chosen[0].name}")


def _attachment(body: str, fmt: str, stem: str) -> HttpResponse:
    response = HttpResponse(body, content_type=REPORT_FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
    return response


def _cross(request: HttpRequest) -> tuple[CrossStudyForm, list[Any] | None]:
    """The cross-study form of the query string and, when it is valid, its tables (each study's
    report from the cache when none of its inputs changed)."""
    form = CrossStudyForm(request.GET or None)
    if not form.is_valid():
        return form, None
    seed = form.cleaned_data["seed"] or 0
    reports = [
        study_report_cached(recommender_run=run, generation_runs=runs, seed=seed)
        for run, runs in form.cleaned_data["studies"]
    ]
    return form, cross_study_tables(reports)


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def cross_study_view(request: HttpRequest) -> HttpResponse:
    """Several studies in the paper's layout: a row per generator, a column per dataset and
    recommender."""
    form, tables = _cross(request)
    context = {"form": form, "tables": tables, "query": request.GET.urlencode()}
    return render(request, "annotation/cross_study.html", context)


@require_GET
@login_required
@permission_required("annotation.view_campaign", raise_exception=True)
def cross_study_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The cross-study tables as Markdown, LaTeX, or one of them as CSV (``?table=<name>``)."""
    form, tables = _cross(request)
    if tables is None:
        return HttpResponse(f"bad studies: {form.errors.as_text()}", status=400, content_type="text/plain")
    return _tables_download(request, tables, fmt, "xrec-cross-study")
