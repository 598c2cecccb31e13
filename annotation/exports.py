"""Rating exports: one flat row per answer, with the annotator's pseudonym, timing, side
order, what the campaign showed beside each explanation (profile fields, history rows; an
empty history length means as many as the prompt showed) and the full lineage of what was rated
(recommender run and split, generator, adapter and its checksum, prompt, the generation's seed
and sample), as each generation run recorded it when it started; never a path on the server.
A first-person answer carries the lineage of the campaign run that its participant's own run
repeats; its ``explanation_a_id``/``explanation_b_id`` and ``recommender_run_id`` stay the
participant's own.

Read-only; rows stream from the database in chunks, so an export of any size runs in
constant memory. The CSV, JSONL and API exports all come from ``rating_export_rows``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from annotation.agreement import included_pool_ratings, run_lookup
from annotation.models import Assignment, Campaign, CampaignItem, ClaimLabel, Rating

EXPORT_FIELDS = [
    "campaign_id", "campaign_mode", "campaign_routing", "shown_profile_fields", "shown_history_length",
    "item_id", "item_kind", "assignment_id", "position",
    "annotator", "annotator_platform", "annotator_flagged", "annotator_excluded",
    "criterion", "value", "choice", "left_side", "swapped", "revisions", "check_passed",
    "served_at", "submitted_at", "seconds_on_task", "visible_seconds",
    "dataset", "dataset_user", "item_external_id", "item_title", "rank",
    "recommender_run_id", "algorithm", "split_id", "split", "split_seed",
    "explanation_a_id", "generation_run_a", "generator_a", "adapter_a", "adapter_sha256_a", "prompt_a",
    "seed_a", "sample_a",
    "explanation_b_id", "generation_run_b", "generator_b", "adapter_b", "adapter_sha256_b", "prompt_b",
    "seed_b", "sample_b",
    "claim_id", "claim_number", "claim_text", "claim_start", "claim_end", "marked_spans", "marked_text",
]  # fmt: skip
_SIDE_LINEAGE = ("generator", "adapter", "adapter_sha256", "prompt", "seed", "sample")

_ASSIGNMENT_VALUES = {
    "assignment_id": "pk",
    "position": "position",
    "item_id": "item_id",
    "item_kind": "item__kind",
    "annotator": "participant__pseudonym",
    "annotator_platform": "participant__platform",
    "annotator_flagged": "participant__flagged",
    "annotator_excluded": "participant__excluded",
    "swapped": "swapped",
    "revisions": "revisions",
    "check_passed": "check_passed",
    "check_answer": "check_answer",
    "served_at": "served_at",
    "submitted_at": "submitted_at",
    "seconds_on_task": "seconds_on_task",
    "visible_seconds": "visible_seconds",
    "dataset": "item__recommendation__run__dataset__name",
    "dataset_user": "item__recommendation__user__external_id",
    "item_external_id": "item__recommendation__item__external_id",
    "item_title": "item__recommendation__item__title",
    "rank": "item__recommendation__rank",
    "recommender_run_id": "item__recommendation__run_id",
    "algorithm": "item__recommendation__run__algorithm",
    "explanation_a_id": "item__explanation_id",
    "explanation_b_id": "item__explanation_b_id",
}


def run_lineage(campaign: Campaign) -> dict[int, dict[str, Any]]:
    """Generation run id → what it recorded when it started (``GenerationRun.public_lineage``):
    generator, adapter name and sha256, prompt version, split, seed and sample."""
    lineage = {}
    for run in campaign.generation_runs.select_related("generator__adapter_training", "template"):
        recorded = run.public_lineage()
        lineage[run.pk] = {
            "generation_run": run.pk,
            # The precision the workers actually used (an ``auto`` generator's choice), once known.
            "generator": f"{recorded['generator']} ({recorded['backend']}:{recorded['model']}, "
            f"{recorded['precision'] or recorded['quantization']})",
            "adapter": recorded["adapter"],
            "adapter_sha256": recorded["adapter_sha256"],
            "prompt": recorded["prompt"],
            "seed": run.seed,
            "sample": " ".join(str(p) for p in (recorded["sample"], recorded["sample_size"]) if p),
            "split_id": recorded["split"],
            "split": recorded["split_name"],
            "split_seed": recorded["split_seed"],
        }
    return lineage


def rating_export_rows(campaign: Campaign, *, include_excluded: bool = False) -> Iterator[dict[str, Any]]:
    """Every stored answer of the campaign once, ordered by assignment then criterion.

    Likert answers fill ``value``, pairwise answers ``choice`` (canonical: ``a`` is
    ``explanation_a_id``); ``left_side`` says which one the annotator saw on the left. A claims
    campaign has one row per claim label: ``criterion`` is ``claim_<number>``, ``choice`` the
    label, with the claim's text and span in the explanation and the words the annotator
    marked in it (``marked_spans``: offsets in the claim's text, JSON).
    Attention checks appear once each with criterion ``fits_user``. Training answers are
    left out. Excluded annotators are left out unless ``include_excluded``.
    """
    lineage = run_lineage(campaign)
    assignments = Assignment.objects.filter(campaign=campaign, status=Assignment.Status.SUBMITTED).exclude(
        item__kind=CampaignItem.Kind.TRAINING
    )
    if not include_excluded:
        assignments = assignments.filter(participant__excluded=False)
    batch: list[dict[str, Any]] = []
    # A first-person answer's lineage is that of the campaign run its participant's own run
    # repeats (with the same generator, prompt and seed): rows group by the campaign's runs.
    paths = _ASSIGNMENT_VALUES | {
        "run_a": run_lookup(campaign, start=""),
        "run_b": run_lookup(campaign, "explanation_b", start=""),
    }
    rows = assignments.order_by("pk").values(*paths.values())
    for raw in rows.iterator(chunk_size=2000):
        batch.append({key: raw[path] for key, path in paths.items()})
        if len(batch) == 2000:
            yield from _emit(campaign, batch, lineage)
            batch = []
    if batch:
        yield from _emit(campaign, batch, lineage)


def _emit(
    campaign: Campaign,
    batch: list[dict[str, Any]],
    lineage: dict[int, dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    answers: dict[int, list[tuple[str, Any, str]]] = {}
    for assignment_id, name, value, choice in (
        Rating.objects.filter(assignment_id__in=[row["assignment_id"] for row in batch])
        .order_by("assignment_id", "criterion__position", "criterion_id")
        .values_list("assignment_id", "criterion__name", "value", "choice")
    ):
        answers.setdefault(assignment_id, []).append((name, value, choice))
    claims = _claim_answers(batch) if campaign.mode == Campaign.Mode.CLAIMS else {}
    shown = {"shown_profile_fields": ",".join(campaign.profile_fields), "shown_history_length": campaign.history_length}
    for row in batch:
        base = {key: row[key] for key in EXPORT_FIELDS if key in row}
        base |= {
            "campaign_id": campaign.pk,
            "campaign_mode": campaign.mode,
            "campaign_routing": campaign.routing,
        } | shown
        base["left_side"] = ("b" if row["swapped"] else "a") if row["explanation_b_id"] else ""
        for side, run_key in (("a", "run_a"), ("b", "run_b")):
            run = lineage.get(row[run_key]) if row[run_key] else None
            base[f"generation_run_{side}"] = run["generation_run"] if run else None
            for key in _SIDE_LINEAGE:
                base[f"{key}_{side}"] = run[key] if run else ""
        # Both sides explain the same recommendation, so they share its recommender run's split.
        first = lineage.get(row["run_a"]) or {}
        base |= {key: first.get(key) for key in ("split_id", "split", "split_seed")}
        if row["item_kind"] == CampaignItem.Kind.ATTENTION:
            yield base | {"criterion": "fits_user", "value": None, "choice": row["check_answer"]}
            continue
        for name, value, choice in answers.get(row["assignment_id"], []):
            yield base | {"criterion": name, "value": value, "choice": choice}
        for claim in claims.get(row["assignment_id"], []):
            yield base | claim


def _claim_answers(batch: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Assignment id → its claim labels as export fields, in claim order."""
    claims: dict[int, list[dict[str, Any]]] = {}
    labels = (
        ClaimLabel.objects.filter(assignment_id__in=[row["assignment_id"] for row in batch])
        .order_by("assignment_id", "claim__position")
        .values_list("assignment_id", "claim_id", "claim__position", "claim__text", "claim__start", "claim__end",
                     "label", "spans")
    )  # fmt: skip
    for assignment_id, claim_id, position, text, start, end, label, spans in labels:
        claims.setdefault(assignment_id, []).append(
            {
                "criterion": f"claim_{position + 1}",
                "value": None,
                "choice": label,
                "claim_id": claim_id,
                "claim_number": position + 1,
                "claim_text": text,
                "claim_start": start,
                "claim_end": end,
                "marked_spans": json.dumps(spans) if spans else "",
                "marked_text": " … ".join(text[a:b] for a, b in spans),
            }
        )
    return claims


# The rating export's formats (the ``fmt`` of its URL) and their media types.
EXPORT_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def rating_export_lines(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """``rating_export_rows`` as CSV lines (``csv``, header first, every cell ``csv_safe``) or
    as JSON lines (``jsonl``), produced as the rows are read."""
    if fmt == "csv":
        return csv_stream(EXPORT_FIELDS, rows)
    return (json.dumps(row, default=str) + "\n" for row in rows)


def campaign_preferences(
    campaign: Campaign, *, criteria: Collection[str] | None = None, include_flagged: bool = False
) -> list[dict[str, Any]]:
    """The human preference of every rated pair of a pairwise campaign, as plain data.

    One dict per pool item that has at least one answer: ``recommendation``, ``a`` and ``b``
    (explanation ids, canonical order), ``votes`` ({"a", "b", "tie"} counts over the included
    annotators' answers to ``criteria``, default all) and ``winner``: the choice with the
    most votes, or ``tie`` when the top count is shared. Excluded annotators never count;
    flagged ones only with ``include_flagged``. This is what a judge is tuned on
    (``explanations.services.adapters.judge_training_start``).
    """
    if campaign.mode != Campaign.Mode.PAIRWISE:
        return []
    ratings = included_pool_ratings(campaign, include_flagged=include_flagged).exclude(choice="")
    if criteria is not None:
        ratings = ratings.filter(criterion__name__in=list(criteria))
    pairs: dict[tuple[int, int, int], dict[str, int]] = {}
    for recommendation, a, b, choice in ratings.order_by("assignment__item_id").values_list(
        "assignment__item__recommendation_id",
        "assignment__item__explanation_id",
        "assignment__item__explanation_b_id",
        "choice",
    ):
        votes = pairs.setdefault((recommendation, a, b), {"a": 0, "b": 0, "tie": 0})
        votes[choice] += 1
    preferences = []
    for (recommendation, a, b), votes in pairs.items():
        top = max(votes.values())
        leaders = [choice for choice, count in votes.items() if count == top]
        winner = leaders[0] if len(leaders) == 1 else "tie"
        preferences.append({"recommendation": recommendation, "a": a, "b": b, "votes": votes, "winner": winner})
    return preferences


# --- CSV ------------------------------------------------------------------------------------

# A cell starting with one of these runs as a formula in spreadsheet programs (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def csv_safe(value: Any) -> Any:
    """A cell value a spreadsheet shows as written. Every CSV the site writes goes through this.

    Dataset titles, generator names and LLM output are untrusted: a text cell starting with
    a formula character gets a leading quote. Numbers, and text that is exactly a number
    ("-0.12"), are left alone; "-2+3+cmd|' /C calc'!A0" is not a number.
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS) or _PLAIN_NUMBER.fullmatch(value):
        return value
    return f"'{value}"


class _Echo:
    """A file whose write returns the line, so csv.writer can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


def csv_stream(fieldnames: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header line, then one CSV line per row, each cell passed through ``csv_safe``."""
    return _csv_lines(fieldnames, ([row.get(name) for name in fieldnames] for row in rows))


def csv_text(header: list[str], rows: Iterable[list[Any]]) -> str:
    """A whole CSV document, each cell passed through ``csv_safe``."""
    return "".join(_csv_lines(header, rows))
