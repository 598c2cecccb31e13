"""JSON endpoints: campaigns and their rating export (researchers), own assignments (annotators)."""

from itertools import islice

from django.shortcuts import get_object_or_404
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.exports import rating_export_rows
from annotation.forms import StudyForm
from annotation.models import Assignment, Campaign
from annotation.reports import study_report_cached
from recommendations.apis import require_permission

MAX_LIMIT = 5000


class CampaignListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Campaign
            fields = [
                "id", "name", "mode", "status", "recommender_run", "generation_runs", "sample", "sample_size",
                "seed", "overlap", "items_per_annotator", "lease_minutes", "created_at", "closed_at",
            ]  # fmt: skip

    def get(self, request: Request) -> Response:
        require_permission(request, "annotation.view_campaign")
        campaigns = Campaign.objects.visible_to(request.user).prefetch_related("generation_runs")
        return Response(self.OutputSerializer(campaigns, many=True).data)


class CampaignRatingListApi(APIView):
    """The same rows as the CSV/JSONL export, a page at a time (``offset``, ``limit``)."""

    class FilterSerializer(serializers.Serializer):
        offset = serializers.IntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=500)
        include_excluded = serializers.BooleanField(default=False)

    def get(self, request: Request, campaign_id: int) -> Response:
        require_permission(request, "annotation.view_campaign")
        campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        offset, limit = filters.validated_data["offset"], filters.validated_data["limit"]
        rows = rating_export_rows(campaign, include_excluded=filters.validated_data["include_excluded"])
        page = list(islice(rows, offset, offset + limit + 1))
        return Response({"offset": offset, "limit": limit, "has_more": len(page) > limit, "results": page[:limit]})


class AssignmentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Assignment
        fields = ["id", "campaign", "position", "status", "served_at", "submitted_at", "revisions"]


class AssignmentListApi(APIView):
    """The signed-in annotator's own assignments; never anyone else's."""

    def get(self, request: Request) -> Response:
        assignments = Assignment.objects.of_user(request.user).order_by("campaign_id", "position")
        return Response(AssignmentOutputSerializer(assignments, many=True).data)


class AssignmentDetailApi(APIView):
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = get_object_or_404(Assignment.objects.of_user(request.user), pk=assignment_id)
        data = AssignmentOutputSerializer(assignment).data
        data["answers"] = {
            rating.criterion.name: rating.answer for rating in assignment.ratings.select_related("criterion")
        }
        return Response(data)


class StudyReportApi(APIView):
    """The study report as JSON:
    ``?recommender_run=<id>&runs=<id>&runs=<id>[&seed=&exclude_flagged=1&reference_run=<id>]``."""

    def get(self, request: Request) -> Response:
        require_permission(request, "annotation.view_campaign")
        form = StudyForm(request.query_params)
        if not form.is_valid():
            return Response(form.errors.get_json_data(), status=400)
        report = study_report_cached(**form.report_arguments())
        return Response(report)
