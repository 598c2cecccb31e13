"""JSON endpoints: campaigns and their rating export (researchers), own assignments (annotators)."""

from itertools import islice

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.exports import rating_export_rows
from annotation.models import Assignment, Campaign, CampaignItem
from recommendations.shared.api import api_responses, require_permission

MAX_LIMIT = 5000


class CampaignListApi(APIView):
    @extend_schema_serializer(component_name="Campaign")
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Campaign
            fields = [
                "id", "name", "mode", "status", "recommender_run", "generation_runs", "sample", "sample_size",
                "seed", "overlap", "items_per_annotator", "lease_minutes", "created_at", "closed_at",
            ]  # fmt: skip

    @extend_schema(operation_id="campaigns_list", responses=api_responses(OutputSerializer(many=True)))
    def get(self, request: Request) -> Response:
        require_permission(request, "annotation.view_campaign")
        campaigns = Campaign.objects.visible_to(request.user).prefetch_related("generation_runs")
        return Response(self.OutputSerializer(campaigns, many=True).data)


@extend_schema_serializer(component_name="RatingRow")
class RatingRowOutputSerializer(serializers.Serializer):
    """One answer of the rating export (``annotation.exports.EXPORT_FIELDS``)."""

    campaign_id = serializers.IntegerField()
    campaign_mode = serializers.ChoiceField(choices=Campaign.Mode.choices)
    campaign_routing = serializers.ChoiceField(choices=Campaign.Routing.choices)
    item_id = serializers.IntegerField()
    item_kind = serializers.ChoiceField(choices=CampaignItem.Kind.choices)
    assignment_id = serializers.IntegerField()
    position = serializers.IntegerField()
    annotator = serializers.CharField(help_text="The participant's pseudonym.")
    annotator_platform = serializers.CharField()
    annotator_flagged = serializers.BooleanField()
    annotator_excluded = serializers.BooleanField()
    criterion = serializers.CharField()
    value = serializers.IntegerField(allow_null=True, help_text="Likert answers.")
    choice = serializers.CharField(help_text="Pairwise answers (a, b, tie); attention checks (yes, no).")
    left_side = serializers.CharField(help_text="Pairwise: the explanation shown on the left (a or b).")
    swapped = serializers.BooleanField()
    revisions = serializers.IntegerField()
    check_passed = serializers.BooleanField(allow_null=True)
    served_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    seconds_on_task = serializers.FloatField(allow_null=True)
    visible_seconds = serializers.FloatField(allow_null=True)
    dataset = serializers.CharField()
    dataset_user = serializers.CharField()
    item_external_id = serializers.CharField()
    item_title = serializers.CharField()
    rank = serializers.IntegerField()
    recommender_run_id = serializers.IntegerField()
    algorithm = serializers.CharField()
    explanation_a_id = serializers.IntegerField()
    generation_run_a = serializers.IntegerField(allow_null=True)
    generator_a = serializers.CharField()
    adapter_a = serializers.CharField()
    prompt_a = serializers.CharField()
    explanation_b_id = serializers.IntegerField(allow_null=True)
    generation_run_b = serializers.IntegerField(allow_null=True)
    generator_b = serializers.CharField()
    adapter_b = serializers.CharField()
    prompt_b = serializers.CharField()
    claim_id = serializers.IntegerField(required=False, help_text="Claims campaigns: the labelled claim.")
    claim_number = serializers.IntegerField(required=False)
    claim_text = serializers.CharField(required=False)
    claim_start = serializers.IntegerField(required=False, help_text="The claim's span in the explanation.")
    claim_end = serializers.IntegerField(required=False)
    marked_spans = serializers.CharField(required=False, help_text="Words marked as unsupported: JSON offsets.")
    marked_text = serializers.CharField(required=False)


class CampaignRatingListApi(APIView):
    """The same rows as the CSV/JSONL export, a page at a time (``offset``, ``limit``)."""

    class FilterSerializer(serializers.Serializer):
        offset = serializers.IntegerField(min_value=0, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=500)
        include_excluded = serializers.BooleanField(default=False)

    @extend_schema_serializer(component_name="RatingPage")
    class OutputSerializer(serializers.Serializer):
        # Describes the response for the schema; the rows themselves are the export's dicts,
        # passed through unchanged so that the API and the CSV cannot disagree.
        offset = serializers.IntegerField()
        limit = serializers.IntegerField()
        has_more = serializers.BooleanField()
        results = RatingRowOutputSerializer(many=True)

    @extend_schema(
        operation_id="campaigns_ratings_list",
        parameters=[FilterSerializer],
        responses=api_responses(OutputSerializer, 400, 404),
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        require_permission(request, "annotation.view_campaign")
        campaign = get_object_or_404(Campaign.objects.visible_to(request.user), pk=campaign_id)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        offset, limit = filters.validated_data["offset"], filters.validated_data["limit"]
        rows = rating_export_rows(campaign, include_excluded=filters.validated_data["include_excluded"])
        page = list(islice(rows, offset, offset + limit + 1))
        return Response({"offset": offset, "limit": limit, "has_more": len(page) > limit, "results": page[:limit]})


@extend_schema_serializer(component_name="Assignment")
class AssignmentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Assignment
        fields = ["id", "campaign", "position", "status", "served_at", "submitted_at", "revisions"]


@extend_schema_serializer(component_name="AssignmentDetail")
class AssignmentDetailOutputSerializer(AssignmentOutputSerializer):
    answers = serializers.DictField(
        help_text="Criterion name → the answer: a Likert value (integer) or a pairwise choice (a, b, tie)."
    )

    class Meta(AssignmentOutputSerializer.Meta):
        fields = [*AssignmentOutputSerializer.Meta.fields, "answers"]


class AssignmentListApi(APIView):
    """The signed-in annotator's own assignments; never anyone else's."""

    @extend_schema(operation_id="assignments_list", responses=api_responses(AssignmentOutputSerializer(many=True)))
    def get(self, request: Request) -> Response:
        assignments = Assignment.objects.of_user(request.user).order_by("campaign_id", "position")
        return Response(AssignmentOutputSerializer(assignments, many=True).data)


class AssignmentDetailApi(APIView):
    @extend_schema(operation_id="assignments_retrieve", responses=api_responses(AssignmentDetailOutputSerializer, 404))
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = get_object_or_404(Assignment.objects.of_user(request.user), pk=assignment_id)
        data = AssignmentOutputSerializer(assignment).data
        data["answers"] = {
            rating.criterion.name: rating.answer for rating in assignment.ratings.select_related("criterion")
        }
        return Response(data)
