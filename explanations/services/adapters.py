"""LoRA adapter training (QLoRA on the generator's 4-bit base): an explainer on a teacher's
explanations, or a pairwise judge on human preferences."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from explanations.judging import default_rubric, pairwise_answer, pairwise_messages
from explanations.models import AdapterTraining, Explanation, GenerationRun, Generator
from explanations.prompts import Controls, prompt_context
from explanations.services.generators import GenerationError, generator_spec
from explanations.texts import copies_prompt, is_refusal, word_count
from recommendations.shared.queue import enqueue_on_commit


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
    _check_base(base_generator, options)
    if (source_run is None) == (upload is None):
        raise GenerationError("give exactly one teacher: a generation run or a JSONL upload")
    return _training_create(
        created_by=created_by,
        base_generator=base_generator,
        source=AdapterTraining.Source.GENERATION_RUN if source_run else AdapterTraining.Source.JSONL,
        source_run=source_run,
        write_source=(lambda: _store_upload(upload)) if upload is not None else None,
        options=options,
        enqueue=enqueue,
    )


def rated_teacher_start(
    *,
    created_by: Any,
    base_generator: Generator,
    explanations: Mapping[int, float],
    description: str = "",
    options: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> AdapterTraining:
    """Record a LoRA tuning on explanations people rated well, and enqueue it.

    ``explanations`` maps each chosen explanation's id to the human score it passed with (as
    ``annotation.services.teacher`` picks them from a campaign); each becomes a teacher example
    with the prompt it was written from, under the training's usual filters. Raises
    GenerationError, storing nothing, for a bad base or fewer than 2 finished explanations."""
    _check_base(base_generator, options)
    found = set(
        Explanation.objects.filter(pk__in=list(explanations), status=Explanation.Status.DONE).values_list(
            "pk", flat=True
        )
    )
    if len(found) < 2:
        raise GenerationError(f"need at least 2 rated explanations to tune on (got {len(found)})")
    record = {"explanations": {str(pk): float(explanations[pk]) for pk in sorted(found)}}
    return _training_create(
        created_by=created_by,
        base_generator=base_generator,
        source=AdapterTraining.Source.RATED,
        write_source=lambda: _write_record("rated", record),
        options=options,
        enqueue=enqueue,
        source_description=description[:300],
    )


def _write_record(kind: str, record: dict[str, Any]) -> str:
    """``record`` as JSON in a new folder of the upload directory; its path."""
    folder = Path(settings.XREC_UPLOAD_DIR) / kind / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / f"{kind}.json"
    target.write_text(json.dumps(record), encoding="utf-8")
    return str(target)


def _check_base(base_generator: Generator, options: dict[str, Any] | None) -> None:
    if base_generator.backend != Generator.Backend.HF:
        raise GenerationError("LoRA adapters train on a local model: pick an hf generator as the base")
    if base_generator.adapter_path:
        raise GenerationError("pick a base generator without an adapter")
    generator_spec(base_generator)
    fields = {f.name for f in AdapterTraining._meta.get_fields()}
    unknown = sorted(set(options or {}) - fields)
    if unknown:
        raise GenerationError(f"unknown training options: {', '.join(unknown)}")


def _training_create(
    *,
    created_by: Any,
    base_generator: Generator,
    source: str,
    source_run: GenerationRun | None = None,
    write_source: Callable[[], str] | None = None,
    options: dict[str, Any] | None = None,
    enqueue: bool,
    **fields: Any,
) -> AdapterTraining:
    with transaction.atomic():
        training = AdapterTraining.objects.create(
            created_by=created_by,
            base_generator=base_generator,
            source=source,
            source_run=source_run,
            source_path=write_source() if write_source is not None else "",
            **fields,
            **(options or {}),
        )
        if enqueue:
            enqueue_on_commit("explanations.train_adapter", training.pk)
    return training


# The judge's verdict for each human winner, by order: (A shown first, B shown first).
_JUDGE_VERDICTS = {"a": ("first", "second"), "b": ("second", "first"), "tie": ("tie", "tie")}
# Judge prompts hold two explanations, the history and the rubric: longer than a teacher's.
JUDGE_TRAINING_DEFAULTS = {"max_length": 1024, "filter_refusals": False}


def _checked_preferences(preferences: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``preferences`` with only the fields a judge learns from, or GenerationError naming
    the first bad one: ids that are not integers, a winner other than a/b/tie, or
    explanations that are not two different finished explanations of that recommendation."""
    checked = []
    for number, preference in enumerate(preferences, 1):
        try:
            recommendation, a, b = (int(preference[key]) for key in ("recommendation", "a", "b"))
            winner = preference["winner"]
        except (KeyError, TypeError, ValueError):
            raise GenerationError(
                f"preference {number}: expected integer recommendation, a and b, and a winner"
            ) from None
        if winner not in _JUDGE_VERDICTS:
            raise GenerationError(f"preference {number}: winner must be a, b or tie, not {str(winner)[:20]!r}")
        if a == b:
            raise GenerationError(f"preference {number}: a and b are the same explanation")
        checked.append({"recommendation": recommendation, "a": a, "b": b, "winner": winner})
    if len(checked) < 2:
        raise GenerationError(f"need at least 2 preferences to tune a judge (got {len(checked)})")
    explained = dict(
        Explanation.objects.filter(
            pk__in={p[side] for p in checked for side in ("a", "b")}, status=Explanation.Status.DONE
        ).values_list("pk", "recommendation_id")
    )
    for number, preference in enumerate(checked, 1):
        if not explained.get(preference["a"]) == explained.get(preference["b"]) == preference["recommendation"]:
            raise GenerationError(
                f"preference {number}: explanations {preference['a']} and {preference['b']} are not "
                f"finished explanations of recommendation {preference['recommendation']}"
            )
    return checked


