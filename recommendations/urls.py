from django.urls import path

from recommendations import apis, views

app_name = "recommendations"

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/import/", views.dataset_import, name="import"),
    path("datasets/imports/<int:job_id>/", views.import_job_detail, name="import_job"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/new/", views.run_create, name="run_create"),
    path("runs/import/", views.run_import, name="run_import"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/retry/", views.run_retry, name="run_retry"),
    path("api/datasets/", apis.DatasetListApi.as_view(), name="api_dataset_list"),
    path("api/datasets/<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="api_dataset_detail"),
    path("api/runs/", apis.RecommenderRunListApi.as_view(), name="api_run_list"),
    path(
        "api/runs/<int:run_id>/users/<str:external_id>/recommendations/",
        apis.UserRecommendationsApi.as_view(),
        name="api_user_recommendations",
    ),
    path("api/import-jobs/<int:job_id>/", apis.ImportJobDetailApi.as_view(), name="api_import_job"),
]
