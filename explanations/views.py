"""Pages for generation runs, adapter trainings and generators (admins start, researchers read)."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from explanations.forms import (
    AdapterTrainingForm,
    ClaimCheckForm,
    GenerationRunForm,
    JudgeRunForm,
    JudgeTuningOptionsForm,
    ProbeForm,
    PromptTemplateForm,
)
from explanations.models import (
    AdapterTraining,
    AttributeProbe,
    CheckedClaim,
    ClaimCheck,
    Explanation,
    GenerationRun,
    Generator,
    JudgeRun,
    JudgeVerdict,
    ProbeAnswer,
    PromptTemplate,
    TextMetrics,
)
from explanations.querysets import (
    explanation_rows,
    generation_run_stats,
    judge_run_stats,
    loss_curve_points,
    probe_stats,
)
from explanations.services.adapters import adapter_training_start
from explanations.services.claims import CLAIM_CHECK, claim_check_start, claim_check_stats
from explanations.services.engine import KINDS, JobActionRefused, Kind
from explanations.services.generation import GENERATION, generation_run_start
from explanations.services.generators import (
    GenerationError,
    bundled_model_dir,
    bundled_model_prepare_start,
    prompt_preview,
    prompt_template_revise,
)
from explanations.services.judging import JUDGE, judge_run_preferences, judge_run_start, judge_run_tuning_start
from explanations.services.probing import PROBE, probe_start
from explanations.services.text_metrics import TEXT_METRICS
from recommendations.models import Recommendation
from recommendations.shared.htmx import HtmxHttpRequest, polled_partial

PAGE_SIZE = 10

# The page of each kind of job the engine runs, and its id's name in the page's URL: where
# an action returns to. The action routes are named ``<kind>_<action>`` (explanations.urls).
JOB_PAGES = {
    GENERATION.name: ("explanations:run_detail", "run_id"),
    JUDGE.name: ("explanations:judge_detail", "run_id"),
    PROBE.name: ("explanations:probe_detail", "probe_id"),
    TEXT_METRICS.name: ("explanations:text_metrics_detail", "metrics_id"),
    CLAIM_CHECK.name: ("explanations:claim_check_detail", "check_id"),
}


def _change_permission(kind: Kind) -> str:
    meta = kind.job_model._meta
    return f"{meta.app_label}.change_{meta.model_name}"


def job_actions(request: HttpRequest, kind: Kind, job: Any, counts: dict[str, Any]) -> list[tuple[str, str]]:
    """(button label, URL) of the actions ``job`` allows now, for accounts that may take them:
    the same buttons on every job's page (``explanations/_job_actions.html``)."""
    if not request.user.has_perm(_change_permission(kind)):
        return []
    id_name = JOB_PAGES[kind.name][1]
    return [
        (label, reverse(f"explanations:{kind.name}_{action}", kwargs={id_name: job.pk}))
        for action, label in kind.actions(job, counts)
    ]


@require_POST
@login_required
def job_action(request: HttpRequest, kind: str, action: str, **ids: int) -> HttpResponse:
    """Cancel, resume or retry a job of any kind the engine runs, then back to its page.

    Needs the change permission on the job's model (admins). An action the job's status
    does not allow (resuming a finished run) changes nothing and says why in a message.
    """
    job_kind = KINDS[kind]
    if not request.user.has_perm(_change_permission(job_kind)):
        raise PermissionDenied
    detail, id_name = JOB_PAGES[kind]
    job = get_object_or_404(job_kind.job_model, pk=ids[id_name])
    try:
        job_kind.act(job, action)
    except JobActionRefused as exc:
        messages.error(request, str(exc))
    return redirect(detail, **{id_name: job.pk})


@require_GET
@login_required
@permission_required("explanations.view_generationrun", raise_exception=True)
def generation_run_list(request: HttpRequest) -> HttpResponse:
    runs = GenerationRun.objects.listed().select_related("generator", "template", "recommender_run__dataset")
    trainings = AdapterTraining.objects.select_related("base_generator")[:20]
    return render(request, "explanations/run_list.html", {"runs": runs, "trainings": trainings})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.add_generationrun", raise_exception=True)
