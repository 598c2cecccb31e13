"""The one job engine: every kind cancels, resumes, retries and requeues the same way, from
its page and from the API."""

from dataclasses import replace

import pytest
from django.urls import reverse

from explanations.llm import BackendError
from explanations.models import AnswerMode, AttributeProbe, JudgeRun, JudgeVerdict, ProbeAnswer, TextMetrics
from explanations.services import text_metrics
from explanations.services.claims import claim_check_start
from explanations.services.engine import KINDS, JobActionRefused, requeue_all
from explanations.services.judging import JUDGE, judge_chunk_run, judge_run_start
from explanations.services.probing import PROBE, probe_chunk_run, probe_start
from explanations.services.text_metrics import TEXT_METRICS, text_metrics_request, text_metrics_run
from tests.annotation.factories import explained_runs
from tests.conftest import client_for
from tests.explanations.scripted import scripted_judge

pytestmark = pytest.mark.django_db

RUBRIC = [{"name": "overall", "question": "Is it good?", "scale_min": 1, "scale_max": 5}]


def _judge_run(runs, answer=lambda prompt: "Winner: tie", chunk_size=2) -> JudgeRun:
    judge, _ = scripted_judge(answer)
    return judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, chunk_size=chunk_size, enqueue=False
    )


def _probe(runs, answer=lambda prompt: "Answer: 24") -> AttributeProbe:
    # Factory users are aged 20 + their index; explained without the profile, so probable.
    prober, _ = scripted_judge(answer, name="scripted-prober")
    return probe_start(
        created_by=None,
        prober=prober,
        generation_run=runs[0],
        target="age",
        answer_mode=AnswerMode.TEXT,
        enqueue=False,
    )


def test_every_kind_is_registered_once_with_its_task() -> None:
    assert {name: kind.task for name, kind in KINDS.items()} == {
        "run": "explanations.generate_chunk",
        "judge": "explanations.judge_chunk",
        "probe": "explanations.probe_chunk",
        "text_metrics": "explanations.text_metrics",
        "claim_check": "explanations.claim_check_chunk",
    }


def test_a_cancelled_judge_run_skips_its_chunks_and_resumes_where_it_stopped(
    django_capture_on_commit_callbacks,
) -> None:
    run = _judge_run(explained_runs(n_users=2, n_runs=2))  # 4 verdicts, 2 chunks
    judge_chunk_run(run_id=run.pk, chunk=0)

    JUDGE.act(run, "cancel")
    judge_chunk_run(run_id=run.pk, chunk=1)  # a chunk delivered after the cancel does nothing
    assert run.status == JudgeRun.Status.CANCELLED
    assert JudgeVerdict.objects.filter(judge_run=run, status="pending").count() == 2

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        JUDGE.act(run, "resume")
    assert run.status == JudgeRun.Status.RUNNING and len(enqueued) == 1  # only the chunk with work
    judge_chunk_run(run_id=run.pk, chunk=1)
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.SUCCEEDED and run.progress_done == 4 and run.phase.startswith("4 judged")


def test_a_probe_retries_its_failed_answers_like_every_chunked_job() -> None:
    state = {"down": True}

    def answer(prompt: str) -> str:
        if state["down"]:
            raise BackendError("prober unreachable")
        return "Answer: 24"

    probe = _probe(explained_runs(n_users=3, n_runs=1, include_profile=False), answer)
    for chunk in PROBE.pending_chunks(probe):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)
    probe.refresh_from_db()
    assert probe.status == AttributeProbe.Status.SUCCEEDED and probe.phase.endswith("6 failed")
    assert set(ProbeAnswer.objects.filter(probe=probe).values_list("error", flat=True)) == {"prober unreachable"}

    state["down"] = False
    PROBE.act(probe, "retry")
    for chunk in PROBE.pending_chunks(probe):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)
    probe.refresh_from_db()
    assert probe.phase == "6 answered, 0 unparsed, 0 failed"
    assert set(ProbeAnswer.objects.filter(probe=probe).values_list("attempts", flat=True)) == {2}


def test_an_action_the_status_does_not_allow_is_refused_and_changes_nothing() -> None:
    run = _judge_run(explained_runs(n_users=2, n_runs=2))
    with pytest.raises(JobActionRefused, match="a running judge run cannot be resumed"):
        JUDGE.act(run, "resume")
    with pytest.raises(JobActionRefused, match="cannot be retried"):
        JUDGE.act(run, "retry")  # running, and nothing failed
    with pytest.raises(JobActionRefused, match="unknown action"):
        JUDGE.act(run, "delete")
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.RUNNING and not run.cancel_requested


