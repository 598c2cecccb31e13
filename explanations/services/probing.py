"""Attribute probes: the third perspective, run like generation and judging.

A probe is a chunked job of the one engine (``services.engine``): its rows are two
ProbeAnswers per sampled explanation (history alone; history plus explanation), each with the
true value, written up front as PENDING and answered a chunk at a time on the ``gpu`` queue.

Answers come in the probe's ``answer_mode``: by likelihood (the default) every label in
``options`` (age: the bands of ``probing.age_bands``) is scored after ``Answer:``, the most
likely is the answer and the distribution is stored; as text, answers are generated and parsed
strictly. A backend that cannot score answers as text and the probe's ``fallback`` says so.
The ``profile`` target asks every profile field in one JSON answer (text only): its truth is a
field → labels object and each answer stores every field's parsed value and correctness.
"""

from __future__ import annotations

import bisect
import json
import random
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from explanations.lineage import subsample_record
from explanations.llm import Messages
from explanations.models import (
    AnswerMode,
    AttributeProbe,
    Explanation,
    GenerationRun,
    Generator,
    ProbeAnswer,
)
from explanations.probing import (
    ANSWER_PREFIX,
    DEFAULT_DOMAIN,
    ITEM_PREFIX,
    NUMBER_PREFIX,
    POPULARITY,
    POPULARITY_BUCKETS,
    POPULARITY_FIXED,
    POPULARITY_THRESHOLDS,
    PROFILE,
    USER_TARGETS,
    age_bands,
    is_correct,
    number_value,
    parse_answer,
    parse_profile,
    probe_messages,
)
from explanations.prompts import DOMAIN_NOUNS, history_for
from explanations.services.chunks import answer_in_mode, answer_mode_check, generate_with, score_with
from explanations.services.engine import ChunkedKind, register
from explanations.services.generators import GenerationError, generator_spec, run_lineage_record
from recommendations.models import DatasetUser, Interaction, Item

MAX_OPTIONS = 60


