"""The study report's routes, included into ``annotation.urls`` so that they keep the
``annotation`` namespace (``annotation:study``, ``annotation:study_export``,
``annotation:api_study_report``); no ``app_name`` here, deliberately."""

from django.urls import path, re_path

from annotation.study import apis, views

urlpatterns = [
    path("studies/", views.study_report_view, name="study"),
    re_path(r"^studies/report\.(?P<fmt>json|md|tex|csv)$", views.study_report_export, name="study_export"),
    path("studies/cross/", views.cross_study_view, name="cross_study"),
    re_path(r"^studies/cross\.(?P<fmt>md|tex|csv)$", views.cross_study_export, name="cross_study_export"),
    path("api/studies/report/", apis.StudyReportApi.as_view(), name="api_study_report"),
]