def judge_training_start(
    *,
    created_by: Any,
    base_generator: Generator,
    preferences: Sequence[Mapping[str, Any]],
    rubric: list[dict[str, Any]] | None = None,
    description: str = "",
    options: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> AdapterTraining:
    """Record the LoRA tuning of a pairwise judge on human preferences and enqueue it.

    ``preferences`` is plain data, one mapping per judged pair: ``recommendation``, ``a``
    and ``b`` (explanation ids) and ``winner`` (``a``, ``b`` or ``tie``), as
    ``annotation.exports.campaign_preferences`` exports them. Each becomes two examples, one
    per order, with the judge prompt the judge runs use (``pairwise_messages`` on
    ``rubric``, default the study rubric) and the answer in its strict format, so the tuned
    judge learns the humans' choice and not a side. The adapter's generator is a judge for
    ``JudgeRun``. Raises GenerationError for bad preferences or base; nothing is stored then.
    """
    _check_base(base_generator, options)
    checked = _checked_preferences(preferences)
    record = {"rubric": rubric or default_rubric(), "preferences": checked}

    def write() -> str:
        return _write_record("preferences", record)

    return _training_create(
        created_by=created_by,
        base_generator=base_generator,
        source=AdapterTraining.Source.PREFERENCES,
        write_source=write,
        options=JUDGE_TRAINING_DEFAULTS | (options or {}),
        enqueue=enqueue,
        source_description=description[:300],
    )


def trained_recommendations(generator: Generator) -> set[int]:
    """The recommendations whose human preferences tuned ``generator``'s adapter (empty for
    any other generator): a judge run with it leaves them out, so its agreement with humans
    is measured on pairs it never learnt from."""
    training = generator.adapter_training
    if training is None or training.source != AdapterTraining.Source.PREFERENCES:
        return set()
    try:
        record = json.loads(Path(training.source_path).read_text(encoding="utf-8"))
    except OSError:
        # Without the list the run could judge pairs the judge learnt: refuse rather than guess.
        raise GenerationError(
            f"judge {generator.name}: its training preferences are gone from {training.source_path}"
        ) from None
    return {int(preference["recommendation"]) for preference in record["preferences"]}


def preference_examples(training: AdapterTraining) -> tuple[list[Any], int]:
    """A judge's training examples from stored preferences (two per pair, one per order), and
    how many pairs were dropped because an explanation no longer exists."""
    from explanations.tuning import Example  # imports torch: only where examples are built

    record = json.loads(Path(training.source_path).read_text(encoding="utf-8"))
    preferences, rubric = record["preferences"], record["rubric"]
    explanations = Explanation.objects.select_related(
        "generation_run", "recommendation__user", "recommendation__item__dataset", "recommendation__run__split"
    ).in_bulk({p[side] for p in preferences for side in ("a", "b")})
    examples = []
    for pair, preference in enumerate(preferences):
        a, b = explanations.get(preference["a"]), explanations.get(preference["b"])
        if a is None or b is None:
            continue
        recommendation = a.recommendation
        split = recommendation.run.split
        # The judge sees as much history as the longer of the two prompts did (as in judge runs).
        history = max(a.generation_run.history_length, b.generation_run.history_length)
        context = prompt_context(recommendation, split, Controls(history_length=history))
        first_order, second_order = (pairwise_answer(v) for v in _JUDGE_VERDICTS[preference["winner"]])
        # One group per pair: both orders go to training or both to validation, so the
        # validation loss is measured on pairs the judge never saw.
        examples.append(
            Example(messages=pairwise_messages(context, a.text, b.text, rubric), response=first_order, group=pair)
        )
        examples.append(
            Example(messages=pairwise_messages(context, b.text, a.text, rubric), response=second_order, group=pair)
        )
    return examples, len(preferences) - len(examples) // 2


def teacher_examples(training: AdapterTraining) -> tuple[list[Any], int]:
    """The training examples and how many teacher outputs the filters dropped."""
    from explanations.tuning import Example  # imports torch: only where examples are built

    if training.source == AdapterTraining.Source.PREFERENCES:
        return preference_examples(training)
    raw: list[tuple[list[dict[str, str]], str]] = []
    if training.source == AdapterTraining.Source.RATED:
        chosen = json.loads(Path(training.source_path).read_text(encoding="utf-8"))["explanations"]
        rows = Explanation.objects.filter(pk__in=[int(pk) for pk in chosen], status=Explanation.Status.DONE)
        raw = [(row.prompt, row.text) for row in rows.order_by("id")]
    elif training.source_run_id is not None:
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

    Always trains on a freshly loaded base (see DESIGN.md, "The LLM layer"): 4-bit (QLoRA) on
    CUDA and fast-4-bit CPUs, float32 elsewhere when the generator says ``auto``. On
    success the adapter, its checksum and loss curves are stored and a new generator that
    uses the adapter is created next to the base.
    """
    from explanations.tuning import LoraSettings, TuningError, train_lora  # torch, peft: workers only

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
            # An int8 generator trains as QLoRA; "auto" is resolved by train_lora on its device.
            quantization="nf4"
            if training.base_generator.quantization == "int8"
            else training.base_generator.quantization,
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
        training.precision = result.precision
        training.save(
            update_fields=[
                "precision",
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
