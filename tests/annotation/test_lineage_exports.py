"""Lineage in the study report, the rating exports, the run pages and the API: what each run
recorded when it started (split and seed included), and never a path on the server."""

import csv
import io
import json
import uuid
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join
from explanations.judging import default_rubric
from explanations.models import AdapterTraining, AnswerMode, Explanation, GenerationRun, Generator
from explanations.services.generation import generation_run_start
from explanations.services.generators import adapter_folder_sha256
from explanations.services.judging import judge_chunk_run, judge_run_start
from explanations.services.probing import probe_chunk_run, probe_start
from tests.annotation.factories import campaign
from tests.conftest import client_for
from tests.explanations.factories import template, trained_run
from tests.explanations.scripted import scripted_judge
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter_dir(settings) -> Path:
    """A hand-made LoRA adapter folder under the model directory (never loaded here)."""
    folder = Path(settings.XREC_MODEL_DIR) / "adapters" / "hand-tuned"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def tiny_model_dir(tmp_path) -> Path:
    """A local model folder outside the model directory (never loaded here)."""
    folder = tmp_path / "elsewhere" / "tiny-local"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def study(tiny_model_dir, adapter_dir):
    """Two finished generation runs of a local model with a local adapter (explanations
    written without running it), a judge run, a probe and a rated campaign over them."""
    generator = Generator.objects.create(
        name="local-tuned", model=str(tiny_model_dir), quantization="none", adapter_path=str(adapter_dir)
    )
    recommender_run = trained_run(n_users=4, k=2)
    runs = []
    for seed in (7, 8):
        run = generation_run_start(
            created_by=None,
            recommender_run=recommender_run,
            generator=generator,
            template=template(),
            sample="all",
            seed=seed,
            enqueue=False,
        )
        Explanation.objects.filter(generation_run=run).update(
            status=Explanation.Status.DONE, text=f"Version {seed}: you may like it.", generated_at=timezone.now()
        )
        GenerationRun.objects.filter(pk=run.pk).update(
            status=GenerationRun.Status.SUCCEEDED, precision="float32 on cpu"
        )
        run.refresh_from_db()
        runs.append(run)
    judge, _ = scripted_judge(lambda prompt: "Winner: 1")
    judge_run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=default_rubric(), enqueue=False
    )
    for chunk in range(-(-judge_run.n_total // judge_run.chunk_size)):
        judge_chunk_run(run_id=judge_run.pk, chunk=chunk)
    prober, _ = scripted_judge(lambda prompt: "Answer: 3", name="scripted-prober")
    probe = probe_start(
        created_by=None,
        prober=prober,
        generation_run=runs[0],
        target="popularity",
        answer_mode=AnswerMode.TEXT,
        enqueue=False,
    )
    for chunk in range(-(-probe.n_total // probe.chunk_size)):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)
    rated = campaign(runs=runs, overlap=1, items_per_annotator=100)
    participant = participant_join(campaign=rated, user=UserFactory())
    while (assignment := campaign_assign_next(participant=participant)) is not None:
        answers = {criterion.name: 6 for criterion in rated.criteria.all()}
        rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    training = AdapterTraining.objects.create(
        base_generator=generator,
        status=AdapterTraining.Status.SUCCEEDED,
        adapter_path=str(adapter_dir),
        adapter_sha256="ab" * 32,
    )
    return {"runs": runs, "judge_run": judge_run, "probe": probe, "campaign": rated, "training": training}


def test_rating_and_study_exports_carry_the_split_and_the_generation_seed(study, researcher) -> None:
    runs, rated = study["runs"], study["campaign"]
    split = runs[0].recommender_run.split
    client = client_for(researcher)
    query = f"recommender_run={runs[0].recommender_run_id}&runs={runs[0].pk}&runs={runs[1].pk}"

    rows = [json.loads(line) for line in client.get(f"/campaigns/{rated.pk}/ratings.jsonl").getvalue().splitlines()]
    table = client.get(f"{reverse('annotation:study_export', args=['csv'])}?{query}&table=runs").content.decode()
    report = client.get(f"{reverse('annotation:study_export', args=['json'])}?{query}").json()

    assert rows and {(r["split_id"], r["split"], r["split_seed"]) for r in rows} == {(split.pk, str(split), split.seed)}
    seeds = {run.pk: run.seed for run in runs}
    assert all(row["seed_a"] == seeds[row["generation_run_a"]] and row["sample_a"] == "all" for row in rows)
    header, *lines = list(csv.reader(io.StringIO(table)))
    assert header[5:8] == ["split", "seed", "sample"]
    assert sorted(line[6] for line in lines) == ["7", "8"] and {line[5] for line in lines} == {f"#{split.pk} {split}"}
    assert [(r["split"], r["split_seed"], r["seed"]) for r in report["runs"]] == [
        (split.pk, split.seed, 7),
        (split.pk, split.seed, 8),
    ]


def test_reports_and_exports_show_what_runs_recorded_after_their_generator_is_edited(study, researcher) -> None:
    runs, rated = study["runs"], study["campaign"]
    Generator.objects.filter(pk=runs[0].generator_id).update(
        model="someone/else", adapter_path="", quantization="nf4", temperature=1.9
    )
    client = client_for(researcher)
    query = f"recommender_run={runs[0].recommender_run_id}&runs={runs[0].pk}&runs={runs[1].pk}"

    report = client.get(f"{reverse('annotation:study_export', args=['json'])}?{query}").json()
    row = json.loads(client.get(f"/campaigns/{rated.pk}/ratings.jsonl").getvalue().splitlines()[0])
    api = client.get(reverse("explanations:api_run_detail", args=[runs[0].pk])).json()

    recorded = report["runs"][0]
    assert (recorded["model"], recorded["quantization"], recorded["adapter"]) == (
        runs[0].lineage["generator"]["model"].rsplit("/", 1)[-1],
        "none",
        "hand-tuned",
    )
    assert recorded["decoding"]["temperature"] == 0.0
    assert row["adapter_a"] == "hand-tuned" and "someone/else" not in row["generator_a"]
    assert api["lineage"]["model"] != "someone/else" and api["lineage"]["adapter"] == "hand-tuned"


def test_the_adapter_is_shown_by_name_and_the_checksum_taken_when_the_run_started(study, adapter_dir) -> None:
    run = study["runs"][0]
    started_with = adapter_folder_sha256(adapter_dir)
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"other weights")

    lineage = GenerationRun.objects.get(pk=run.pk).public_lineage()

    assert lineage["adapter"] == "hand-tuned" and lineage["adapter_sha256"] == started_with
    assert started_with != adapter_folder_sha256(adapter_dir)


def test_no_page_export_or_api_response_holds_a_server_path(
    study, researcher, admin_user, tiny_model_dir, adapter_dir, settings, tmp_path_factory
) -> None:
    runs, rated, judge_run, probe = study["runs"], study["campaign"], study["judge_run"], study["probe"]
    query = f"recommender_run={runs[0].recommender_run_id}&runs={runs[0].pk}&runs={runs[1].pk}"
    urls = [
        f"{reverse('annotation:study')}?{query}",
        *(f"{reverse('annotation:study_export', args=[fmt])}?{query}" for fmt in ("json", "md")),
        *(f"{reverse('annotation:study_export', args=['csv'])}?{query}&table={t}" for t in ("runs", "judge_pairwise")),
        f"{reverse('annotation:api_study_report')}?{query}",
        reverse("annotation:campaign_detail", args=[rated.pk]),
        f"/campaigns/{rated.pk}/ratings.csv",
        f"/campaigns/{rated.pk}/ratings.jsonl",
        reverse("annotation:api_ratings", args=[rated.pk]),
        reverse("explanations:generator_list"),
        reverse("explanations:run_list"),
        *(reverse("explanations:run_detail", args=[run.pk]) for run in runs),
        reverse("explanations:judge_detail", args=[judge_run.pk]),
        reverse("explanations:probe_detail", args=[probe.pk]),
        reverse("explanations:adapter_detail", args=[study["training"].pk]),
        *(reverse("explanations:api_run_detail", args=[run.pk]) for run in runs),
        reverse("explanations:api_explanations", args=[runs[0].pk]),
        reverse("explanations:api_judge_detail", args=[judge_run.pk]),
        reverse("explanations:api_judge_verdicts", args=[judge_run.pk]),
    ]
    paths = [str(tiny_model_dir), str(adapter_dir), str(settings.XREC_MODEL_DIR), str(tmp_path_factory.getbasetemp())]
    bodies = {}
    for user in (researcher, admin_user):
        client = client_for(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            bodies[url] = response.getvalue()  # streamed (the rating exports) or not

    leaks = [(url, path) for url, body in bodies.items() for path in paths if path in body.decode()]
    assert not leaks
    page = bodies[reverse("explanations:run_detail", args=[runs[0].pk])].decode()
    assert "hand-tuned" in page and adapter_folder_sha256(adapter_dir) in page and tiny_model_dir.name in page
