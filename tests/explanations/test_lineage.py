"""Lineage: a run records what it used when it starts, and its chunks load from that record."""

import importlib
import json
from collections.abc import Sequence

import pytest
from django.apps import apps

from explanations.judging import default_rubric
from explanations.llm import BackendSpec, Completion, DecodingParams, Messages
from explanations.models import AnswerMode, AttributeProbe, Explanation, GenerationRun, Generator, JudgeVerdict
from explanations.services.generation import (
    generation_chunk_run,
    generation_run_retry_failed,
    generation_run_start,
    generation_runs_requeue_stalled,
)
from explanations.services.judging import judge_chunk_run, judge_run_start
from explanations.services.probing import probe_chunk_run, probe_start
from tests.annotation.factories import explained_runs
from tests.explanations.factories import template, tiny_generator, trained_run
from tests.explanations.scripted import scripted_judge

pytestmark = pytest.mark.django_db


class RecordingBackend:
    """A backend that answers every prompt with one fixed sentence and keeps what it was asked."""

    precision = "recorded"

    def __init__(self) -> None:
        self.specs: list[BackendSpec] = []
        self.params: list[DecodingParams] = []

    def load(self, spec: BackendSpec) -> "RecordingBackend":
        self.specs.append(spec)
        return self

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        self.params.append(params)
        return [Completion("You may like it.", 10, 4, "stop") for _ in prompts]


@pytest.fixture
def started(tiny_model_dir, monkeypatch):
    """A generation run of the tiny model (temperature 0.7, seed 5, 12 new tokens) whose every
    chunk failed, so that all of them are retried."""
    monkeypatch.setenv("XREC_TEST_KEY", "sk-very-secret")
    generator = tiny_generator(tiny_model_dir)
    Generator.objects.filter(pk=generator.pk).update(temperature=0.7, seed=5, api_key_env="XREC_TEST_KEY")
    generator.refresh_from_db()
    run = generation_run_start(
        created_by=None,
        recommender_run=trained_run(n_users=6, k=2),
        generator=generator,
        template=template(),
        sample_size=3,
        seed=11,
        chunk_size=2,
        enqueue=False,
    )
    return run, generator


def test_a_run_records_its_generator_prompt_split_and_seed_when_it_starts(started, tiny_model_dir) -> None:
    run, generator = started
    lineage = GenerationRun.objects.get(pk=run.pk).lineage
    split = run.recommender_run.split

    assert lineage["recorded"] == "at start"
    assert lineage["generator"] | {"decoding": None} == {
        "id": generator.pk,
        "name": "tiny",
        "backend": "hf",
        "model": str(tiny_model_dir),
        "quantization": "none",
        "adapter_path": "",
        "adapter": None,
        "base_url": "",
        "api_key_env": "XREC_TEST_KEY",
        "decoding": None,
    }
    assert lineage["generator"]["decoding"] == {
        "max_new_tokens": 12,
        "temperature": 0.7,
        "top_p": 1.0,
        "repetition_penalty": 1.0,
        "seed": 5,
    }
    assert lineage["prompt"] == {
        "id": run.template_id,
        "name": "xrec-default",
        "version": run.template.version,
        "sha256": run.template.sha256,
    }
    assert lineage["split"] == {"id": split.pk, "name": str(split), "mode": split.mode, "seed": split.seed}
    assert lineage["recommender_run"] == run.recommender_run_id and lineage["seed"] == 11
    assert lineage["sample"] == {"kind": "random", "size": 3}
    assert "sk-very-secret" not in json.dumps(lineage)  # the variable's name, never the key


def test_retried_chunks_load_the_recorded_model_and_decoding_not_the_edited_generator(
    started, monkeypatch, tmp_path
) -> None:
    run, generator = started
    from explanations.llm import BackendError

    def broken(spec):
        raise BackendError("worker out of memory")

    monkeypatch.setattr("explanations.services.chunks.load_backend", broken)
    for chunk in range(2):
        generation_chunk_run(run_id=run.pk, chunk=chunk)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.SUCCEEDED
    # Edited behind the run's back (as an admin could before generators were frozen).
    Generator.objects.filter(pk=generator.pk).update(
        model=str(tmp_path / "another-model"), temperature=1.5, max_new_tokens=99, seed=42, repetition_penalty=1.3
    )
    backend = RecordingBackend()
    monkeypatch.setattr("explanations.services.chunks.load_backend", backend.load)

    generation_run_retry_failed(run=run)
    for chunk in range(2):
        generation_chunk_run(run_id=run.pk, chunk=chunk)

    assert Explanation.objects.filter(generation_run=run, status=Explanation.Status.DONE).count() == run.n_total == 3
    assert {spec.model for spec in backend.specs} == {run.lineage["generator"]["model"]}
    assert {(p.temperature, p.repetition_penalty, p.seed) for p in backend.params} == {(0.7, 1.0, 11)}
    assert all(p.max_new_tokens <= 12 for p in backend.params)