def generation_run_create(request: HtmxHttpRequest) -> HttpResponse:
    form = GenerationRunForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if "preview" in request.POST:
            context |= _preview(form)
            if request.htmx:
                return render(request, "explanations/run_form.html#preview", context)
        else:
            try:
                run = generation_run_start(
                    created_by=request.user,
                    recommender_run=data["recommender_run"],
                    generator=data["generator"],
                    template=data["template"],
                    depth=data["depth"],
                    sample=data["sample"],
                    sample_size=data["sample_size"],
                    seed=data["seed"],
                    controls=form.controls(),
                    chunk_size=data["chunk_size"],
                )
            except GenerationError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("explanations:run_detail", run_id=run.pk)
    if request.htmx and "preview" in request.POST:
        return render(request, "explanations/run_form.html#preview", context)
    return render(request, "explanations/run_form.html", context)


def _preview(form: GenerationRunForm) -> dict[str, Any]:
    data = form.cleaned_data
    recommendations = Recommendation.objects.for_run(data["recommender_run"]).select_related("user", "item", "run")
    if data["preview_user"]:
        recommendations = recommendations.filter(user__external_id=data["preview_user"])
    recommendation = recommendations.filter(rank=data["preview_rank"] or 1).order_by("user_id").first()
    if recommendation is None:
        return {"preview_error": "No such user and rank in that recommender run."}
    try:
        messages = prompt_preview(recommendation=recommendation, template=data["template"], controls=form.controls())
    except GenerationError as exc:
        return {"preview_error": str(exc)}
    return {"preview": messages, "preview_recommendation": recommendation}


