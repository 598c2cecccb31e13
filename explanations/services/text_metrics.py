"""Text metrics as a worker job: requested for a run (and an optional reference run), computed
once per version of the explanations they read, read back by reports.

A job is one unit of the engine (``services.engine.UnitKind``); what it computes is
``generation_run_text_metrics``: the database reads, around the pure metrics of
``explanations.textmetrics``."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from typing import Any

import numpy.typing as npt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from explanations.embeddings import embed
from explanations.models import Explanation, GenerationRun, TextMetrics
from explanations.services.engine import UnitKind, register
from explanations.textmetrics import (
    GroundingCase,
    PhraseMatcher,
    catalogue_forms,
    distinct_n,
    embedding_similarity,
    feature_metrics,
    feature_vocabulary,
    features_in,
    grounding,
    item_features,
    length_distribution,
    personalisation_similarity,
    reference_overlap,
    refusal_rate,
    unique_sentence_ratio,
    without_titles,
)
from explanations.texts import copies_prompt, natural_title
from recommendations.models import Interaction, Item, RecommenderRun


def text_metrics_version(run_ids: Sequence[int]) -> str:
    """A fingerprint of the explanations of ``run_ids``: changes when any is added, changed
    (regenerated) or removed. One query."""
    parts = Explanation.objects.filter(generation_run__in=run_ids).aggregate(
        n=Count("id"), done=Count("id", filter=Q(status=Explanation.Status.DONE)), last=Max("generated_at")
    )
    return hashlib.sha256(repr((sorted(run_ids), parts)).encode()).hexdigest()


def text_metrics_request(
    *,
    run: GenerationRun,
    reference_run: GenerationRun | None = None,
    embeddings: bool = True,
    created_by: Any = None,
    enqueue: bool = True,
) -> TextMetrics:
    """The text metrics row of ``run`` for its current explanations, created and enqueued on
    the default queue (after commit) when there is none.

    There is one row per run, reference run, ``embeddings`` and version of the inputs (a
    unique constraint settles two requests at once). It is returned as it is, except that
    a RUNNING row not finished ``XREC_TEXT_METRICS_STALE_SECONDS`` after it started (its
    worker was lost) and a FAILED row that failed over ``XREC_TEXT_METRICS_RETRY_SECONDS``
    ago go back to PENDING and are enqueued again.
    """
    ids = [run.pk] + ([reference_run.pk] if reference_run is not None else [])
    key = {
        "generation_run": run,
        "reference_run": reference_run,
        "embeddings": embeddings,
        "inputs_version": text_metrics_version(ids),
    }
    now = timezone.now()
    with transaction.atomic():
        current = _locked(key)
        if current is None:
            try:
                with transaction.atomic():
                    current = TextMetrics.objects.create(created_by=created_by, **key)
            except IntegrityError:  # another request created it first
                current = TextMetrics.objects.select_for_update().get(**key)
            else:
                if enqueue:
                    TEXT_METRICS.enqueue(current)
                return current
        lost = (
            current.status == TextMetrics.Status.RUNNING
            and current.started_at is not None
            and (current.started_at < now - timedelta(seconds=settings.XREC_TEXT_METRICS_STALE_SECONDS))
        )
        retry = (
            current.status == TextMetrics.Status.FAILED
            and current.finished_at is not None
            and (current.finished_at < now - timedelta(seconds=settings.XREC_TEXT_METRICS_RETRY_SECONDS))
        )
        if lost or retry:
            current.status, current.started_at, current.finished_at = TextMetrics.Status.PENDING, None, None
            current.error = ""
            current.save(update_fields=["status", "started_at", "finished_at", "error"])
            if enqueue:
                TEXT_METRICS.enqueue(current)
    return current


def _locked(key: dict[str, Any]) -> TextMetrics | None:
    """The row for ``key``, locked for this transaction, or None."""
    return TextMetrics.objects.select_for_update().filter(**key).first()


def _compute(job: TextMetrics) -> dict[str, Any]:
    metrics = generation_run_text_metrics(
        job.generation_run, reference_run=job.reference_run, embeddings=job.embeddings
    )
    return {"metrics": metrics}


TEXT_METRICS = register(
    UnitKind(
        name="text_metrics",
        label="text metrics job",
        job_model=TextMetrics,
        task="explanations.text_metrics",
        process=_compute,
        phase="reading explanations and computing",
        summary=lambda job: f"{job.metrics['n']} explanations",
    )
)


def text_metrics_run(*, metrics_id: int) -> None:
    """Compute a PENDING row's metrics (``UnitKind.run``). Idempotent: any other status is
    left alone; a row cancelled while computing keeps no result."""
    TEXT_METRICS.run(metrics_id)


def text_metrics_requeue_stalled() -> int:
    """Enqueue every PENDING row again (its message may have been lost); return how many.
    Duplicates are harmless: only a PENDING row is ever claimed."""
    return TEXT_METRICS.requeue_stalled()


def _prompt_text(prompt: Any) -> str:
    if not isinstance(prompt, list):
        return ""
    return "\n".join(str(message.get("content", "")) for message in prompt if isinstance(message, dict))


def generation_run_text_metrics(
    run: GenerationRun,
    *,
    reference_run: GenerationRun | None = None,
    feature_attributes: Collection[str] | None = None,
    embeddings: bool = True,
    max_examples: int = 5,
) -> dict[str, Any]:
    """Every text metric of ``run``'s DONE explanations, as a JSON-serialisable dict.

    - ``length`` (against the run's ``max_words``), ``refusal_rate``, ``usr``,
      ``distinct_1``, ``distinct_2``;
    - ``echo_rate`` / ``n_echoes``: explanations that copy a run of words from their own
      stored prompt (``texts.copies_prompt``) instead of explaining;
    - ``features``: FMR/FCR/DIV (``feature_metrics``) over the vocabulary of the dataset's
      item attributes (``feature_attributes``, default as in ``item_features``; the
      attributes that gave features are listed), with title mentions blanked out first
      (``without_titles``);
    - ``grounding`` (``grounding``) against the dataset's titles. The titles an explanation's
      prompt showed are the catalogue titles found verbatim in its stored prompt messages
      (history and target; as stored or in natural order), so they are exactly what the model
      saw whatever the template.
      Rows stored without a prompt fall back to the read the prompt was built from: the
      user's ``history_length`` most recent train-side interactions (``prompts.history_for``)
      and the target; ``history_source`` counts both kinds;
    - with ``embeddings``: ``personalisation`` (``personalisation_similarity``);
    - with ``reference_run``: ``reference`` (``reference_overlap`` and
      ``embedding_similarity``) over the explanations both runs have for the same
      recommendation (only runs of the same recommender run share any).

    Reads a fixed number of queries whatever the run's size (at most five); loads the
    embedding model once per process when ``embeddings`` is on.
    """
    recommender_run = RecommenderRun.objects.values("dataset_id", "split_id").get(pk=run.recommender_run_id)
    rows, split_id = _explanation_rows(run), recommender_run["split_id"]
    catalogue, titles = _catalogue(recommender_run["dataset_id"])
    texts = [text for _, text, *_ in rows]
    cases, recomputed = _grounding_cases(run, rows, catalogue, titles, split_id)
    features, features_named = _run_features(rows, catalogue, titles, feature_attributes)
    echoes = [bool(_prompt_text(prompt)) and copies_prompt(text, prompt) for _, text, prompt, *_ in rows]
    result: dict[str, Any] = {
        "run": run.pk,
        "n": len(rows),
        "length": length_distribution(texts, word_limit=run.max_words),
        "refusal_rate": refusal_rate(texts),
        "usr": unique_sentence_ratio(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "features": features,
        "grounding": grounding(cases, titles, features_named=features_named, max_examples=max_examples),
        "echo_rate": sum(echoes) / len(rows) if rows else None,
        "n_echoes": sum(echoes),
        "history_source": {"prompt": len(rows) - recomputed, "recomputed": recomputed},
        "personalisation": None,
        "reference": None,
    }
    vectors = None
    if embeddings:
        vectors = embed(texts)
        result["personalisation"] = personalisation_similarity(
            [item_id for *_, item_id in rows], [row[4] for row in rows], vectors
        )
    if reference_run is not None:
        result["reference"] = _reference(rows, texts, reference_run, vectors)
    return result


Row = tuple[int, str, Any, int, int, int]  # id, text, prompt, recommendation, user, item
Catalogue = dict[int, tuple[str, str, dict[str, Any]]]  # item id → title, external id, attributes


def _explanation_rows(run: GenerationRun, explanation_ids: Collection[int] | None = None) -> list[Row]:
    """The run's DONE explanations (those of ``explanation_ids`` when given), in id order."""
    explanations = Explanation.objects.filter(generation_run=run, status=Explanation.Status.DONE)
    if explanation_ids is not None:
        explanations = explanations.filter(pk__in=list(explanation_ids))
    return list(
        explanations.order_by("id").values_list(
            "id", "text", "prompt", "recommendation_id", "recommendation__user_id", "recommendation__item_id"
        )
    )


def _catalogue(dataset_id: int) -> tuple[Catalogue, list[str]]:
    """The dataset's items (id → title, external id, attributes) and its sorted titles."""
    catalogue = {
        pk: (title, external_id, attributes)
        for pk, title, external_id, attributes in Item.objects.filter(dataset_id=dataset_id).values_list(
            "id", "title", "external_id", "attributes"
        )
    }
    return catalogue, sorted({title for title, _, _ in catalogue.values() if title})


def hallucinated_titles(runs: Iterable[GenerationRun], explanation_ids: Collection[int]) -> dict[int, bool]:
    """Explanation id → whether it names a catalogue title its prompt never showed (the
    ``grounding`` metric, explanation by explanation), for the DONE explanations of ``runs``
    (with their recommender runs) among ``explanation_ids``. Each dataset's catalogue is read,
    and its title matcher built, once for all its runs."""
    by_dataset: dict[int, list[GenerationRun]] = {}
    for run in runs:
        by_dataset.setdefault(run.recommender_run.dataset_id, []).append(run)
    flags: dict[int, bool] = {}
    for dataset_id, dataset_runs in by_dataset.items():
        catalogue, titles = _catalogue(dataset_id)
        ids, cases = [], []
        for run in dataset_runs:
            rows = _explanation_rows(run, explanation_ids)
            cases += _grounding_cases(run, rows, catalogue, titles, run.recommender_run.split_id)[0]
            ids += [row[0] for row in rows]
        flags |= zip(ids, grounding(cases, titles, per_case=True)["hallucinated"], strict=True)
    return flags


def _grounding_cases(
    run: GenerationRun, rows: list[Row], catalogue: Catalogue, titles: list[str], split_id: int | None
) -> tuple[list[GroundingCase], int]:
    """One grounding case per row, and how many rows had no stored prompt.

    Titles shown: verbatim in the stored prompt (as stored or in natural order, "The Usual
    Suspects", as the grounded template writes them), or else the history the prompt was
    built from."""
    exact_owners: dict[str, set[str]] = {}
    for title in titles:
        for form in {title.strip(), natural_title(title)}:
            exact_owners.setdefault(form.lower(), set()).add(title)
    exact = PhraseMatcher(exact_owners)
    without_prompt = [row for row in rows if not _prompt_text(row[2])]
    histories: dict[int, list[str]] = {user_id: [] for *_, user_id, _ in without_prompt}
    if histories:
        history = Interaction.objects.filter(user_id__in=sorted(histories))
        if split_id is not None:
            history = history.outside_test_of(split_id)
        for user_id, title, external_id in history.order_by("user_id", "-timestamp", "-id").values_list(
            "user_id", "item__title", "item__external_id"
        ):
            if len(histories[user_id]) < run.history_length:
                histories[user_id].append(title or external_id)
    cases = []
    for pk, text, prompt, _, user_id, item_id in rows:
        title, external_id, _ = catalogue[item_id]
        if prompt_text := _prompt_text(prompt):
            shown = {t for _, _, form in exact.find(prompt_text) for t in exact_owners.get(form, ())}
        else:
            shown = set(histories[user_id])
        cases.append(GroundingCase(text=text, shown_titles=shown, target_title=title or external_id, ref=pk))
    return cases, len(without_prompt)


def _run_features(
    rows: list[Row], catalogue: Catalogue, titles: list[str], feature_attributes: Collection[str] | None
) -> tuple[dict[str, Any], list[bool]]:
    """The ``features`` block, and per row whether it names one of its own item's features."""
    # Features named inside a title ("Star Wars") are not features.
    mentions = PhraseMatcher(catalogue_forms(titles))
    blanked = [without_titles(text, mentions) for _, text, *_ in rows]
    vocabulary = feature_vocabulary((attributes for _, _, attributes in catalogue.values()), feature_attributes)
    own_features = [item_features(catalogue[item_id][2], feature_attributes) for *_, item_id in rows]
    found = features_in(blanked, vocabulary)
    features = feature_metrics(blanked, own_features, vocabulary, found=found)
    features_named = [
        bool(named & {feature.lower() for feature in own}) for named, own in zip(found, own_features, strict=True)
    ]
    feature_keys = {
        key
        for _, _, attributes in catalogue.values()
        for key, value in attributes.items()
        if item_features({key: value}, feature_attributes)
    }
    return {"attributes": sorted(feature_keys)} | features, features_named


def _reference(
    rows: list[Row], texts: list[str], reference_run: GenerationRun, vectors: npt.NDArray[Any] | None
) -> dict[str, Any]:
    """Overlap with the reference run's explanations of the same recommendations."""
    reference = dict(
        Explanation.objects.filter(generation_run=reference_run, status=Explanation.Status.DONE).values_list(
            "recommendation_id", "text"
        )
    )
    paired = [index for index, row in enumerate(rows) if row[3] in reference]
    references = [reference[rows[index][3]] for index in paired]
    result = (
        {"run": reference_run.pk}
        | reference_overlap([texts[index] for index in paired], references)
        | {"embedding_similarity": None}
    )
    if vectors is not None:
        result["embedding_similarity"] = embedding_similarity(vectors[paired], embed(references))
    return result
