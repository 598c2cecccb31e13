import hashlib
from pathlib import Path, PureWindowsPath

from django.db import migrations, models

LINEAGE_HELP = "What the run used, recorded when it started; its chunks load the model from it."


def _field() -> models.JSONField:
    return models.JSONField(blank=True, default=dict, editable=False, help_text=LINEAGE_HELP)


# A frozen copy of the record the start services write (explanations.models.run_lineage and
# services.generators.adapter_folder_sha256 as of this migration): a migration must not change
# meaning when those do.
def _folder_sha256(folder: str) -> str:
    root = Path(folder)
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def _split_name(split) -> str:
    if split.mode == "leave_last_out":
        described = f"leave-last-out (users with ≥{split.min_interactions})"
    elif split.mode == "global_time":
        share = split.n_test / max(1, split.n_train + split.n_test)
        described = f"global cut-off at {split.used_cutoff_timestamp} ({share:.0%} test)"
    else:
        described = f"random {split.test_ratio:.0%} test, seed {split.seed}"
    return f"{split.dataset.name} · {described}"


def _generator(generator, checksums: dict[int, str]) -> dict:
    if generator.pk not in checksums:
        training = generator.adapter_training
        if not generator.adapter_path:
            checksums[generator.pk] = ""
        elif training is not None and training.adapter_path == generator.adapter_path:
            checksums[generator.pk] = training.adapter_sha256
        else:
            checksums[generator.pk] = _folder_sha256(generator.adapter_path)
    adapter = None
    if generator.adapter_path:
        adapter = {
            "name": PureWindowsPath(generator.adapter_path).name,
            "sha256": checksums[generator.pk],
            "training": generator.adapter_training_id,
        }
    return {
        "id": generator.pk,
        "name": generator.name,
        "backend": generator.backend,
        "model": generator.model,
        "quantization": generator.quantization,
        "adapter_path": generator.adapter_path,
        "adapter": adapter,
        "base_url": generator.base_url,
        "api_key_env": generator.api_key_env,
        "decoding": {
            "max_new_tokens": generator.max_new_tokens,
            "temperature": generator.temperature,
            "top_p": generator.top_p,
            "repetition_penalty": generator.repetition_penalty,
            "seed": generator.seed,
        },
    }


def _lineage(generator, checksums, recommender_run, seed, template=None, sample=None) -> dict:
    split = recommender_run.split if recommender_run is not None else None
    return {
        "version": 1,
        "recorded": "backfilled",
        "generator": _generator(generator, checksums),
        "prompt": {"id": template.pk, "name": template.name, "version": template.version, "sha256": template.sha256}
        if template is not None
        else None,
        "recommender_run": recommender_run.pk if recommender_run is not None else None,
        "split": {"id": split.pk, "name": _split_name(split), "mode": split.mode, "seed": split.seed}
        if split is not None
        else None,
        "seed": seed,
        "sample": sample,
    }


def backfill(apps, schema_editor) -> None:
    """Runs older than the record get one from their generator as it is now, marked
    "backfilled": the best that can be known, and said to be so."""
    GenerationRun = apps.get_model("explanations", "GenerationRun")
    JudgeRun = apps.get_model("explanations", "JudgeRun")
    AttributeProbe = apps.get_model("explanations", "AttributeProbe")
    checksums: dict[int, str] = {}
    runs = GenerationRun.objects.select_related(
        "generator__adapter_training", "template", "recommender_run__split__dataset"
    )
    for run in runs.iterator(chunk_size=500):
        run.lineage = _lineage(
            run.generator,
            checksums,
            run.recommender_run,
            run.seed,
            template=run.template,
            sample={"kind": run.sample, "size": None if run.sample == "all" else run.sample_size},
        )
        run.save(update_fields=["lineage"])
    for judge in JudgeRun.objects.select_related("judge__adapter_training"):
        first = judge.generation_runs.select_related("recommender_run__split__dataset").order_by("pk").first()
        sample = {"kind": "random" if judge.sample_size else "all", "size": judge.sample_size or None}
        judge.lineage = _lineage(
            judge.judge, checksums, first.recommender_run if first else None, judge.seed, sample=sample
        )
        judge.save(update_fields=["lineage"])
    probes = AttributeProbe.objects.select_related(
        "prober__adapter_training", "generation_run__recommender_run__split__dataset"
    )
    for probe in probes:
        sample = {"kind": "random" if probe.sample_size else "all", "size": probe.sample_size or None}
        probe.lineage = _lineage(
            probe.prober, checksums, probe.generation_run.recommender_run, probe.seed, sample=sample
        )
        probe.save(update_fields=["lineage"])


class Migration(migrations.Migration):
    dependencies = [
        ("explanations", "0009_likelihood_answers"),
    ]

    operations = [
        migrations.AddField(model_name="attributeprobe", name="lineage", field=_field()),
        migrations.AddField(model_name="generationrun", name="lineage", field=_field()),
        migrations.AddField(model_name="judgerun", name="lineage", field=_field()),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
