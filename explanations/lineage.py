"""A run's lineage record: what it used (generator settings, adapter checksum, prompt
version, split, seed, sample), written once when it starts, and how pages, exports and the
API show it (``public_lineage``: no server path, API key variable or URL credentials).

Plain functions of plain values and of the objects they are given: no query, no import of
the models, so services, views and migrations can all use them.
"""

from __future__ import annotations

from pathlib import PureWindowsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from explanations.models import Generator, PromptTemplate
    from recommendations.models import RecommenderRun


def public_model_name(model: str) -> str:
    """A generator's ``model`` as pages, exports and the API show it: a local folder's name,
    never its path on the server; a hub id, a served model's name or ``bundled:...`` as is."""
    path = PureWindowsPath(model)  # reads both / and \\ separators
    if path.drive or model.startswith(("/", "\\", "~", ".")):
        return path.name or "(local folder)"
    return model


def public_base_url(url: str) -> str:
    """An OpenAI-compatible endpoint as shown: without any user or password in the URL."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


LINEAGE_VERSION = 1


def run_lineage(
    *,
    generator: Generator,
    adapter_sha256: str,
    recommender_run: RecommenderRun | None,
    seed: int,
    template: PromptTemplate | None = None,
    sample: dict[str, Any] | None = None,
    recorded: str = "at start",
) -> dict[str, Any]:
    """The lineage a run records: its generator (``Generator.snapshot``), prompt template
    (generation runs), recommender run and split, its own seed and sample. ``recorded`` says
    when: "at start", "backfilled" (a run older than the record, filled from its generator as
    it then was) or "not recorded" (shown for a row made without a start service)."""
    split = recommender_run.split if recommender_run is not None else None
    return {
        "version": LINEAGE_VERSION,
        "recorded": recorded,
        "generator": generator.snapshot(adapter_sha256=adapter_sha256),
        "prompt": {"id": template.pk, "name": template.name, "version": template.version, "sha256": template.sha256}
        if template is not None
        else None,
        "recommender_run": recommender_run.pk if recommender_run is not None else None,
        "split": {"id": split.pk, "name": str(split), "mode": split.mode, "seed": split.seed}
        if split is not None
        else None,
        "seed": seed,
        "sample": sample,
    }


def sample_record(kind: str, size: int) -> dict[str, Any]:
    """A run's sample as its lineage records it: the kind and, unless it is all, the size."""
    return {"kind": kind, "size": None if kind == "all" else size}


def subsample_record(size: int) -> dict[str, Any]:
    """``sample_record`` of a judge run or probe, whose sample size 0 means all."""
    return sample_record("random" if size else "all", size)


def public_lineage(lineage: dict[str, Any], *, precision: str = "") -> dict[str, Any]:
    """``lineage`` as pages, exports and the API show it: flat, with the precision the
    workers ran in, and without a server path, an API key variable or URL credentials."""
    generator = lineage.get("generator") or {}
    adapter = generator.get("adapter") or {}
    prompt = lineage.get("prompt") or {}
    split = lineage.get("split") or {}
    sample = lineage.get("sample") or {}
    return {
        "recorded": lineage.get("recorded", "not recorded"),
        "generator": generator.get("name", ""),
        "generator_id": generator.get("id"),
        "backend": generator.get("backend", ""),
        "model": public_model_name(generator.get("model", "")),
        "quantization": generator.get("quantization", ""),
        "precision": precision,
        "adapter": adapter.get("name", ""),
        "adapter_sha256": adapter.get("sha256", ""),
        "adapter_training": adapter.get("training"),
        "base_url": public_base_url(generator.get("base_url", "")),
        "decoding": dict(generator.get("decoding") or {}),
        "prompt": f"{prompt['name']} v{prompt['version']}" if prompt else "",
        "prompt_sha256": prompt.get("sha256", ""),
        "recommender_run": lineage.get("recommender_run"),
        "split": split.get("id"),
        "split_name": split.get("name", ""),
        "split_seed": split.get("seed"),
        "seed": lineage.get("seed"),
        "sample": sample.get("kind", ""),
        "sample_size": sample.get("size"),
    }
