"""Read-only JSON endpoints for datasets and import jobs (DRF)."""

from django.shortcuts import get_object_or_404
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recommendations.models import Dataset, DatasetUser, ImportJob, Recommendation, RecommenderRun


def require_permission(request: Request, permission: str) -> None:
    """403 unless the signed-in account has ``permission`` (shared by every app's APIs)."""
    if not request.user.has_perm(permission):
        raise PermissionDenied()


class DatasetOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = [
            "id", "name", "domain", "source", "licence_note", "import_format", "is_implicit",
            "rating_min", "rating_max", "n_users", "n_items", "n_interactions", "import_seconds", "imported_at",
        ]  # fmt: skip


class DatasetListApi(APIView):
    def get(self, request: Request) -> Response:
        require_permission(request, "recommendations.view_dataset")
        datasets = Dataset.objects.visible_to(request.user)
        return Response(DatasetOutputSerializer(datasets, many=True).data)


class DatasetDetailApi(APIView):
    def get(self, request: Request, dataset_id: int) -> Response:
        require_permission(request, "recommendations.view_dataset")
        dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=dataset_id)
        return Response(DatasetOutputSerializer(dataset).data)


class ImportJobDetailApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = ImportJob
            fields = [
                "id", "name", "format", "status", "phase", "progress_done", "progress_total", "percent",
                "error", "dataset", "created_at", "started_at", "finished_at",
            ]  # fmt: skip

    def get(self, request: Request, job_id: int) -> Response:
        require_permission(request, "recommendations.view_importjob")
        job = get_object_or_404(ImportJob, pk=job_id)
        return Response(self.OutputSerializer(job).data)


class RecommenderRunListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = RecommenderRun
            fields = [
                "id", "dataset", "split", "algorithm", "hyperparameters", "seed", "k", "relevance_threshold",
                "status", "error", "metrics", "fit_seconds", "topk_seconds", "model_sha256", "created_at", "finished_at",
            ]  # fmt: skip

    def get(self, request: Request) -> Response:
        require_permission(request, "recommendations.view_recommenderrun")
        runs = RecommenderRun.objects.visible_to(request.user).order_by("-created_at", "-id")
        dataset = request.query_params.get("dataset")
        if dataset is not None:
            runs = runs.filter(dataset_id=dataset)
        page = LimitOffsetPagination()
        rows = page.paginate_queryset(runs, request, view=self)
        return page.get_paginated_response(self.OutputSerializer(rows, many=True).data)


class UserRecommendationsApi(APIView):
    class OutputSerializer(serializers.Serializer):
        rank = serializers.IntegerField()
        score = serializers.FloatField()
        item_id = serializers.CharField(source="item.external_id")
        title = serializers.CharField(source="item.title")
        attributes = serializers.JSONField(source="item.attributes")

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