@require_GET
@login_required
@permission_required("explanations.view_generationrun", raise_exception=True)
def generation_run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(
        GenerationRun.objects.select_related("generator", "template", "recommender_run__dataset"), pk=run_id
    )
    stats = generation_run_stats(run)
    progress = {"run": run, "stats": stats, "job_actions": job_actions(request, GENERATION, run, stats)}
    if request.htmx and request.htmx.target == "progress":
        return polled_partial(request, "explanations/run_detail.html#progress", progress, finished=run.is_terminal)
    explanations = (
        Explanation.objects.filter(generation_run=run)
        .exclude(status=Explanation.Status.PENDING)
        .select_related("recommendation__user", "recommendation__item")
        .order_by("id")
    )
    page = Paginator(explanations, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = explanation_rows(run, page)
    context = progress | {"page": page, "rows": rows}
    if request.htmx and request.htmx.target == "explanations":
        return render(request, "explanations/run_detail.html#explanations", context)
    return render(request, "explanations/run_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.add_adaptertraining", raise_exception=True)
def adapter_training_create(request: HttpRequest) -> HttpResponse:
    form = AdapterTrainingForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            training = adapter_training_start(
                created_by=request.user,
                base_generator=form.cleaned_data["base_generator"],
                source_run=form.cleaned_data["source_run"],
                upload=form.cleaned_data["upload"],
                options=form.options(),
            )
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("explanations:adapter_detail", training_id=training.pk)
    return render(request, "explanations/adapter_form.html", {"form": form})


@require_GET
@login_required
@permission_required("explanations.view_adaptertraining", raise_exception=True)
def adapter_training_detail(request: HtmxHttpRequest, training_id: int) -> HttpResponse:
    training = get_object_or_404(AdapterTraining.objects.select_related("base_generator"), pk=training_id)
    context = {"training": training, "curve": loss_curve_points(training), "generator": training.generators.first()}
    if request.htmx and request.htmx.target == "progress":
        # Reloaded once it ends, so the loss curve and the new generator appear.
        return polled_partial(
            request, "explanations/adapter_detail.html#progress", context, finished=training.is_terminal, reload=True
        )
    return render(request, "explanations/adapter_detail.html", context)


@require_GET
@login_required
@permission_required("explanations.view_generator", raise_exception=True)
def generator_list(request: HttpRequest) -> HttpResponse:
    context = {
        "generators": Generator.objects.select_related("adapter_training"),
        "bundled_ready": (bundled_model_dir() / "config.json").is_file(),
    }
    return render(request, "explanations/generator_list.html", context)


@require_POST
@login_required
@permission_required("explanations.add_generator", raise_exception=True)
def bundled_model_prepare_view(request: HttpRequest) -> HttpResponse:
    bundled_model_prepare_start()
    return redirect("explanations:generator_list")


@require_GET
@login_required
@permission_required("explanations.view_prompttemplate", raise_exception=True)
def template_list(request: HttpRequest) -> HttpResponse:
    return render(request, "explanations/template_list.html", {"templates": PromptTemplate.objects.all()})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.change_prompttemplate", raise_exception=True)
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    """Editing saves a new version; the one shown here stays as it was."""
    template = get_object_or_404(PromptTemplate, pk=template_id)
    initial = {
        "description": template.description,
        "system_text": template.system_text,
        "user_text": template.user_text,
    }
    form = PromptTemplateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            revised = prompt_template_revise(template=template, **form.cleaned_data)
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved as {revised}.")
            return redirect("explanations:template_list")
    return render(request, "explanations/template_edit.html", {"form": form, "template": template})


@require_GET
@login_required
@permission_required("explanations.view_judgerun", raise_exception=True)
def judge_run_list(request: HttpRequest) -> HttpResponse:
    runs = JudgeRun.objects.select_related("judge").prefetch_related("generation_runs")
    return render(request, "explanations/judge_list.html", {"runs": runs})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.add_judgerun", raise_exception=True)
def judge_run_create(request: HttpRequest) -> HttpResponse:
    form = JudgeRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = judge_run_start(
                created_by=request.user,
                judge=data["judge"],
                generation_runs=list(data["generation_runs"]),
                rubric=data["rubric"],
                mode=data["mode"],
                answer_mode=data["answer_mode"],
                sample_size=data["sample_size"],
                seed=data["seed"],
                chunk_size=data["chunk_size"],
                max_new_tokens=data["max_new_tokens"],
            )
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("explanations:judge_detail", run_id=run.pk)
    return render(request, "explanations/judge_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.view_judgerun", raise_exception=True)
@permission_required("explanations.add_adaptertraining", raise_exception=True)
def judge_run_tune(request: HttpRequest, run_id: int) -> HttpResponse:
    """Tune a small judge on this run's verdicts where both orders agree (admins): the
    LLM-labelled pairs the LLMXRec study tuned its judge on."""
    run = get_object_or_404(JudgeRun.objects.select_related("judge"), pk=run_id)
    if run.mode != JudgeRun.Mode.PAIRWISE:
        raise Http404("only pairwise judge runs have verdicts between two explanations")
    form = JudgeTuningOptionsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            training = judge_run_tuning_start(
                run=run,
                created_by=request.user,
                base_generator=form.cleaned_data["base_generator"],
                options=form.options(),
            )
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("explanations:adapter_detail", training_id=training.pk)
    context = {"form": form, "run": run, "n_preferences": len(judge_run_preferences(run))}
    return render(request, "explanations/judge_tune_form.html", context)


@require_GET
@login_required
@permission_required("explanations.view_judgerun", raise_exception=True)
def judge_run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(JudgeRun.objects.select_related("judge"), pk=run_id)
    stats = judge_run_stats(run)
    context: dict[str, Any] = {"run": run, "stats": stats, "job_actions": job_actions(request, JUDGE, run, stats)}
    if request.htmx and request.htmx.target == "progress":
        return polled_partial(request, "explanations/judge_detail.html#progress", context, finished=run.is_terminal)
    verdicts = (
        JudgeVerdict.objects.filter(judge_run=run)
        .exclude(status=JudgeVerdict.Status.PENDING)
        .select_related("first__generation_run", "second__generation_run", "recommendation__item")
        .order_by("id")
    )
    context |= {"page": Paginator(verdicts, PAGE_SIZE).get_page(request.GET.get("page"))}
    if request.htmx and request.htmx.target == "verdicts":
        return render(request, "explanations/judge_detail.html#verdicts", context)
    context["runs"] = run.generation_runs.select_related("generator", "template")
    return render(request, "explanations/judge_detail.html", context)


@require_GET
@login_required
@permission_required("explanations.view_attributeprobe", raise_exception=True)
def probe_list(request: HttpRequest) -> HttpResponse:
    probes = AttributeProbe.objects.select_related("prober", "generation_run__generator")
    return render(request, "explanations/probe_list.html", {"probes": probes})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.add_attributeprobe", raise_exception=True)
def probe_create(request: HttpRequest) -> HttpResponse:
    form = ProbeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            probe = probe_start(created_by=request.user, **form.cleaned_data)
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("explanations:probe_detail", probe_id=probe.pk)
    return render(request, "explanations/probe_form.html", {"form": form})


@require_GET
@login_required
@permission_required("explanations.view_attributeprobe", raise_exception=True)
def probe_detail(request: HtmxHttpRequest, probe_id: int) -> HttpResponse:
    probe = get_object_or_404(AttributeProbe.objects.select_related("prober", "generation_run__generator"), pk=probe_id)
    stats = probe_stats(probe)
    context: dict[str, Any] = {"probe": probe, "stats": stats, "job_actions": job_actions(request, PROBE, probe, stats)}
    if request.htmx and request.htmx.target == "progress":
        return polled_partial(request, "explanations/probe_detail.html#progress", context, finished=probe.is_terminal)
    answers = (
        ProbeAnswer.objects.filter(probe=probe)
        .exclude(status=ProbeAnswer.Status.PENDING)
        .select_related("explanation__recommendation__item")
        .order_by("id")
    )
    context |= {"page": Paginator(answers, PAGE_SIZE).get_page(request.GET.get("page"))}
    if request.htmx and request.htmx.target == "answers":
        return render(request, "explanations/probe_detail.html#answers", context)
    return render(request, "explanations/probe_detail.html", context)


@require_GET
@login_required
@permission_required("explanations.view_claimcheck", raise_exception=True)
def claim_check_list(request: HttpRequest) -> HttpResponse:
    checks = ClaimCheck.objects.select_related("checker", "generation_run__generator")[:200]
    return render(request, "explanations/claim_check_list.html", {"checks": checks})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("explanations.add_claimcheck", raise_exception=True)
def claim_check_create(request: HttpRequest) -> HttpResponse:
    form = ClaimCheckForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            check = claim_check_start(created_by=request.user, **form.cleaned_data)
        except GenerationError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("explanations:claim_check_detail", check_id=check.pk)
    return render(request, "explanations/claim_check_form.html", {"form": form})


@require_GET
@login_required
@permission_required("explanations.view_claimcheck", raise_exception=True)
def claim_check_detail(request: HtmxHttpRequest, check_id: int) -> HttpResponse:
    """A claim check: its progress and figures (polled until it ends), actions and claims."""
    check = get_object_or_404(ClaimCheck.objects.select_related("checker", "generation_run__generator"), pk=check_id)
    stats = claim_check_stats(check)
    context: dict[str, Any] = {
        "check": check,
        "stats": stats,
        "job_actions": job_actions(request, CLAIM_CHECK, check, stats),
    }
    if request.htmx and request.htmx.target == "progress":
        return polled_partial(
            request, "explanations/claim_check_detail.html#progress", context, finished=check.is_terminal
        )
    claims = (
        CheckedClaim.objects.filter(claim_check=check)
        .exclude(status=CheckedClaim.Status.PENDING)
        .order_by("explanation_id", "position")
    )
    context |= {"page": Paginator(claims, PAGE_SIZE).get_page(request.GET.get("page"))}
    if request.htmx and request.htmx.target == "claims":
        return render(request, "explanations/claim_check_detail.html#claims", context)
    return render(request, "explanations/claim_check_detail.html", context)


@require_GET
@login_required
@permission_required("explanations.view_textmetrics", raise_exception=True)
def text_metrics_list(request: HttpRequest) -> HttpResponse:
    jobs = TextMetrics.objects.select_related("generation_run__generator")[:200]
    return render(request, "explanations/text_metrics_list.html", {"jobs": jobs})


@require_GET
@login_required
@permission_required("explanations.view_textmetrics", raise_exception=True)
def text_metrics_detail(request: HtmxHttpRequest, metrics_id: int) -> HttpResponse:
    """One text metrics job: its progress (polled until it ends), actions and metrics."""
    job = get_object_or_404(TextMetrics.objects.select_related("generation_run__generator"), pk=metrics_id)
    context = {"job": job, "job_actions": job_actions(request, TEXT_METRICS, job, {})}
    if request.htmx and request.htmx.target == "progress":
        return polled_partial(
            request, "explanations/text_metrics_detail.html#progress", context, finished=job.is_terminal
        )
    # Shown in a <pre>: autoescaping covers any text a metric carries (examples of explanations).
    context["metrics_json"] = json.dumps(job.metrics, indent=2, sort_keys=True) if job.metrics else ""
    return render(request, "explanations/text_metrics_detail.html", context)