def test_requeued_chunks_load_the_recorded_model(started, monkeypatch, tmp_path) -> None:
    run, generator = started
    Generator.objects.filter(pk=generator.pk).update(model=str(tmp_path / "elsewhere"), quantization="nf4")
    backend = RecordingBackend()
    monkeypatch.setattr("explanations.services.chunks.load_backend", backend.load)

    assert generation_runs_requeue_stalled() == 2  # a worker starting finds both chunks pending
    for chunk in range(2):
        generation_chunk_run(run_id=run.pk, chunk=chunk)

    assert {(spec.model, spec.quantization) for spec in backend.specs} == {(run.lineage["generator"]["model"], "none")}


def test_judge_chunks_use_the_recorded_judge_when_its_row_changes() -> None:
    runs = explained_runs(n_users=3, n_runs=2)
    judge, backend = scripted_judge(lambda prompt: "Winner: 1")
    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=default_rubric(), chunk_size=4, enqueue=False
    )
    # Pointed at another server after the run started: the run must keep asking the first one.
    Generator.objects.filter(pk=judge.pk).update(base_url="http://127.0.0.1:9/v1", model="another")

    for chunk in range(-(-run.n_total // run.chunk_size)):
        judge_chunk_run(run_id=run.pk, chunk=chunk)

    verdicts = JudgeVerdict.objects.filter(judge_run=run)
    assert verdicts.filter(status=JudgeVerdict.Status.DONE).count() == verdicts.count() == 6
    assert backend.prompts == 6
    assert run.lineage["generator"]["base_url"] == "http://judge.invalid/v1"


def test_probe_chunks_use_the_recorded_prober_when_its_row_changes() -> None:
    runs = explained_runs(n_users=4, n_runs=1, include_profile=False)
    prober, backend = scripted_judge(lambda prompt: "Answer: 24", name="scripted-prober")
    probe = probe_start(
        created_by=None,
        prober=prober,
        generation_run=runs[0],
        target="age",
        answer_mode=AnswerMode.TEXT,
        enqueue=False,
    )
    Generator.objects.filter(pk=prober.pk).update(base_url="http://127.0.0.1:9/v1")

    for chunk in range(-(-probe.n_total // probe.chunk_size)):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)

    probe.refresh_from_db()
    assert probe.status == AttributeProbe.Status.SUCCEEDED and backend.prompts == probe.n_total == 8
    assert probe.lineage["split"]["id"] == runs[0].recommender_run.split_id


def test_a_run_without_a_record_fails_its_chunks_instead_of_reading_the_live_generator(started) -> None:
    run, _ = started
    GenerationRun.objects.filter(pk=run.pk).update(lineage={})

    generation_chunk_run(run_id=run.pk, chunk=0)

    failed = Explanation.objects.filter(generation_run=run, status=Explanation.Status.FAILED)
    assert failed.count() == 2 and "no recorded lineage" in failed.first().error  # type: ignore[union-attr]


def test_the_migration_backfills_older_runs_from_their_generator(started) -> None:
    run, generator = started
    GenerationRun.objects.filter(pk=run.pk).update(lineage={})
    migration = importlib.import_module("explanations.migrations.0010_run_lineage")

    migration.backfill(apps, None)

    run.refresh_from_db()
    assert run.lineage["recorded"] == "backfilled"
    assert run.lineage["generator"]["model"] == generator.model and run.lineage["seed"] == 11
    assert run.lineage["split"]["name"] == str(run.recommender_run.split)


# A used generator is read-only for its lineage fields.


def test_a_used_generator_refuses_a_new_model_or_decoding_but_takes_a_new_name(started, tmp_path) -> None:
    from django.core.exceptions import ValidationError

    _, generator = started
    generator.model, generator.temperature = str(tmp_path / "other"), 0.1

    with pytest.raises(ValidationError, match=r"used by 1 run.*model, temperature.*make a new generator"):
        generator.full_clean()

    generator.refresh_from_db()
    generator.name = "tiny, renamed"
    generator.full_clean()  # the name may change


def test_an_unused_generator_can_still_be_changed(tiny_model_dir, tmp_path) -> None:
    generator = tiny_generator(tiny_model_dir)
    generator.model, generator.max_new_tokens = str(tmp_path / "other"), 64

    generator.full_clean()


def test_a_model_form_of_a_used_generator_refuses_a_changed_adapter(started) -> None:
    from django import forms

    _, generator = started

    class GeneratorForm(forms.ModelForm):
        class Meta:
            model = Generator
            fields = ["name", "adapter_path", "seed"]

    form = GeneratorForm({"name": generator.name, "adapter_path": "/srv/adapters/x", "seed": 5}, instance=generator)

    assert not form.is_valid() and "adapter_path cannot change" in str(form.non_field_errors())


def test_registering_a_model_again_under_a_used_generators_name_is_refused(started, tmp_path) -> None:
    from explanations.services.generators import GenerationError, generator_register

    _, generator = started
    (tmp_path / "new").mkdir()

    with pytest.raises(GenerationError, match="used by 1 run"):
        generator_register(name=generator.name, model_dir=tmp_path / "new")

    generator.refresh_from_db()
    assert generator.model != str(tmp_path / "new")


def test_the_admin_shows_a_used_generators_lineage_fields_read_only(started, tmp_path) -> None:
    from django.urls import reverse

    from tests.conftest import client_for
    from tests.factories import UserFactory

    _, generator = started
    admin = UserFactory(username="boss", role="admin")
    client = client_for(admin)
    url = reverse("admin:explanations_generator_change", args=[generator.pk])
    original = Generator.objects.filter(pk=generator.pk).values().get()

    page = client.get(url)
    response = client.post(
        url,
        {
            "name": "tiny-renamed",
            "backend": "openai",
            "model": str(tmp_path / "other"),
            "quantization": "nf4",
            "base_url": "http://elsewhere/v1",
            "api_key_env": "XREC_TEST_KEY",
            "max_new_tokens": 99,
            "temperature": 1.5,
            "top_p": 0.5,
            "repetition_penalty": 1.2,
            "seed": 3,
        },
    )

    assert page.status_code == 200 and "Used by 1 run" in page.content.decode()
    assert 'name="model"' not in page.content.decode() and 'name="temperature"' not in page.content.decode()
    assert response.status_code == 302
    changed = Generator.objects.filter(pk=generator.pk).values().get()
    assert changed == original | {"name": "tiny-renamed"}


def test_the_admin_duplicates_a_used_generator_as_a_new_editable_one(started) -> None:
    from django.urls import reverse

    from tests.conftest import client_for
    from tests.factories import UserFactory

    _, generator = started
    client = client_for(UserFactory(username="boss", role="admin"))

    client.post(
        reverse("admin:explanations_generator_changelist"),
        {"action": "duplicate", "_selected_action": [generator.pk]},
    )

    copy = Generator.objects.get(name="tiny (copy 1)")
    assert (copy.model, copy.temperature, copy.seed, copy.usage_count()) == (generator.model, 0.7, 5, 0)
    page = client.get(reverse("admin:explanations_generator_change", args=[copy.pk])).content.decode()
    assert 'name="model"' in page and 'name="temperature"' in page


def test_a_chunk_whose_recorded_model_is_gone_names_its_folder_not_its_server_path(started, tmp_path) -> None:
    run, _ = started
    gone = tmp_path / "removed" / "old-model"
    lineage = run.lineage | {"generator": run.lineage["generator"] | {"model": str(gone)}}
    GenerationRun.objects.filter(pk=run.pk).update(lineage=lineage)

    generation_chunk_run(run_id=run.pk, chunk=0)

    error = Explanation.objects.filter(generation_run=run, status=Explanation.Status.FAILED).first().error  # type: ignore[union-attr]
    assert "no model at old-model" in error and str(tmp_path) not in error
