"""The study report: every perspective on a set of generation runs, with intervals.

A study is a recommender run and two or more of its generation runs. The report gathers what
exists for them: pairwise and Likert judge runs over those generation runs, human campaigns
over them, attribute probes and claim checks on them, and their text metrics. Everything is read from the
database and computed here, deterministically under ``seed``; nothing is written.

Sections (keys of ``study_report``): ``recommender``, ``runs`` (lineage), ``judge``,
``human``, ``attributes``, ``claims`` (the automatic checker), ``human_claims`` (claims
campaigns), ``text``, ``meta``. Each number that estimates something carries
an interval (``Interval.to_dict()``: estimate, low, high, n). Unparsed judge and probe answers
are counted and shown, never dropped.

Every judge run and probe also carries ``decisiveness``: how sure its answers were (the mean
probability of the chosen option and the mean entropy, for answers scored by likelihood), beside
the chance level (1 / number of options) and the share of its most common answer, so that a
judge or prober that says the same thing every time, or spreads its probability evenly, is not
read as a finding. ``meta.empty`` lists, in words, the sections with no usable answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, Q

from annotation.agreement import campaign_ranking, ranking_view
from annotation.models import Campaign, ClaimLabel, Participant, Rating
from annotation.study.attributes import probe_section
from annotation.study.claims import claims_section, human_claims_section
from annotation.study.first_person import first_vs_third
from annotation.study.human import human_likert_section, human_pairwise_section
from annotation.study.judges import judge_likert_section, judge_pairwise_section
from annotation.study.meta import meta_section
from annotation.study.sections import run_label
from explanations.models import (
    AttributeProbe,
    CheckedClaim,
    ClaimCheck,
    Explanation,
    GenerationRun,
    JudgeRun,
    JudgeVerdict,
    ProbeAnswer,
)
from explanations.services.text_metrics import text_metrics_request
from recommendations.models import RecommenderRun


def run_lineage(run: GenerationRun) -> dict[str, Any]:
    """What the run used, as it recorded when it started (``GenerationRun.public_lineage``):
    never the generator as it is now, and never a path on the server (the adapter by its
    name and sha256, a local model by its folder's name)."""
    lineage = run.public_lineage()
    return {
        "generation_run": run.pk,
        "label": run_label(run),
        "recorded": lineage["recorded"],
        "generator": lineage["generator"],
        "backend": lineage["backend"],
        "model": lineage["model"],
        "quantization": lineage["quantization"],
        "precision": lineage["precision"],
        "adapter": lineage["adapter"],
        "adapter_sha256": lineage["adapter_sha256"],
        "adapter_training": lineage["adapter_training"],
        "base_url": lineage["base_url"],
        "decoding": lineage["decoding"],
        "prompt": lineage["prompt"],
        "prompt_sha256": lineage["prompt_sha256"],
        "split": lineage["split"],
        "split_name": lineage["split_name"],
        "split_seed": lineage["split_seed"],
        "max_words": run.max_words,
        "history_length": run.history_length,
        "seed": run.seed,
        "sample": lineage["sample"],
        "sample_size": lineage["sample_size"],
        "explanations": run.n_total,
    }


def study_report(
    *,
    recommender_run: RecommenderRun,
    generation_runs: Sequence[GenerationRun],
    seed: int = 0,
    include_flagged: bool = True,
    text_metrics: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every perspective on ``generation_runs`` (all of ``recommender_run``), as plain data.

    Judge runs, campaigns and probes are included when all their generation runs are among
    ``generation_runs``. ``include_flagged=False`` leaves out annotators flagged by quality
    checks (excluded annotators are always left out). ``text_metrics`` (generation run id →
    ``generation_run_text_metrics``) is passed in because it is computed once per run and
    cached by the caller. Deterministic for a given seed.
    """
    runs = sorted(generation_runs, key=lambda run: run.pk)
    chosen = {run.pk for run in runs}
    labels = {run.pk: run_label(run) for run in runs}
    judges = _included_judge_runs(chosen)
    campaigns = _included_campaigns(chosen)
    probes = AttributeProbe.objects.filter(
        generation_run__in=chosen, status=AttributeProbe.Status.SUCCEEDED
    ).select_related("prober")
    pairwise_judges = [judge_pairwise_section(j, labels, seed) for j in judges if j.mode == JudgeRun.Mode.PAIRWISE]
    likert_judges = [judge_likert_section(j, labels, seed) for j in judges if j.mode == JudgeRun.Mode.LIKERT]
    human: list[dict[str, Any]] = []
    first_person: list[dict[str, Any]] = []
    for c in campaigns:
        if c.mode != Campaign.Mode.CLAIMS:
            summarise = human_likert_section if c.mode == Campaign.Mode.LIKERT else human_pairwise_section
            section = summarise(c, labels, seed, include_flagged=include_flagged)
            section["ranking"] = _ranking(c, labels)
            (first_person if c.is_first_person else human).append(section)
    human_claims = [
        human_claims_section(c, labels, seed, include_flagged=include_flagged)
        for c in campaigns
        if c.mode == Campaign.Mode.CLAIMS
    ]
    meta = meta_section(pairwise_judges, likert_judges, human, text_metrics or {}, labels, seed)
    attributes = [probe_section(probe, seed) for probe in probes]
    checks = ClaimCheck.objects.filter(generation_run__in=chosen, status=ClaimCheck.Status.SUCCEEDED)
    claims = [claims_section(check, labels, seed) for check in checks.select_related("checker").order_by("pk")]
    meta["empty"] = _empty_sections(pairwise_judges, likert_judges, attributes)
    for section in (*pairwise_judges, *likert_judges, *human, *first_person):
        for key in [key for key in section if key.startswith("_")]:
            del section[key]
    return {
        "recommender": {
            "run": recommender_run.pk,
            "algorithm": recommender_run.algorithm,
            "dataset": recommender_run.dataset.name,
            "metrics": recommender_run.metrics,
        },
        "runs": [run_lineage(run) for run in runs],
        "judge": {"pairwise": pairwise_judges, "likert": likert_judges},
        "human": human,
        "attributes": attributes,
        "claims": claims,
        "human_claims": human_claims,
        # First person beside third person: the same generators rated by people about their own
        # recommendations and by annotators about dataset users' (``study.first_person``).
        "first_person": {"campaigns": first_person, "comparison": first_vs_third(first_person, human)},
        "text": {labels[run_id]: metrics for run_id, metrics in (text_metrics or {}).items() if run_id in labels},
        "meta": meta,
        "seed": seed,
        "include_flagged": include_flagged,
    }


def _ranking(campaign: Campaign, labels: dict[int, str]) -> dict[str, Any] | None:
    """Whether the campaign's ranking of its runs is settled, as its page shows it (over every
    annotator not excluded), with when it first was; None for a campaign that ranks none."""
    ranking = campaign_ranking(campaign)
    if ranking is None:
        return None
    view = ranking_view(campaign, ranking, labels)
    return view | {"settled_at": campaign.settled_at.isoformat() if campaign.settled_at else None}


def _included_judge_runs(chosen: set[int]) -> list[JudgeRun]:
    """The succeeded judge runs all of whose generation runs are among ``chosen``, by id."""
    return [
        judge
        for judge in JudgeRun.objects.filter(generation_runs__in=chosen, status=JudgeRun.Status.SUCCEEDED)
        .select_related("judge")
        .prefetch_related("generation_runs")
        .distinct()
        .order_by("pk")
        if {run.pk for run in judge.generation_runs.all()} <= chosen
    ]


def _included_campaigns(chosen: set[int]) -> list[Campaign]:
    """The campaigns all of whose generation runs are among ``chosen``, by id."""
    return [
        campaign
        for campaign in Campaign.objects.filter(generation_runs__in=chosen)
        .prefetch_related("generation_runs")
        .distinct()
        .order_by("pk")
        if {run.pk for run in campaign.generation_runs.all()} <= chosen
    ]


def decisive_pairs(judge: dict[str, Any]) -> int:
    """Pairs a pairwise judge section decided (both orders picked the same explanation)."""
    return sum(pair["win_tie_loss"]["counts"]["a"] + pair["win_tie_loss"]["counts"]["b"] for pair in judge["pairs"])


def _empty_sections(
    pairwise_judges: list[dict[str, Any]], likert_judges: list[dict[str, Any]], attributes: list[dict[str, Any]]
) -> list[str]:
    """One sentence per judge run or probe none of whose answers could be used, and per
    pairwise judge whose two orders never agreed (every pair a tie: nothing to rank)."""
    sentences = []
    for judge in (*pairwise_judges, *likert_judges):
        if not judge["usable"]:
            sentences.append(
                f"Judge run #{judge['judge_run']} ({judge['judge']}): no usable verdict; "
                f"all {judge['total']} answers were unparsed or failed."
            )
        elif "pairs" in judge and not decisive_pairs(judge):
            bias = (judge.get("position_bias") or {}).get("first") or {}
            first = "" if bias.get("estimate") is None else f" (it picked the first slot in {bias['estimate']:.0%})"
            sentences.append(
                f"Judge run #{judge['judge_run']} ({judge['judge']}): its two orders never agreed{first}, so "
                "every pair is a tie; no win shares or strengths are drawn. Its position bias is below."
            )
    for probe in attributes:
        if not probe["usable"]:
            sentences.append(
                f"Probe #{probe['probe']} ({probe['target']}, {probe['prober']}): no usable answer; "
                f"all {probe['total']} answers were unparsed or failed."
            )
    return sentences


def _inputs_version(runs: Sequence[GenerationRun]) -> str:
    """A fingerprint of everything a report reads: changes whenever a verdict, rating, probe
    answer, participant flag or explanation of these runs changes. One small query each."""
    ids = [run.pk for run in runs]
    parts = [
        Explanation.objects.filter(generation_run__in=ids).aggregate(n=Count("id"), t=Max("generated_at")),
        JudgeVerdict.objects.filter(judge_run__generation_runs__in=ids).aggregate(n=Count("id"), t=Max("judged_at")),
        Rating.objects.filter(assignment__campaign__generation_runs__in=ids).aggregate(
            n=Count("id"), t=Max("updated_at")
        ),
        ClaimLabel.objects.filter(assignment__campaign__generation_runs__in=ids).aggregate(
            n=Count("id"), t=Max("updated_at")
        ),
        Participant.objects.filter(campaign__generation_runs__in=ids).aggregate(
            excluded=Count("id", filter=Q(excluded=True)), flagged=Count("id", filter=Q(flagged=True))
        ),
        ProbeAnswer.objects.filter(probe__generation_run__in=ids).aggregate(n=Count("id"), t=Max("answered_at")),
        CheckedClaim.objects.filter(claim_check__generation_run__in=ids).aggregate(n=Count("id"), t=Max("checked_at")),
        JudgeRun.objects.filter(generation_runs__in=ids).aggregate(n=Count("id"), t=Max("finished_at")),
        Campaign.objects.filter(generation_runs__in=ids).aggregate(n=Count("id")),
    ]
    return repr(parts)


def study_report_cached(
    *,
    recommender_run: RecommenderRun,
    generation_runs: Sequence[GenerationRun],
    seed: int = 0,
    include_flagged: bool = True,
    reference_run: GenerationRun | None = None,
) -> dict[str, Any]:
    """``study_report`` from the cache when none of its inputs changed since it was computed.

    Text metrics are worker jobs (``explanations.services.text_metrics``): each run's are
    requested here for its current explanations (against ``reference_run`` when given) and
    joined once finished. Until then the report says which are pending (``text_jobs``),
    and a finished job changes the cache key, so the next read includes its metrics.
    """
    runs = sorted(generation_runs, key=lambda run: run.pk)
    jobs = [
        text_metrics_request(run=run, reference_run=reference_run if reference_run != run else None) for run in runs
    ]
    version = (_inputs_version(runs), [(job.pk, str(job.status)) for job in jobs])
    key = (
        # v2: runs carry their recorded lineage (adapter name and checksum, no server path);
        # v3: first-person campaigns. A report cached before a change must not be served.
        "study-report:v3:"
        + hashlib.sha256(
            f"{recommender_run.pk}|{[r.pk for r in runs]}|{seed}|{include_flagged}|{version}".encode()
        ).hexdigest()
    )
    report = cache.get(key)
    if report is not None:
        return dict(report) | {"cached": True}
    labels = {run.pk: run_label(run) for run in runs}
    report = study_report(
        recommender_run=recommender_run,
        generation_runs=runs,
        seed=seed,
        include_flagged=include_flagged,
        text_metrics={job.generation_run_id: job.metrics or {} for job in jobs if job.status == job.Status.SUCCEEDED},
    )
    report["text_jobs"] = [
        {"run": labels[job.generation_run_id], "job": job.pk, "status": str(job.status), "error": job.error}
        for job in jobs
        if job.status != job.Status.SUCCEEDED
    ]
    report["reference_run"] = reference_run.pk if reference_run is not None else None
    cache.set(key, report)
    return report | {"cached": False}
