"""Generation runs: rows created up front, chunks generated in batches, idempotent, cancellable."""

import pytest

from explanations.models import Explanation, GenerationRun
from explanations.prompts import Controls, prompt_context
from explanations.services.generation import (
    generation_chunk_run,
    generation_run_cancel,
    generation_run_resume,
    generation_run_retry_failed,
    generation_run_start,
    generation_runs_requeue_stalled,
)
from explanations.services.generators import GenerationError
from recommendations.models import Interaction
from recommendations.services.external import external_run_import
from tests.explanations.factories import template, tiny_generator, trained_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(tiny_model_dir):
    return trained_run(n_users=12, k=3), tiny_generator(tiny_model_dir), template()


def _start(setup, django_capture_on_commit_callbacks, **kwargs):
    run, generator, tmpl = setup
    with django_capture_on_commit_callbacks() as callbacks:
        generation = generation_run_start(
            created_by=None,
            recommender_run=run,
            generator=generator,
            template=tmpl,
            **({"sample_size": 5, "depth": 2, "chunk_size": 4} | kwargs),
        )
    return generation, callbacks


def test_start_creates_pending_rows_and_one_task_per_chunk(setup, django_capture_on_commit_callbacks) -> None:
    generation, callbacks = _start(setup, django_capture_on_commit_callbacks)

    rows = Explanation.objects.filter(generation_run=generation)
    assert generation.n_total == rows.count() == 10  # 5 users x top 2
    assert set(rows.values_list("status", flat=True)) == {Explanation.Status.PENDING}
    assert sorted(set(rows.values_list("chunk", flat=True))) == [0, 1, 2]
    assert len(callbacks) == 3
    assert {r.recommendation.rank for r in rows} == {1, 2}


def test_chunks_generate_every_row_once_and_finish_the_run(setup, django_capture_on_commit_callbacks) -> None:
    generation, _ = _start(setup, django_capture_on_commit_callbacks)

    for chunk in range(3):
        generation_chunk_run(run_id=generation.pk, chunk=chunk)

    generation.refresh_from_db()
    assert generation.status == GenerationRun.Status.SUCCEEDED
    done = list(Explanation.objects.filter(generation_run=generation))
    assert all(e.status == Explanation.Status.DONE and e.attempts == 1 for e in done)
    assert all(e.prompt and e.prompt[-1]["role"] == "user" and e.completion_tokens for e in done)
    assert all(e.finish_reason in {"stop", "length"} and e.latency_ms and e.latency_ms > 0 for e in done)


def test_running_a_chunk_twice_changes_nothing(setup, django_capture_on_commit_callbacks) -> None:
    generation, _ = _start(setup, django_capture_on_commit_callbacks)
    generation_chunk_run(run_id=generation.pk, chunk=0)
    before = list(
        Explanation.objects.filter(generation_run=generation, chunk=0).values_list(
            "id", "text", "attempts", "generated_at"
        )
    )

    generation_chunk_run(run_id=generation.pk, chunk=0)

    after = list(
        Explanation.objects.filter(generation_run=generation, chunk=0).values_list(
            "id", "text", "attempts", "generated_at"
        )
    )
    assert before == after and Explanation.objects.filter(generation_run=generation).count() == 10


def test_cancel_stops_new_chunks_and_resume_finishes_the_rest(setup, django_capture_on_commit_callbacks) -> None:
    generation, _ = _start(setup, django_capture_on_commit_callbacks)
    generation_chunk_run(run_id=generation.pk, chunk=0)

    generation_run_cancel(run=generation)
    generation_chunk_run(run_id=generation.pk, chunk=1)  # a task that was already queued

    assert generation.status == GenerationRun.Status.CANCELLED
    assert Explanation.objects.filter(generation_run=generation, status=Explanation.Status.PENDING).count() == 6
    with django_capture_on_commit_callbacks() as callbacks:
        generation_run_resume(run=generation)
    assert generation.status == GenerationRun.Status.RUNNING and len(callbacks) == 2
    for chunk in (1, 2):
        generation_chunk_run(run_id=generation.pk, chunk=chunk)
    generation.refresh_from_db()
    assert generation.status == GenerationRun.Status.SUCCEEDED
    assert Explanation.objects.filter(generation_run=generation, status=Explanation.Status.DONE).count() == 10


