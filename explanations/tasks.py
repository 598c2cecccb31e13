"""Celery entry points of the explanations app. Everything that loads an LLM runs on ``gpu``; text
metrics (a small embedding model at most) run on ``default``."""

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from explanations.services.adapters import adapter_training_run
from explanations.services.claims import claim_check_chunk_run
from explanations.services.engine import requeue_all
from explanations.services.generation import generation_chunk_run
from explanations.services.generators import bundled_model_prepare, generator_ensure_bundled
from explanations.services.judging import judge_chunk_run
from explanations.services.probing import probe_chunk_run
from explanations.services.text_metrics import text_metrics_run


@shared_task(name="explanations.generate_chunk", acks_late=True, reject_on_worker_lost=True)
def generation_chunk_run_task(run_id: int, chunk: int) -> None:
    """Generate chunk ``chunk`` of run ``run_id``.

    Idempotent (only PENDING rows are generated and written), so ``acks_late`` is safe: a
    message redelivered after its worker died simply finishes the chunk.
    """
    generation_chunk_run(run_id=run_id, chunk=chunk)


@worker_ready.connect
def _requeue_stalled_chunks(sender: Any = None, **kwargs: Any) -> None:
    # Every kind the engine runs (generation, judging, probes, text metrics). Only workers
    # that consume the gpu queue pick up chunks; requeueing from a default-only worker
    # would still be correct, just earlier than needed.
    requeue_all()


@shared_task(name="explanations.judge_chunk", acks_late=True, reject_on_worker_lost=True)
def judge_chunk_run_task(run_id: int, chunk: int) -> None:
    """Judge chunk ``chunk`` of judge run ``run_id``.

    Idempotent (only PENDING verdicts are judged and written), so ``acks_late`` is safe.
    """
    judge_chunk_run(run_id=run_id, chunk=chunk)


@shared_task(name="explanations.train_adapter")
def adapter_training_run_task(training_id: int) -> None:
    """Train adapter ``training_id``. Idempotent: only a PENDING training is run."""
    adapter_training_run(training_id=training_id)


@shared_task(name="explanations.prepare_bundled_model")
def bundled_model_prepare_task() -> None:
    """Convert the bundled GGUF into a model folder and register its generator. Idempotent."""
    bundled_model_prepare()
    generator_ensure_bundled()


@shared_task(name="explanations.probe_chunk", acks_late=True, reject_on_worker_lost=True)
def probe_chunk_run_task(probe_id: int, chunk: int) -> None:
    """Answer chunk ``chunk`` of attribute probe ``probe_id``.

    Idempotent (only PENDING answers are asked and written), so ``acks_late`` is safe.
    """
    probe_chunk_run(probe_id=probe_id, chunk=chunk)


@shared_task(name="explanations.claim_check_chunk", acks_late=True, reject_on_worker_lost=True)
def claim_check_chunk_run_task(check_id: int, chunk: int) -> None:
    """Check chunk ``chunk`` of claim check ``check_id``.

    Idempotent (only PENDING claims are asked and written), so ``acks_late`` is safe.
    """
    claim_check_chunk_run(check_id=check_id, chunk=chunk)


@shared_task(name="explanations.text_metrics")
def text_metrics_run_task(metrics_id: int) -> None:
    """Compute text metrics row ``metrics_id`` (CPU work: the default queue). Idempotent."""
    text_metrics_run(metrics_id=metrics_id)
