from django.urls import path

from explanations import apis, views

app_name = "explanations"

urlpatterns = [
    path("explanations/", views.generation_run_list, name="run_list"),
    path("explanations/runs/new/", views.generation_run_create, name="run_create"),
    path("explanations/runs/<int:run_id>/", views.generation_run_detail, name="run_detail"),
    path("explanations/runs/<int:run_id>/cancel/", views.generation_run_cancel_view, name="run_cancel"),
    path("explanations/runs/<int:run_id>/resume/", views.generation_run_resume_view, name="run_resume"),
    path("explanations/runs/<int:run_id>/retry/", views.generation_run_retry_view, name="run_retry"),
    path("explanations/adapters/new/", views.adapter_training_create, name="adapter_create"),
    path("explanations/adapters/<int:training_id>/", views.adapter_training_detail, name="adapter_detail"),
    path("explanations/templates/", views.template_list, name="template_list"),
    path("explanations/templates/<int:template_id>/edit/", views.template_edit, name="template_edit"),
    path("explanations/generators/", views.generator_list, name="generator_list"),
    path("explanations/generators/prepare-bundled/", views.bundled_model_prepare_view, name="prepare_bundled"),
    path("explanations/judge-runs/", views.judge_run_list, name="judge_list"),
    path("explanations/judge-runs/new/", views.judge_run_create, name="judge_create"),
    path("explanations/judge-runs/<int:run_id>/", views.judge_run_detail, name="judge_detail"),
    path("explanations/judge-runs/<int:run_id>/retry/", views.judge_run_retry_view, name="judge_retry"),
    path("explanations/probes/", views.probe_list, name="probe_list"),
    path("explanations/probes/new/", views.probe_create, name="probe_create"),
    path("explanations/probes/<int:probe_id>/", views.probe_detail, name="probe_detail"),
    path("api/judge-runs/<int:run_id>/", apis.JudgeRunDetailApi.as_view(), name="api_judge_detail"),
    path("api/judge-runs/<int:run_id>/verdicts/", apis.JudgeVerdictListApi.as_view(), name="api_judge_verdicts"),
    path("api/generation-runs/", apis.GenerationRunStartApi.as_view(), name="api_run_start"),
    path("api/generation-runs/<int:run_id>/", apis.GenerationRunDetailApi.as_view(), name="api_run_detail"),
    path("api/generation-runs/<int:run_id>/explanations/", apis.ExplanationListApi.as_view(), name="api_explanations"),
]
