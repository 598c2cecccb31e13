"""The cross-study report: several studies side by side in the LLMXRec paper's layout.

A study is one recommender run (a dataset and a recommender) with the generation runs that
explained it. The paper's tables have a row per generator and a column per dataset and
recommender; here each cell is a figure of one study's report with its interval: the judge's
win rate in both orders and in the study's single order, each human Likert criterion's mean
(items and annotators resampled), and each probed attribute's accuracy with the explanation.
Generators are matched across studies by name, as the paper matches its LLMs (a generator run
with several prompts gives a row per prompt family). Pure: it reads finished report dicts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from annotation.study.tables import MISSING, Table, estimate, scored_targets


def _prompt_family(prompt: str) -> str:
    """A prompt's name without its version; the study's per-dataset prompts (llmxrec-movielens,
    llmxrec-steam, llmxrec-mind) are one family, "llmxrec"."""
    name = prompt.rsplit(" v", 1)[0]
    return "llmxrec" if name.startswith("llmxrec-") else name


def _generators(report: dict[str, Any]) -> dict[str, str]:
    """Run label → row: the generator's name, or where a study explained with one generator
    in several prompts, the name and the prompt's family."""
    uses = Counter(run["generator"] for run in report["runs"])
    return {
        run["label"]: run["generator"]
        if uses[run["generator"]] == 1
        else f"{run['generator']} · {_prompt_family(run['prompt'])}"
        for run in report["runs"]
    }


def _judge_rates(report: dict[str, Any], order: str) -> dict[str, dict[str, Any]]:
    """The first pairwise judge's win rate of each run (``order``: both_orders or single_order)."""
    judges = [judge for judge in report["judge"]["pairwise"] if judge.get("usable", 1)]
    return judges[0]["win_rates"][order] if judges else {}


def _human_means(report: dict[str, Any], criterion: str) -> dict[str, dict[str, Any]]:
    """The first Likert campaign's mean of ``criterion`` per run, items and annotators resampled."""
    for section in report["human"]:
        if section["mode"] == "likert":
            return {
                row["run"]: row["criteria"][criterion].get("mean_by_item") or row["criteria"][criterion]["mean"]
                for row in section["runs"]
                if criterion in row["criteria"]
            }
    return {}


def _probe_accuracy(report: dict[str, Any], target: str) -> dict[str, dict[str, Any]]:
    """The first probe of ``target``'s accuracy with the explanation, per run."""
    labels = {run["generation_run"]: run["label"] for run in report["runs"]}
    found: dict[str, dict[str, Any]] = {}
    for probe in report["attributes"]:
        for name, variants in scored_targets(probe):
            if name == target and probe.get("usable", 1):
                run = labels.get(probe["generation_run"], str(probe["generation_run"]))
                found.setdefault(run, variants["history_and_explanation"]["accuracy"])
    return found


def _claim_support(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The first claim check's share of claims found supported, per run."""
    found: dict[str, dict[str, Any]] = {}
    for section in report.get("claims", []):
        if section["supported"]:
            found.setdefault(section["run"], section["supported"])
    return found


def _human_claim_support(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The first claims campaign's human-verified support rate, per run."""
    found: dict[str, dict[str, Any]] = {}
    for section in report.get("human_claims", []):
        for run in section["runs"]:
            found.setdefault(run["run"], run["support"])
    return found


def _probe_targets(reports: list[dict[str, Any]]) -> list[str]:
    found: dict[str, None] = {}
    for report in reports:
        for probe in report["attributes"]:
            found |= dict.fromkeys(name for name, _ in scored_targets(probe))
    return list(found)


def _criteria(reports: list[dict[str, Any]]) -> list[str]:
    found: dict[str, None] = {}
    for report in reports:
        for section in report["human"]:
            if section["mode"] == "likert":
                found |= dict.fromkeys(section.get("scales", {}))
    return list(found)


def column_label(report: dict[str, Any]) -> str:
    recommender = report["recommender"]
    return f"{recommender['dataset']} / {recommender['algorithm']} (#{recommender['run']})"


def cross_study_tables(reports: list[dict[str, Any]]) -> list[Table]:
    """One table per figure; rows are generators, columns are the studies in the order given."""
    figures: list[tuple[str, str, Callable[[dict[str, Any]], dict[str, dict[str, Any]]]]] = [
        ("judge_win_rate", "Judge win rate, both orders (a win only when both agree)", lambda r: _judge_rates(r, "both_orders")),
        ("judge_win_rate_single_order", "Judge win rate in a single order (the LLMXRec study's protocol)", lambda r: _judge_rates(r, "single_order")),
    ]  # fmt: skip
    for criterion in _criteria(reports):
        caption = f"Human {criterion}: mean with items and annotators resampled"
        figures.append((f"human_{criterion}", caption, partial(_human_means, criterion=criterion)))
    caption = "Claims found supported by the facts (automatic claim check, explanations resampled)"
    figures.append(("claim_support", caption, _claim_support))
    caption = "Claims annotators found supported (claims campaigns; explanations and annotators resampled)"
    figures.append(("human_claim_support", caption, _human_claim_support))
    for target in _probe_targets(reports):
        caption = f"Attribute prediction, {target}: accuracy from the history and the explanation"
        name = re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")
        figures.append((f"probe_{name}", caption, partial(_probe_accuracy, target=target)))
    header = ["generator", *[column_label(report) for report in reports]]
    tables = []
    for name, caption, figure in figures:
        cells: dict[str, list[str]] = {}
        for at, report in enumerate(reports):
            generators = _generators(report)
            for label, interval in figure(report).items():
                row = cells.setdefault(generators.get(label, label), [MISSING] * len(reports))
                row[at] = estimate(interval)
        rows = [[generator, *values] for generator, values in sorted(cells.items())]
        tables.append(
            Table(f"cross_{name}", f"{caption}; 95% intervals. Columns: dataset / recommender.", header, rows)
        )
    return tables
