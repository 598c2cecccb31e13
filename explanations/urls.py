from django.urls import path

from explanations import apis, views
from explanations.services.engine import ACTIONS

app_name = "explanations"

# Each job page's URL: its cancel, resume and retry routes follow it, named ``<kind>_<action>``.
JOB_ROUTES = {
    "run": "explanations/runs/<int:run_id>/",
    "judge": "explanations/judge-runs/<int:run_id>/",
    "probe": "explanations/probes/<int:probe_id>/",
    "text_metrics": "explanations/text-metrics/<int:metrics_id>/",
    "claim_check": "explanations/claim-checks/<int:check_id>/",
}

urlpatterns = [
    path("explanations/", views.generation_run_list, name="run_list"),
    path("explanations/runs/new/", views.generation_run_create, name="run_create"),
    path("explanations/runs/<int:run_id>/", views.generation_run_detail, name="run_detail"),
    path("explanations/adapters/new/", views.adapter_training_create, name="adapter_create"),
    path("explanations/adapters/<int:training_id>/", views.adapter_training_detail, name="adapter_detail"),
    path("explanations/templates/", views.template_list, name="template_list"),
    path("explanations/templates/<int:template_id>/edit/", views.template_edit, name="template_edit"),
    path("explanations/generators/", views.generator_list, name="generator_list"),
    path("explanations/generators/prepare-bundled/", views.bundled_model_prepare_view, name="prepare_bundled"),
    path("explanations/judge-runs/", views.judge_run_list, name="judge_list"),
    path("explanations/judge-runs/new/", views.judge_run_create, name="judge_create"),
    path("explanations/judge-runs/<int:run_id>/", views.judge_run_detail, name="judge_detail"),
    path("explanations/judge-runs/<int:run_id>/tune/", views.judge_run_tune, name="judge_tune"),
    path("explanations/probes/", views.probe_list, name="probe_list"),
    path("explanations/probes/new/", views.probe_create, name="probe_create"),
    path("explanations/probes/<int:probe_id>/", views.probe_detail, name="probe_detail"),
    path("explanations/claim-checks/", views.claim_check_list, name="claim_check_list"),
    path("explanations/claim-checks/new/", views.claim_check_create, name="claim_check_create"),
    path("explanations/claim-checks/<int:check_id>/", views.claim_check_detail, name="claim_check_detail"),
    path("explanations/text-metrics/", views.text_metrics_list, name="text_metrics_list"),
    path("explanations/text-metrics/<int:metrics_id>/", views.text_metrics_detail, name="text_metrics_detail"),
    *(
        path(f"{route}{action}/", views.job_action, {"kind": kind, "action": action}, name=f"{kind}_{action}")
        for kind, route in JOB_ROUTES.items()
        for action in ACTIONS
    ),
    path("api/jobs/<str:kind>/<int:job_id>/<str:action>/", apis.JobActionApi.as_view(), name="api_job_action"),
    path("api/judge-runs/<int:run_id>/", apis.JudgeRunDetailApi.as_view(), name="api_judge_detail"),
    path("api/judge-runs/<int:run_id>/verdicts/", apis.JudgeVerdictListApi.as_view(), name="api_judge_verdicts"),
    path("api/generation-runs/", apis.GenerationRunStartApi.as_view(), name="api_run_start"),
    path("api/generation-runs/<int:run_id>/", apis.GenerationRunDetailApi.as_view(), name="api_run_detail"),
    path("api/generation-runs/<int:run_id>/explanations/", apis.ExplanationListApi.as_view(), name="api_explanations"),
]