def _labels(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def _popularity_buckets(dataset_id: int, split_id: int | None, *, fixed: bool = False) -> dict[int, str]:
    """Item id → popularity bucket 1..5: the share of the catalogue with fewer train-side
    interactions, in fifths (items with equal counts share a bucket), or with ``fixed`` the
    study's groups by count (below 50, 100, 150, 200, or more). Only the split's train
    side counts: the held-out interactions are what the recommender is judged on, and a
    popularity that included them would leak the test set into the probe's truth."""
    train = Interaction.objects.of_dataset(dataset_id)
    if split_id is not None:
        train = train.outside_test_of(split_id)
    counts = dict.fromkeys(Item.objects.filter(dataset_id=dataset_id).values_list("pk", flat=True), 0)
    counts |= dict(train.values("item_id").annotate(n=Count("id")).values_list("item_id", "n"))
    if fixed:
        return {item: str(1 + bisect.bisect_right(POPULARITY_THRESHOLDS, count)) for item, count in counts.items()}
    ordered = sorted(counts.values())
    total = len(ordered)
    below: dict[int, int] = {}
    for index, count in enumerate(ordered):
        below.setdefault(count, index)
    return {
        item: str(1 + min(POPULARITY_BUCKETS - 1, POPULARITY_BUCKETS * below[count] // max(total, 1)))
        for item, count in counts.items()
    }


def _profile_truths(
    dataset_id: int, explanations: list[Explanation]
) -> tuple[dict[int, dict[str, list[str]]], dict[str, list[str]]]:
    """explanation id → field → true labels for the profile target (fields the user lacks are
    left out), and field → labels offered (none for age), over the profile fields the dataset has."""
    profiles = dict(DatasetUser.objects.filter(dataset_id=dataset_id, elicited=False).values_list("pk", "profile"))
    options = {
        field: sorted({label for profile in profiles.values() for label in _labels(profile.get(field))})
        for field in USER_TARGETS
    }
    options = {field: [] if field == "age" else labels for field, labels in options.items() if labels}
    for field, labels in options.items():
        if len(labels) > MAX_OPTIONS:
            raise GenerationError(f"{field} has {len(labels)} distinct values; a probe offers at most {MAX_OPTIONS}")
    truths = {}
    for explanation in explanations:
        profile = profiles.get(explanation.recommendation.user_id, {})
        fields = {field: _labels(profile.get(field)) for field in options}
        truths[explanation.pk] = {field: labels for field, labels in fields.items() if labels}
    return {pk: fields for pk, fields in truths.items() if fields}, options


def _truths(
    run: GenerationRun, target: str, explanations: list[Explanation], *, answer_mode: str
) -> tuple[dict[int, Any], Any]:
    """explanation id → true labels (explanations without a value are left out), and the
    options offered: a categorical target's labels, age bands by likelihood, none for a typed
    age; the profile's are ``_profile_truths``."""
    dataset_id = run.recommender_run.dataset_id
    if target == PROFILE:
        if answer_mode == AnswerMode.LIKELIHOOD:
            raise GenerationError("the profile probe asks for one JSON answer: use the text answer mode")
        return _profile_truths(dataset_id, explanations)
    if target in USER_TARGETS:
        profiles = dict(DatasetUser.objects.filter(dataset_id=dataset_id, elicited=False).values_list("pk", "profile"))
        truths = {e.pk: _labels(profiles.get(e.recommendation.user_id, {}).get(target)) for e in explanations}
        options = sorted({label for profile in profiles.values() for label in _labels(profile.get(target))})
    elif target in (POPULARITY, POPULARITY_FIXED):
        buckets = _popularity_buckets(dataset_id, run.recommender_run.split_id, fixed=target == POPULARITY_FIXED)
        truths = {e.pk: [buckets[e.recommendation.item_id]] for e in explanations}
        options = [str(bucket) for bucket in range(1, POPULARITY_BUCKETS + 1)]
    elif target.startswith(NUMBER_PREFIX):
        if answer_mode == AnswerMode.LIKELIHOOD:
            raise GenerationError(f"{target} is an open number: probe it with the text answer mode")
        key = target.removeprefix(NUMBER_PREFIX)
        attributes = dict(Item.objects.filter(dataset_id=dataset_id).values_list("pk", "attributes"))
        values = {e.pk: number_value(attributes[e.recommendation.item_id].get(key)) for e in explanations}
        truths = {pk: [f"{value:g}"] if value is not None else [] for pk, value in values.items()}
        options = []
    elif target.startswith(ITEM_PREFIX):
        key = target.removeprefix(ITEM_PREFIX)
        attributes = dict(Item.objects.filter(dataset_id=dataset_id).values_list("pk", "attributes"))
        truths = {e.pk: _labels(attributes[e.recommendation.item_id].get(key)) for e in explanations}
        options = sorted({label for values in attributes.values() for label in _labels(values.get(key))})
    else:
        raise GenerationError(
            f"unknown target {target!r}: age, gender, occupation, profile, popularity, popularity_fixed, "
            "item:<attribute> or number:<attribute>"
        )
    if target == "age":
        ages = [int(label) for label in options if label.isdigit()]
        options = age_bands(ages) if answer_mode == AnswerMode.LIKELIHOOD else []
    elif len(options) > MAX_OPTIONS:
        raise GenerationError(f"{target} has {len(options)} distinct values; a probe offers at most {MAX_OPTIONS}")
    return {pk: labels for pk, labels in truths.items() if labels}, options


def probe_start(
    *,
    created_by: Any,
    prober: Generator,
    generation_run: GenerationRun,
    target: str,
    sample_size: int = 0,
    seed: int = 0,
    chunk_size: int = 8,
    max_new_tokens: int = 16,
    answer_mode: str = AnswerMode.LIKELIHOOD,
    tolerance: float | None = None,
    enqueue: bool = True,
) -> AttributeProbe:
    """Create the probe and its PENDING answers; enqueue one task per chunk after commit.

    Explanations whose user or item lacks the target are left out. The probe records the
    prober's settings as they are now (``run_lineage_record``); its chunks answer with those. Raises GenerationError,
    storing nothing, for an unknown target, a target no sampled explanation has, a
    categorical target with too many values, an unknown answer mode, or a prober that cannot
    load.
    """
    answer_mode_check(answer_mode)
    if tolerance is not None and (not target.startswith(NUMBER_PREFIX) or tolerance < 0):
        raise GenerationError("a tolerance applies to number:<attribute> targets only, and is at least 0")
    if (target in USER_TARGETS or target == PROFILE) and generation_run.include_profile:
        # The explanation was written from a prompt that stated the age, gender and occupation:
        # "with the explanation" would measure copying, not what the text reveals.
        raise GenerationError(
            f"generation run #{generation_run.pk} showed the user's profile to the model, so its explanations "
            f"can copy the {target}: probe a run made without the profile"
        )
    if not 1 <= chunk_size <= 256 or not 1 <= max_new_tokens <= 200:
        raise GenerationError("chunk size must be 1 to 256 and max new tokens 1 to 200")
    generator_spec(prober)
    explanations = list(
        Explanation.objects.filter(generation_run=generation_run, status=Explanation.Status.DONE)
        .select_related("recommendation")
        .order_by("pk")
    )
    if sample_size and sample_size < len(explanations):
        explanations = sorted(random.Random(seed).sample(explanations, sample_size), key=lambda e: e.pk)  # noqa: S311
    truths, options = _truths(generation_run, target, explanations, answer_mode=answer_mode)
    if not truths:
        raise GenerationError(f"no sampled explanation's user or item has a value for {target}")
    rows = [(pk, flag, truths[pk]) for pk in sorted(truths) for flag in (False, True)]
    lineage = run_lineage_record(
        generator=prober,
        recommender_run=generation_run.recommender_run,
        seed=seed,
        sample=subsample_record(sample_size),
    )
    with transaction.atomic():
        probe = AttributeProbe.objects.create(
            created_by=created_by,
            prober=prober,
            lineage=lineage,
            generation_run=generation_run,
            target=target,
            options=options,
            answer_mode=answer_mode,
            tolerance=tolerance,
            sample_size=sample_size,
            seed=seed,
            chunk_size=chunk_size,
            max_new_tokens=max_new_tokens,
            status=AttributeProbe.Status.RUNNING,
            started_at=timezone.now(),
        )
        PROBE.write_rows(
            probe, ["explanation", "with_explanation", "truth"], rows, chunk_size=chunk_size, enqueue=enqueue
        )
    return probe


def _prompts(probe: AttributeProbe, rows: list[ProbeAnswer]) -> list[Messages]:
    run = probe.generation_run
    split = run.recommender_run.split
    domain = DOMAIN_NOUNS.get(run.recommender_run.dataset.domain, DEFAULT_DOMAIN)
    histories: dict[int, list[Interaction]] = {}
    prompts: list[Messages] = []
    for row in rows:
        recommendation = row.explanation.recommendation
        if recommendation.user_id not in histories:
            histories[recommendation.user_id] = history_for(recommendation.user, split, run.history_length)
        history = [
            {
                "title": i.item.title or i.item.external_id,
                "attributes": i.item.attributes,
                "rating": None if i.rating is None else f"{i.rating:g}",
            }
            for i in histories[recommendation.user_id]
        ]
        prompts.append(
            probe_messages(
                target=probe.target,
                history=history,
                item_title=recommendation.item.title or recommendation.item.external_id,
                item_attributes=recommendation.item.attributes,
                options=probe.options,
                explanation=row.explanation.text if row.with_explanation else None,
                domain=domain,
            )
        )
    return prompts


def _answer(probe: AttributeProbe, rows: list[ProbeAnswer], prompts: list[Messages]) -> None:
    answer_in_mode(
        probe,
        by_likelihood=lambda: _answer_by_likelihood(probe, rows, prompts),
        by_text=lambda: _answer_by_text(probe, rows, prompts),
    )


def _answer_by_likelihood(probe: AttributeProbe, rows: list[ProbeAnswer], prompts: list[Messages]) -> None:
    labels = [str(label) for label in probe.options]
    scores = score_with(probe, [(prompt, ANSWER_PREFIX, [f" {label}" for label in labels]) for prompt in prompts])
    answered = []
    for row, prompt, score in zip(rows, prompts, scores, strict=True):
        answer = labels[score.best]
        fields = {
            "prompt": prompt,
            "output": f"{ANSWER_PREFIX} {answer}",
            "answer": answer,
            "probabilities": dict(zip(labels, score.probabilities, strict=True)),
            "parse_error": "",
            "correct": is_correct(probe.target, answer, row.truth, probe.tolerance or 0.0),
        }
        answered.append((row, fields))
    PROBE.complete(answered)


def _answer_by_text(probe: AttributeProbe, rows: list[ProbeAnswer], prompts: list[Messages]) -> None:
    completions = generate_with(probe, prompts, max_new_tokens=probe.max_new_tokens)
    answered = []
    for row, prompt, completion in zip(rows, prompts, completions, strict=True):
        if probe.target == PROFILE:
            answered.append(
                (row, {"prompt": prompt, "output": completion.text} | _profile_fields(probe, row, completion.text))
            )
            continue
        parsed = parse_answer(completion.text, probe.target, probe.options)
        answer = parsed.value if parsed.ok else None
        fields = {
            "prompt": prompt,
            "output": completion.text,
            "answer": answer or "",
            "probabilities": None,
            "parse_error": parsed.error[:200],
            "correct": is_correct(probe.target, answer, row.truth, probe.tolerance or 0.0),
        }
        answered.append((row, fields))
    PROBE.complete(answered)


def _profile_fields(probe: AttributeProbe, row: ProbeAnswer, text: str) -> dict[str, Any]:
    """A profile answer's columns: the parsed fields (as compact JSON; empty when none parsed),
    each field's answer and correctness, the fields' parse errors, and ``correct`` when every
    field the user has is right."""
    parsed = parse_profile(text, probe.options)
    fields = {
        field: {
            "answer": result.value if result.ok else "",
            "correct": is_correct(field, result.value if result.ok else None, row.truth[field]),
            "error": result.error[:80],
        }
        for field, result in parsed.items()
        if field in row.truth
    }
    answers = {field: values["answer"] for field, values in fields.items() if values["answer"]}
    errors = [f"{field}: {values['error']}" for field, values in fields.items() if values["error"]]
    return {
        "answer": json.dumps(answers, separators=(",", ":"))[:200] if answers else "",
        "field_answers": fields,
        "probabilities": None,
        "parse_error": "; ".join(errors)[:200],
        "correct": all(values["correct"] for values in fields.values()),
    }


PROBE = register(
    ChunkedKind(
        name="probe",
        label="attribute probe",
        job_model=AttributeProbe,
        task="explanations.probe_chunk",
        row_model=ProbeAnswer,
        job_field="probe",
        done_at="answered_at",
        blank={
            "prompt": [],
            "output": "",
            "answer": "",
            "field_answers": None,
            "parse_error": "",
            "error": "",
            "attempts": 0,
        },
        prompts=_prompts,
        process=_answer,
        summary=lambda c: f"{c['finished']} answered, {c['unparsed']} unparsed, {c['failed']} failed",
        extra_counts={"unparsed": Q(status=ProbeAnswer.Status.DONE, answer="")},
        job_related=("generation_run__recommender_run__split", "generation_run__recommender_run__dataset"),
        row_related=("explanation__recommendation__user", "explanation__recommendation__item"),
    )
)


def probe_chunk_run(*, probe_id: int, chunk: int) -> None:
    """Answer the still-PENDING rows of one chunk in one batched call
    (``ChunkedKind.run_chunk``: idempotent, safe to run twice at once; a backend failure
    marks the chunk's rows FAILED and retryable)."""
    PROBE.run_chunk(probe_id, chunk)


def probes_requeue_stalled() -> int:
    """Enqueue every chunk with PENDING answers in a RUNNING probe; return how many
    (``ChunkedKind.requeue_stalled``)."""
    return PROBE.requeue_stalled()
