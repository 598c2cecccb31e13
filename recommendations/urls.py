from django.urls import path

from recommendations import apis, views

app_name = "recommendations"

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/import/", views.dataset_import, name="import"),
    path("datasets/imports/<int:job_id>/", views.import_job_detail, name="import_job"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("api/datasets/", apis.DatasetListApi.as_view(), name="api_dataset_list"),
    path("api/datasets/<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="api_dataset_detail"),
    path("api/import-jobs/<int:job_id>/", apis.ImportJobDetailApi.as_view(), name="api_import_job"),
]
