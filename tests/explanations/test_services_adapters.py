"""Adapter training: teacher examples, filters, a saved adapter, and a generator that uses it."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from explanations.models import AdapterTraining, Explanation, Generator
from explanations.services.adapters import adapter_training_run, adapter_training_start, teacher_examples
from explanations.services.generation import generation_chunk_run, generation_run_start
from explanations.services.generators import GenerationError
from explanations.texts import is_refusal
from tests.explanations.factories import template, tiny_generator, trained_run

pytestmark = pytest.mark.django_db

FAST = {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "max_length": 256}


@pytest.fixture
def teacher(tiny_model_dir, django_capture_on_commit_callbacks):
    run = trained_run(n_users=10, k=2)
    generator = tiny_generator(tiny_model_dir)
    with django_capture_on_commit_callbacks():
        generation = generation_run_start(
            created_by=None, recommender_run=run, generator=generator, template=template(), sample="all", chunk_size=10
        )
    generation_chunk_run(run_id=generation.pk, chunk=0)
    return generation


def _jsonl(rows: list[dict]) -> SimpleUploadedFile:
    return SimpleUploadedFile("teacher.jsonl", "\n".join(json.dumps(r) for r in rows).encode())


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("I'm sorry, but I cannot help with that.", True),
        ("As an AI, I don't watch films.", True),
        ("You loved Alien.", False),
    ],
)
def test_refusal_filter(text: str, refusal: bool) -> None:
    assert is_refusal(text) is refusal


def test_filters_drop_long_and_refusing_teacher_outputs(teacher) -> None:
    rows = list(Explanation.objects.filter(generation_run=teacher).order_by("id"))
    Explanation.objects.filter(pk=rows[0].pk).update(text="I'm sorry, I cannot explain this.")
    Explanation.objects.filter(pk=rows[1].pk).update(text="word " * 200)
    training = AdapterTraining(base_generator=teacher.generator, source_run=teacher, filter_max_words=75)

    examples, dropped = teacher_examples(training)

    assert dropped == 2 and len(examples) == 8
    assert examples[0].messages == rows[2].prompt and examples[0].response == rows[2].text


def test_training_on_a_generation_run_saves_an_adapter_and_a_generator(
    teacher, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        training = adapter_training_start(
            created_by=None, base_generator=teacher.generator, source_run=teacher, options=FAST
        )
    assert len(callbacks) == 1 and training.status == AdapterTraining.Status.PENDING

    adapter_training_run(training_id=training.pk)

    training.refresh_from_db()
    assert training.status == AdapterTraining.Status.SUCCEEDED, training.error
    assert training.n_train + training.n_validation == training.n_examples == 10
    assert Path(training.adapter_path, "adapter_config.json").is_file() and len(training.adapter_sha256) == 64
    assert training.train_losses and training.validation_losses[0][0] == 0
    tuned = Generator.objects.get(adapter_training=training)
    assert tuned.adapter_path == training.adapter_path and tuned.model == teacher.generator.model


def test_training_from_an_uploaded_jsonl(teacher) -> None:
    messages = [{"role": "user", "content": "why this movie ?"}]
    upload = _jsonl([{"messages": messages, "response": "you liked action movie"}] * 6)

    training = adapter_training_start(
        created_by=None, base_generator=teacher.generator, upload=upload, options=FAST, enqueue=False
    )
    adapter_training_run(training_id=training.pk)

    training.refresh_from_db()
    assert training.status == AdapterTraining.Status.SUCCEEDED, training.error
    assert training.n_examples == 6


def test_a_malformed_jsonl_line_fails_the_training_with_its_line(teacher) -> None:
    upload = _jsonl([{"messages": [], "response": "ok"}, {"prompt": "old format"}])

    training = adapter_training_start(created_by=None, base_generator=teacher.generator, upload=upload, enqueue=False)
    adapter_training_run(training_id=training.pk)

    training.refresh_from_db()
    assert training.status == AdapterTraining.Status.FAILED and "examples.jsonl line 2" in training.error


@pytest.mark.parametrize("case", ["no teacher", "two teachers", "adapter base", "openai base", "bad option"])
def test_bad_requests_store_nothing(teacher, case: str) -> None:
    base = teacher.generator
    kwargs: dict = {"created_by": None, "base_generator": base, "source_run": teacher}
    if case == "no teacher":
        kwargs["source_run"] = None
    elif case == "two teachers":
        kwargs["upload"] = _jsonl([])
    elif case == "adapter base":
        base.adapter_path = "/somewhere"
        base.save()
    elif case == "openai base":
        kwargs["base_generator"] = Generator.objects.create(
            name="remote", backend="openai", model="gpt", base_url="http://x"
        )
    else:
        kwargs["options"] = {"warp_speed": 9}

    with pytest.raises(GenerationError):
        adapter_training_start(**kwargs)

    assert not AdapterTraining.objects.exists()


def test_echoes_of_the_prompt_are_dropped(teacher) -> None:
    rows = list(Explanation.objects.filter(generation_run=teacher).order_by("id"))
    echo = " ".join(rows[0].prompt[-1]["content"].split()[:12])
    Explanation.objects.filter(pk=rows[0].pk).update(text=echo)
    training = AdapterTraining(base_generator=teacher.generator, source_run=teacher, filter_max_words=75)

    examples, dropped = teacher_examples(training)

    assert dropped == 1 and all(example.response != echo for example in examples)
