"""Read-only JSON endpoints for datasets and import jobs (DRF).

Every endpoint is described for the OpenAPI schema (``/api/schema/``) with ``extend_schema``:
its response serializer, its query parameters and every error status it can answer.
"""

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recommendations.models import Dataset, DatasetUser, ImportJob, Recommendation, RecommenderRun
from recommendations.shared.api import MAX_ID, PAGE_PARAMETERS, api_responses, paginated, require_permission
from recommendations.shared.pagination import ApiPagination


@extend_schema_serializer(component_name="Dataset")
class DatasetOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = [
            "id", "name", "domain", "source", "licence_note", "import_format", "is_implicit",
            "rating_min", "rating_max", "n_users", "n_items", "n_interactions", "import_seconds", "imported_at",
        ]  # fmt: skip


class DatasetListApi(APIView):
    @extend_schema(operation_id="datasets_list", responses=api_responses(DatasetOutputSerializer(many=True)))
    def get(self, request: Request) -> Response:
        require_permission(request, "recommendations.view_dataset")
        datasets = Dataset.objects.visible_to(request.user)
        return Response(DatasetOutputSerializer(datasets, many=True).data)


class DatasetDetailApi(APIView):
    @extend_schema(operation_id="datasets_retrieve", responses=api_responses(DatasetOutputSerializer, 404))
    def get(self, request: Request, dataset_id: int) -> Response:
        require_permission(request, "recommendations.view_dataset")
        dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=dataset_id)
        return Response(DatasetOutputSerializer(dataset).data)


class ImportJobDetailApi(APIView):
    @extend_schema_serializer(component_name="ImportJob")
    class OutputSerializer(serializers.ModelSerializer):
        percent = serializers.IntegerField(read_only=True)

        class Meta:
            model = ImportJob
            fields = [
                "id", "name", "format", "status", "phase", "progress_done", "progress_total", "percent",
                "error", "dataset", "created_at", "started_at", "finished_at",
            ]  # fmt: skip

    @extend_schema(operation_id="import_jobs_retrieve", responses=api_responses(OutputSerializer, 404))
    def get(self, request: Request, job_id: int) -> Response:
        require_permission(request, "recommendations.view_importjob")
        job = get_object_or_404(ImportJob, pk=job_id)
        return Response(self.OutputSerializer(job).data)


class RecommenderRunListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        dataset = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    @extend_schema_serializer(component_name="RecommenderRun")
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = RecommenderRun
            fields = [
                "id", "dataset", "split", "algorithm", "hyperparameters", "seed", "k", "relevance_threshold",
                "positive_threshold", "kind", "name", "source", "status", "error", "metrics", "fit_seconds", "topk_seconds", "model_sha256", "created_at", "finished_at",
            ]  # fmt: skip

    @extend_schema(
        operation_id="recommender_runs_list",
        parameters=[
            OpenApiParameter("dataset", int, description="Only runs on this dataset (its id)."),
            *PAGE_PARAMETERS,
        ],
        responses=api_responses(paginated(OutputSerializer, "PaginatedRecommenderRunList"), 400),
    )
    def get(self, request: Request) -> Response:
        require_permission(request, "recommendations.view_recommenderrun")
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = RecommenderRun.objects.visible_to(request.user).listed().order_by("-created_at", "-id")
        if (dataset := filters.validated_data.get("dataset")) is not None:
            runs = runs.filter(dataset_id=dataset)
        page = ApiPagination()
        rows = page.paginate_queryset(runs, request, view=self)
        return page.get_paginated_response(self.OutputSerializer(rows, many=True).data)


class UserRecommendationsApi(APIView):
    @extend_schema_serializer(component_name="Recommendation")
    class OutputSerializer(serializers.Serializer):
        rank = serializers.IntegerField()
        score = serializers.FloatField()
        item_id = serializers.CharField(source="item.external_id")
        title = serializers.CharField(source="item.title")
        attributes = serializers.JSONField(source="item.attributes")

    @extend_schema(
        operation_id="recommender_runs_user_recommendations",
        responses=api_responses(
            inline_serializer(
                name="UserRecommendations",
                fields={
                    "run": serializers.IntegerField(),
                    "user": serializers.CharField(),
                    "recommendations": OutputSerializer(many=True),
                },
            ),
            404,
        ),
    )
    def get(self, request: Request, run_id: int, external_id: str) -> Response:
        require_permission(request, "recommendations.view_recommenderrun")
        run = get_object_or_404(RecommenderRun.objects.visible_to(request.user), pk=run_id)
        user = get_object_or_404(DatasetUser, dataset_id=run.dataset_id, external_id=external_id)
        recommendations = Recommendation.objects.for_run(run).for_user(user)
        return Response(
            {
                "run": run.pk,
                "user": user.external_id,
                "recommendations": self.OutputSerializer(recommendations, many=True).data,
            }
        )


def schema_path_parameters(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: path parameters say what their URL converter
    matches (``<int:>`` digits only, ``<str:>`` no slash), so a client that keeps to the
    schema always reaches the view and never Django's HTML 404 for an unmatched URL."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path":
                    continue
                if parameter["schema"].get("type") == "integer":
                    parameter["schema"]["minimum"] = 0
                elif parameter["schema"].get("type") == "string":
                    parameter["schema"]["pattern"] = "^[^/]+$"
    return result
