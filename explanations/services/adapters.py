"""LoRA adapter training on a teacher's explanations (QLoRA on the generator's 4-bit base)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from explanations.models import AdapterTraining, Explanation, GenerationRun, Generator
from explanations.services.generators import GenerationError, generator_spec

# Teacher outputs that decline or hedge instead of explaining are not worth imitating.
REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|as an ai|i cannot|i can'?t|i am unable|i'm unable|i do not have)\b",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


def word_count(text: str) -> int:
    return len(text.split())


def copies_prompt(text: str, messages: list[dict[str, str]], n: int = 8) -> bool:
    """True when ``text`` repeats any run of ``n`` words from the prompt (an echo, not an answer)."""
    words = text.lower().split()
    prompt = " ".join(message.get("content", "") for message in messages).lower().split()
    grams = {tuple(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
    return any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1))


def _store_upload(upload: UploadedFile[bytes]) -> str:
    folder = Path(settings.XREC_UPLOAD_DIR) / "teacher" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / "examples.jsonl"
    with target.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return str(target)


def adapter_training_start(
    *,
    created_by: Any,
    base_generator: Generator,
    source_run: GenerationRun | None = None,
    upload: UploadedFile[bytes] | None = None,
    options: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> AdapterTraining:
    """Record an adapter training and enqueue it on the ``gpu`` queue after commit.

    Teacher examples come from ``source_run``'s finished explanations or an uploaded JSONL
    file (one object per line: ``{"messages": [...], "response": "..."}``). ``options`` may
    set the LoRA and training fields of AdapterTraining. With ``enqueue=False`` the caller runs
    it (``adapter_training_run``). Raises GenerationError for a base
    generator that is not a local model, or no source; nothing is stored then.
    """
    from explanations.tasks import adapter_training_run_task

    if base_generator.backend != Generator.Backend.HF:
        raise GenerationError("LoRA adapters train on a local model: pick an hf generator as the base")
    if base_generator.adapter_path:
        raise GenerationError("pick a base generator without an adapter")
    generator_spec(base_generator)
    if (source_run is None) == (upload is None):
        raise GenerationError("give exactly one teacher: a generation run or a JSONL upload")
    fields = {f.name for f in AdapterTraining._meta.get_fields()}
    unknown = sorted(set(options or {}) - fields)
    if unknown:
        raise GenerationError(f"unknown training options: {', '.join(unknown)}")
    with transaction.atomic():
        training = AdapterTraining.objects.create(
            created_by=created_by,
            base_generator=base_generator,
            source=AdapterTraining.Source.GENERATION_RUN if source_run else AdapterTraining.Source.JSONL,
            source_run=source_run,
            source_path=_store_upload(upload) if upload is not None else "",
            **(options or {}),
        )
        if enqueue:
            adapter_training_run_task.delay_on_commit(training.pk)  # type: ignore[attr-defined]
    return training


def teacher_examples(training: AdapterTraining) -> tuple[list[Any], int]:
    """The training examples and how many teacher outputs the filters dropped."""
    from explanations.tuning import Example

    raw: list[tuple[list[dict[str, str]], str]] = []
    if training.source_run_id is not None:
        rows = Explanation.objects.filter(
            generation_run_id=training.source_run_id, status=Explanation.Status.DONE
        ).order_by("id")
        raw = [(row.prompt, row.text) for row in rows]
    else:
        for number, line in enumerate(Path(training.source_path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                messages, response = record["messages"], record["response"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise GenerationError(
                    f'examples.jsonl line {number}: expected {{"messages": [...], "response": "..."}}'
                ) from None
            raw.append((messages, str(response)))
    kept = [
        Example(messages=messages, response=text.strip())
        for messages, text in raw
        if text.strip()
        and word_count(text) <= training.filter_max_words
        and not (training.filter_refusals and is_refusal(text))
        and not copies_prompt(text, messages)
    ]
    return kept, len(raw) - len(kept)


def adapter_training_run(*, training_id: int) -> None:
    """Train a PENDING adapter training to the end. Idempotent: other statuses are left alone.

    Always trains on a freshly loaded 4-bit base (see DESIGN.md, "The LLM layer"). On
    success the adapter, its checksum and loss curves are stored and a new generator that
    uses the adapter is created next to the base.
    """
    from explanations.tuning import LoraSettings, TuningError, train_lora

    training = AdapterTraining.claim_pending(training_id)
    if training is None:
        return
    try:
        examples, dropped = teacher_examples(training)
        AdapterTraining.objects.filter(pk=training.pk).update(n_examples=len(examples), n_filtered=dropped)
        base = generator_spec(training.base_generator)
        defaults = LoraSettings()
        lora = LoraSettings(
            r=training.r,
            alpha=training.alpha,
            dropout=training.dropout,
            target_modules=tuple(training.target_modules) or defaults.target_modules,
            epochs=training.epochs,
            learning_rate=training.learning_rate,
            batch_size=training.batch_size,
            max_length=training.max_length,
            validation_fraction=training.validation_fraction,
            seed=training.seed,
            quantization=training.base_generator.quantization
            if training.base_generator.quantization != "int8"
            else "nf4",
        )
        output = Path(settings.XREC_MODEL_DIR) / "adapters" / f"training-{training.pk}"
        result = train_lora(
            base_model_dir=Path(base.model),
            examples=examples,
            settings=lora,
            output_dir=output,
            progress=training.report_progress,
        )
    except (GenerationError, TuningError) as exc:
        training.mark_failed(str(exc))
        return
    except Exception as exc:
        training.mark_failed(f"internal error: {exc!r}")
        raise
    with transaction.atomic():
        training.n_train, training.n_validation = result.n_train, result.n_validation
        training.train_losses = [list(pair) for pair in result.train_losses]
        training.validation_losses = [list(pair) for pair in result.validation_losses]
        training.adapter_path, training.adapter_sha256 = str(result.adapter_dir), result.sha256
        training.save(
            update_fields=[
                "n_train",
                "n_validation",
                "train_losses",
                "validation_losses",
                "adapter_path",
                "adapter_sha256",
            ]
        )
        base_generator = training.base_generator
        Generator.objects.create(
            name=f"{base_generator.name}+lora{training.pk}",
            backend=base_generator.backend,
            model=base_generator.model,
            quantization=base_generator.quantization,
            adapter_path=str(result.adapter_dir),
            adapter_training=training,
            max_new_tokens=base_generator.max_new_tokens,
            temperature=base_generator.temperature,
            top_p=base_generator.top_p,
            repetition_penalty=base_generator.repetition_penalty,
            seed=base_generator.seed,
        )
        training.mark_succeeded()
