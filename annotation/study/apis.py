"""The study report as JSON, for researchers' scripts (the same report as the study page)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.study.forms import StudyForm
from annotation.study.report import study_report_cached
from recommendations.shared.api import MAX_ID, api_responses, require_permission


class StudyReportApi(APIView):
    """The study report as JSON:
    ``?recommender_run=<id>&runs=<id>&runs=<id>[&seed=&exclude_flagged=1&reference_run=<id>]``."""

    class FilterSerializer(serializers.Serializer):
        # Checked before the form: ids beyond what the database stores (an OverflowError on
        # SQLite inside the form's ``pk__in``) and seeds numpy refuses are a 400 here.
        recommender_run = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, help_text="A succeeded recommender run."
        )
        runs = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
            min_length=1,
            help_text="Succeeded generation runs of that recommender run (repeat the parameter).",
        )
        seed = serializers.IntegerField(
            required=False, min_value=0, max_value=2**32 - 1, help_text="Seed of the bootstrap and permutation tests."
        )
        exclude_flagged = serializers.BooleanField(required=False, help_text="Leave out flagged annotators.")
        reference_run = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=MAX_ID,
            help_text="A generation run for BLEU, ROUGE-L and embedding similarity.",
        )

    @extend_schema(
        operation_id="study_report_retrieve",
        parameters=[FilterSerializer],
        responses=api_responses(
            OpenApiResponse(OpenApiTypes.OBJECT, description="The study report: every table of the study page."),
            400,
        ),
    )
    def get(self, request: Request) -> Response:
        require_permission(request, "annotation.view_campaign")
        self.FilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        form = StudyForm(request.query_params)
        if not form.is_valid():
            return Response(form.errors.get_json_data(), status=400)
        report = study_report_cached(**form.report_arguments())
        return Response(report)
