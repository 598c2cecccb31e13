"""A generation run survives its worker being killed mid-run: no lost rows, no duplicates."""

import signal
import time

import pytest

from explanations.models import Explanation, GenerationRun
from explanations.services.generation import generation_run_start
from tests.conftest import start_worker, stop_worker, wait_for
from tests.explanations.factories import template, tiny_generator, trained_run
from tests.explanations.tiny import build_tiny_llama

pytestmark = pytest.mark.flow


def test_killed_worker_mid_run_then_restarted_finishes_with_no_duplicates(worker_env, tmp_path) -> None:
    # Large enough that a chunk takes a noticeable moment on a CPU, so the kill lands mid-run.
    model = build_tiny_llama(tmp_path / "model", hidden_size=128, layers=2)
    generator = tiny_generator(model)
    generator.max_new_tokens = 24
    generator.save()
    run = trained_run(n_users=12, k=3)
    log = tmp_path / "worker.log"
    worker = start_worker(log, worker_env)

    generation = generation_run_start(
        created_by=None,
        recommender_run=run,
        generator=generator,
        template=template(),
        depth=1,
        sample="all",
        chunk_size=2,
    )
    rows = Explanation.objects.filter(generation_run=generation)
    assert rows.count() == 12
    wait_for(lambda: rows.filter(status=Explanation.Status.DONE).count() >= 2, timeout=120, every=0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    done_at_kill = rows.filter(status=Explanation.Status.DONE).count()
    time.sleep(0.5)
    assert rows.filter(status=Explanation.Status.PENDING).exists(), (
        "the run finished before the kill; enlarge the model"
    )

    restarted = start_worker(log, worker_env)
    try:
        wait_for(lambda: GenerationRun.objects.get(pk=generation.pk).is_terminal, timeout=240)
    finally:
        stop_worker(restarted)

    generation.refresh_from_db()
    assert generation.status == GenerationRun.Status.SUCCEEDED
    assert rows.count() == 12 and rows.filter(status=Explanation.Status.DONE).count() == 12
    assert rows.values("recommendation").distinct().count() == 12
    assert done_at_kill < 12
