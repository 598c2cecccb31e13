"""JSON endpoints: start a generation run, read its status, list its explanations (DRF)."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from explanations.models import (
    AnswerMode,
    Explanation,
    GenerationRun,
    Generator,
    JudgeRun,
    JudgeVerdict,
    PromptTemplate,
)
from explanations.prompts import Controls
from explanations.querysets import generation_run_stats, judge_run_stats
from explanations.services.engine import ACTIONS, KINDS, JobActionRefused
from explanations.services.generation import generation_run_start
from explanations.services.generators import GenerationError
from recommendations.models import RecommenderRun
from recommendations.shared.api import PAGE_PARAMETERS, api_responses, paginated, require_permission
from recommendations.shared.formfields import INT_MAX, INT_MIN, SMALL_INT_MAX
from recommendations.shared.jobs import Job
from recommendations.shared.pagination import ApiPagination


class GenerationRunStartApi(APIView):
    @extend_schema_serializer(component_name="GenerationRunStart")
    class InputSerializer(serializers.Serializer):
        recommender_run = serializers.PrimaryKeyRelatedField(queryset=RecommenderRun.objects.all())
        generator = serializers.PrimaryKeyRelatedField(queryset=Generator.objects.all())
        template = serializers.PrimaryKeyRelatedField(queryset=PromptTemplate.objects.all())
        # Bounds are the columns' (small / 32-bit integers on PostgreSQL): anything outside is a 400.
        depth = serializers.IntegerField(default=1, min_value=1, max_value=SMALL_INT_MAX)
        sample = serializers.ChoiceField(choices=GenerationRun.Sample.choices, default=GenerationRun.Sample.RANDOM)
        sample_size = serializers.IntegerField(default=50, min_value=1, max_value=INT_MAX)
        seed = serializers.IntegerField(default=0, min_value=INT_MIN, max_value=INT_MAX)
        history_length = serializers.IntegerField(default=10, min_value=0, max_value=200)
        max_words = serializers.IntegerField(default=75, min_value=1, max_value=500)
        aspects = serializers.ListField(child=serializers.CharField(), default=list)
        tone = serializers.ChoiceField(choices=GenerationRun.Tone.choices, default=GenerationRun.Tone.NEUTRAL)
        second_person = serializers.BooleanField(default=True)
        include_profile = serializers.BooleanField(default=True)
        chunk_size = serializers.IntegerField(default=8, min_value=1, max_value=256)

    @extend_schema_serializer(component_name="GenerationRunStarted")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=GenerationRun.Status.choices)
        total = serializers.IntegerField(help_text="Explanations the run will write.")

    @extend_schema(
        operation_id="generation_runs_create",
        request=InputSerializer,
        responses=api_responses(OutputSerializer, 400, status_code=201),
    )
    def post(self, request: Request) -> Response:
        require_permission(request, "explanations.add_generationrun")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        controls = Controls(
            history_length=values["history_length"],
            max_words=values["max_words"],
            aspects=tuple(values["aspects"]),
            tone=values["tone"],
            second_person=values["second_person"],
            include_profile=values["include_profile"],
        )
        try:
            run = generation_run_start(
                created_by=request.user,
                recommender_run=values["recommender_run"],
                generator=values["generator"],
                template=values["template"],
                depth=values["depth"],
                sample=values["sample"],
                sample_size=values["sample_size"],
                seed=values["seed"],
                controls=controls,
                chunk_size=values["chunk_size"],
            )
        except GenerationError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        output = self.OutputSerializer({"id": run.pk, "status": run.status, "total": run.n_total})
        return Response(output.data, status=status.HTTP_201_CREATED)


class GenerationRunDetailApi(APIView):
    @extend_schema_serializer(component_name="GenerationRunProgress")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=GenerationRun.Status.choices)
        cancel_requested = serializers.BooleanField()
        lineage = serializers.DictField(help_text="What the run used, as recorded when it started (no server paths).")
        done = serializers.IntegerField()
        failed = serializers.IntegerField()
        pending = serializers.IntegerField()
        total = serializers.IntegerField()
        tokens = serializers.IntegerField(allow_null=True, help_text="Completion tokens so far.")
        percent = serializers.IntegerField()
        elapsed_seconds = serializers.FloatField()
        per_second = serializers.FloatField()
        tokens_per_second = serializers.FloatField()
        eta_seconds = serializers.FloatField(allow_null=True)

    @extend_schema(operation_id="generation_runs_retrieve", responses=api_responses(OutputSerializer, 404))
    def get(self, request: Request, run_id: int) -> Response:
        require_permission(request, "explanations.view_generationrun")
        run = get_object_or_404(GenerationRun, pk=run_id)
        stats = generation_run_stats(run)
        # Lineage as recorded when the run started; names and checksums, never server paths.
        row = {
            "id": run.pk,
            "status": run.status,
            "cancel_requested": run.cancel_requested,
            "lineage": run.public_lineage(),
        }
        row |= stats
        return Response(self.OutputSerializer(row).data)


class ExplanationListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Explanation.Status.choices, required=False)

    @extend_schema_serializer(component_name="Explanation")
    class OutputSerializer(serializers.ModelSerializer):
        user = serializers.CharField(source="recommendation.user.external_id")
        item = serializers.CharField(source="recommendation.item.external_id")
        item_title = serializers.CharField(source="recommendation.item.title")
        rank = serializers.IntegerField(source="recommendation.rank")

        class Meta:
            model = Explanation
            fields = [
                "id", "recommendation", "user", "item", "item_title", "rank", "status", "text", "prompt",
                "prompt_tokens", "completion_tokens", "latency_ms", "finish_reason", "error", "generated_at",
            ]  # fmt: skip

    @extend_schema(
        operation_id="generation_runs_explanations_list",
        parameters=[
            OpenApiParameter(
                "status", str, enum=Explanation.Status.values, description="Only explanations in this state."
            ),
            *PAGE_PARAMETERS,
        ],
        responses=api_responses(paginated(OutputSerializer, "PaginatedExplanationList"), 400, 404),
    )
    def get(self, request: Request, run_id: int) -> Response:
        require_permission(request, "explanations.view_explanation")
        run = get_object_or_404(GenerationRun, pk=run_id)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = Explanation.objects.filter(generation_run=run).select_related(
            "recommendation__user", "recommendation__item"
        )
        if wanted := filters.validated_data.get("status"):
            rows = rows.filter(status=wanted)
        paginator = ApiPagination()
        page = paginator.paginate_queryset(rows.order_by("id"), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class JudgeRunDetailApi(APIView):
    @extend_schema_serializer(component_name="JudgeRun")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="JudgeSlots")
        class SlotsSerializer(serializers.Serializer):
            first = serializers.IntegerField()
            second = serializers.IntegerField()
            tie = serializers.IntegerField()

        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=JudgeRun.Status.choices)
        mode = serializers.ChoiceField(choices=JudgeRun.Mode.choices)
        answer_mode = serializers.ChoiceField(choices=AnswerMode.choices)
        fallback = serializers.CharField()
        judge = serializers.IntegerField(help_text="The judging generator's id.")
        generation_runs = serializers.ListField(child=serializers.IntegerField())
        held_out_recommendations = serializers.IntegerField()
        lineage = serializers.DictField(help_text="The judge as recorded when the run started (no server paths).")
        done = serializers.IntegerField()
        unparsed = serializers.IntegerField()
        failed = serializers.IntegerField()
        pending = serializers.IntegerField()
        total = serializers.IntegerField()
        percent = serializers.IntegerField()
        slots = SlotsSerializer(help_text="Pairwise runs: how often each slot won, before orders are combined.")

    @extend_schema(operation_id="judge_runs_retrieve", responses=api_responses(OutputSerializer, 404))
    def get(self, request: Request, run_id: int) -> Response:
        require_permission(request, "explanations.view_judgerun")
        run = get_object_or_404(JudgeRun, pk=run_id)
        runs = list(run.generation_runs.values_list("pk", flat=True))
        row = {
            "id": run.pk,
            "status": run.status,
            "mode": run.mode,
            "answer_mode": run.answer_mode,
            "fallback": run.fallback,
            "judge": run.judge_id,
            "generation_runs": runs,
            "held_out_recommendations": run.n_held_out,
            "lineage": run.public_lineage(),
        } | judge_run_stats(run)
        return Response(self.OutputSerializer(row).data)


class JudgeVerdictListApi(APIView):
    @extend_schema_serializer(component_name="JudgeVerdict")
    class OutputSerializer(serializers.ModelSerializer):
        first_generation_run = serializers.IntegerField(source="first.generation_run_id")
        second_generation_run = serializers.IntegerField(source="second.generation_run_id", allow_null=True)

        class Meta:
            model = JudgeVerdict
            fields = [
                "id", "recommendation", "first", "second", "first_generation_run", "second_generation_run",
                "status", "output", "parsed", "probabilities", "parse_error", "error", "judged_at",
            ]  # fmt: skip

    @extend_schema(
        operation_id="judge_runs_verdicts_list",
        parameters=PAGE_PARAMETERS,
        responses=api_responses(paginated(OutputSerializer, "PaginatedJudgeVerdictList"), 404),
    )
    def get(self, request: Request, run_id: int) -> Response:
        require_permission(request, "explanations.view_judgerun")
        run = get_object_or_404(JudgeRun, pk=run_id)
        verdicts = JudgeVerdict.objects.filter(judge_run=run).select_related("first", "second").order_by("id")
        paginator = ApiPagination()
        page = paginator.paginate_queryset(verdicts, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class JobActionApi(APIView):
    """Cancel, resume or retry any job the engine runs (``explanations.services.engine``):
    ``kind`` is ``run`` (generation), ``judge``, ``probe`` or ``text_metrics``."""

    @extend_schema_serializer(component_name="JobState")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.CharField()
        status = serializers.ChoiceField(choices=Job.Status.choices)
        phase = serializers.CharField()
        progress_done = serializers.IntegerField()
        progress_total = serializers.IntegerField()

    @extend_schema(
        operation_id="jobs_action",
        request=None,
        parameters=[
            OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=sorted(KINDS)),
            OpenApiParameter("action", str, OpenApiParameter.PATH, enum=list(ACTIONS)),
        ],
        responses=api_responses(OutputSerializer, 404, 409),
    )
    def post(self, request: Request, kind: str, job_id: int, action: str) -> Response:
        # The same permission as the pages' buttons: change on the job's model (admins).
        job_kind = KINDS.get(kind)
        if job_kind is None or action not in ACTIONS:
            raise Http404("no such job kind or action")
        meta = job_kind.job_model._meta
        require_permission(request, f"{meta.app_label}.change_{meta.model_name}")
        job = get_object_or_404(job_kind.job_model, pk=job_id)
        try:
            job = job_kind.act(job, action)
        except JobActionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        row = {
            "id": job.pk,
            "kind": kind,
            "status": job.status,
            "phase": job.phase,
            "progress_done": job.progress_done,
            "progress_total": job.progress_total,
        }
        return Response(self.OutputSerializer(row).data)