def test_backend_failure_is_recorded_per_explanation_and_retryable(
    setup, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    generation, _ = _start(setup, django_capture_on_commit_callbacks)
    from explanations.llm import BackendError

    def broken(spec):
        raise BackendError("cannot reach http://gpu-box:8000/v1: connection refused after 4 attempts")

    monkeypatch.setattr("explanations.services.chunks.load_backend", broken)
    for chunk in range(3):
        generation_chunk_run(run_id=generation.pk, chunk=chunk)
    generation.refresh_from_db()
    failed = Explanation.objects.filter(generation_run=generation, status=Explanation.Status.FAILED)
    assert generation.status == GenerationRun.Status.SUCCEEDED and failed.count() == 10
    assert "connection refused" in failed.first().error  # type: ignore[union-attr]

    monkeypatch.undo()
    with django_capture_on_commit_callbacks() as callbacks:
        generation_run_retry_failed(run=generation)
    assert len(callbacks) == 3
    for chunk in range(3):
        generation_chunk_run(run_id=generation.pk, chunk=chunk)
    assert (
        Explanation.objects.filter(generation_run=generation, status=Explanation.Status.DONE, attempts=2).count() == 10
    )


def test_stalled_chunks_are_requeued_when_a_worker_starts(setup, django_capture_on_commit_callbacks) -> None:
    generation, _ = _start(setup, django_capture_on_commit_callbacks)
    generation_chunk_run(run_id=generation.pk, chunk=1)

    with django_capture_on_commit_callbacks() as callbacks:
        assert generation_runs_requeue_stalled() == 2

    assert len(callbacks) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 4}, r"depth must be between 1 and the run's K \(3\)"),
        ({"chunk_size": 0}, "chunk size must be 1 to 256"),
        ({"controls": Controls(max_words=0)}, "max words must be 1 to 500"),
    ],
)
def test_bad_requests_store_nothing(setup, django_capture_on_commit_callbacks, kwargs, message) -> None:
    with pytest.raises(GenerationError, match=message):
        _start(setup, django_capture_on_commit_callbacks, **kwargs)

    assert not GenerationRun.objects.exists() and not Explanation.objects.exists()


def test_a_missing_model_is_refused_up_front(setup, django_capture_on_commit_callbacks, tmp_path) -> None:
    run, generator, tmpl = setup
    generator.model = str(tmp_path / "nowhere")
    generator.save()

    with pytest.raises(GenerationError, match="no model at"):
        _start((run, generator, tmpl), django_capture_on_commit_callbacks)


@pytest.mark.parametrize(("sample", "expected"), [("all", 12), ("first", 5), ("random", 5), ("stratified", 5)])
def test_user_samples(setup, django_capture_on_commit_callbacks, sample, expected) -> None:
    generation, _ = _start(setup, django_capture_on_commit_callbacks, sample=sample, depth=1)

    users = set(Explanation.objects.filter(generation_run=generation).values_list("recommendation__user_id", flat=True))
    assert len(users) == expected
    again, _ = _start(setup, django_capture_on_commit_callbacks, sample=sample, depth=1)
    assert users == set(
        Explanation.objects.filter(generation_run=again).values_list("recommendation__user_id", flat=True)
    )


def test_runs_sample_seeded_random_users_by_default_not_the_first_n(setup) -> None:
    run, generator, tmpl = setup

    def users(**kwargs) -> set[int]:
        generation = generation_run_start(
            created_by=None,
            recommender_run=run,
            generator=generator,
            template=tmpl,
            sample_size=4,
            enqueue=False,
            **kwargs,
        )
        assert generation.sample == GenerationRun.Sample.RANDOM
        return set(
            Explanation.objects.filter(generation_run=generation).values_list("recommendation__user_id", flat=True)
        )

    first_four = set(sorted(set(run.recommendations.values_list("user_id", flat=True)))[:4])
    drawn = {seed: users(seed=seed) for seed in range(4)}
    assert drawn[0] == users(seed=0)  # seeded: the same users again
    assert any(sample != first_four for sample in drawn.values()) and len(set(map(frozenset, drawn.values()))) > 1


def test_imported_lists_without_a_split_are_explained_from_the_whole_history(
    tiny_model_dir, django_capture_on_commit_callbacks
) -> None:
    trained = trained_run(n_users=4, k=2)
    lines = ["user,item,rank"]
    for user in trained.dataset.users.all()[:3]:
        seen = set(Interaction.objects.filter(user=user).values_list("item__external_id", flat=True))
        unseen = trained.dataset.items.exclude(external_id__in=seen).order_by("id")[:2]
        lines += [f"{user.external_id},{item.external_id},{rank}" for rank, item in enumerate(unseen, 1)]
    imported = external_run_import(
        dataset=trained.dataset, name="outside", data="\n".join(lines).encode(), file_name="outside.csv"
    )
    generation, _ = _start((imported, tiny_generator(tiny_model_dir), template()), django_capture_on_commit_callbacks)

    for chunk in set(Explanation.objects.filter(generation_run=generation).values_list("chunk", flat=True)):
        generation_chunk_run(run_id=generation.pk, chunk=chunk)

    generation.refresh_from_db()
    assert imported.split is None and generation.status == GenerationRun.Status.SUCCEEDED
    row = Explanation.objects.filter(generation_run=generation).select_related("recommendation__user").first()
    assert row is not None and row.status == Explanation.Status.DONE
    # The newest event, which a leave-last-out split would hold out, is in the prompt's history.
    newest = Interaction.objects.filter(user=row.recommendation.user).order_by("-timestamp", "-id").first()
    context = prompt_context(row.recommendation, imported.split, Controls(history_length=100))
    assert newest is not None and context["history"][-1]["title"] == newest.item.title