def test_text_metrics_cancel_resume_and_retry_as_one_unit(monkeypatch, django_capture_on_commit_callbacks) -> None:
    runs = explained_runs(n_users=2, n_runs=1)
    job = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)

    TEXT_METRICS.act(job, "cancel")
    text_metrics_run(metrics_id=job.pk)  # a cancelled job is never claimed
    assert job.status == TextMetrics.Status.CANCELLED and job.metrics is None

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        TEXT_METRICS.act(job, "resume")
    assert job.status == TextMetrics.Status.PENDING and len(enqueued) == 1

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("explanations.services.text_metrics.generation_run_text_metrics", broken)
    with pytest.raises(RuntimeError):
        text_metrics_run(metrics_id=job.pk)
    job.refresh_from_db()
    assert job.status == TextMetrics.Status.FAILED and "disk full" in job.error
    monkeypatch.undo()

    TEXT_METRICS.act(job, "retry")
    text_metrics_run(metrics_id=job.pk)
    job.refresh_from_db()
    assert job.status == TextMetrics.Status.SUCCEEDED and job.phase == "2 explanations"
    assert job.metrics is not None and job.metrics["n"] == 2


def test_a_text_metrics_job_cancelled_while_it_computes_keeps_no_result() -> None:
    job = text_metrics_request(run=explained_runs(n_users=2, n_runs=1)[0], embeddings=False, enqueue=False)

    def cancelled_meanwhile(running: TextMetrics) -> dict:
        TEXT_METRICS.cancel(running)  # someone presses Cancel while the worker computes
        return text_metrics._compute(running)

    replace(TEXT_METRICS, process=cancelled_meanwhile).run(job.pk)
    job.refresh_from_db()
    assert job.status == TextMetrics.Status.CANCELLED and job.metrics is None


def test_a_starting_worker_requeues_every_kind(django_capture_on_commit_callbacks, monkeypatch) -> None:
    runs = explained_runs(n_users=2, n_runs=2, include_profile=False)
    _judge_run(runs)  # 4 verdicts in 2 chunks, nothing run
    _probe(runs)  # 4 answers, 1 chunk
    checker, _ = scripted_judge(lambda prompt: "Supported: yes", name="scripted-checker")
    claim_check_start(created_by=None, checker=checker, generation_run=runs[0], enqueue=False)  # 1 chunk
    text_metrics_request(run=runs[0], embeddings=False, enqueue=False)
    sent: list[int] = []
    monkeypatch.setattr("explanations.tasks.text_metrics_run_task.delay", sent.append)

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        counts = requeue_all()
    # The explanations of explained_runs were written directly: no generation run is running.
    assert counts == {"run": 0, "judge": 2, "probe": 1, "text_metrics": 1, "claim_check": 1}
    assert len(enqueued) == 4 and len(sent) == 1


def test_admins_cancel_and_resume_a_judge_run_from_its_page_and_researchers_see_no_buttons(
    admin_user, researcher
) -> None:
    run = _judge_run(explained_runs(n_users=2, n_runs=2))
    admin, reader = client_for(admin_user), client_for(researcher)
    page = reverse("explanations:judge_detail", args=[run.pk])
    cancel = reverse("explanations:judge_cancel", args=[run.pk])

    assert cancel in admin.get(page).content.decode()
    assert cancel not in reader.get(page).content.decode()
    assert reader.post(cancel).status_code == 403

    assert admin.post(cancel)["Location"] == page
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.CANCELLED
    html = admin.get(page).content.decode()
    assert reverse("explanations:judge_resume", args=[run.pk]) in html and cancel not in html

    # Pressed twice (a stale page): nothing changes, and the message says why.
    response = admin.post(cancel, follow=True)
    assert "a cancelled judge run cannot be cancelled" in response.content.decode()


def test_the_api_acts_on_any_kind_and_answers_409_when_the_status_forbids_it(admin_user, researcher) -> None:
    probe = _probe(explained_runs(n_users=2, n_runs=1, include_profile=False))
    admin = client_for(admin_user)
    url = reverse("explanations:api_job_action", args=["probe", probe.pk, "cancel"])

    response = admin.post(url)
    assert response.status_code == 200
    assert response.json() | {"id": 0} == {
        "id": 0,
        "kind": "probe",
        "status": "cancelled",
        "phase": "",
        "progress_done": 0,
        "progress_total": 4,
    }
    again = admin.post(url)
    assert again.status_code == 409 and again.json() == {"detail": "a cancelled attribute probe cannot be cancelled"}
    assert client_for(researcher).post(url).status_code == 403
    assert admin.post(reverse("explanations:api_job_action", args=["campaign", probe.pk, "cancel"])).status_code == 404
    assert admin.post(reverse("explanations:api_job_action", args=["probe", probe.pk, "delete"])).status_code == 404


def test_text_metrics_pages_list_jobs_and_escape_what_the_metrics_carry(admin_user) -> None:
    runs = explained_runs(n_users=2, n_runs=1)
    job = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)
    TextMetrics.objects.filter(pk=job.pk).update(
        status=TextMetrics.Status.SUCCEEDED, metrics={"n": 2, "grounding": {"examples": ["<script>x</script>"]}}
    )
    client = client_for(admin_user)

    listing = client.get(reverse("explanations:text_metrics_list")).content.decode()
    assert reverse("explanations:text_metrics_detail", args=[job.pk]) in listing
    detail = client.get(reverse("explanations:text_metrics_detail", args=[job.pk])).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in detail and "<script>x</script>" not in detail
    assert reverse("explanations:text_metrics_cancel", args=[job.pk]) not in detail  # finished: nothing to cancel
