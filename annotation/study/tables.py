"""The study report as tables, and those tables as CSV, Markdown and LaTeX for a paper.

``report_tables`` turns ``annotation.study.report.study_report`` output into named tables of plain
strings; every estimate is written as ``estimate [low, high]``. The writers only format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotation.exports import csv_text
from annotation.study.text import TEXT_METRICS, dig

MISSING = "n/a"


@dataclass(frozen=True)
class Table:
    """One table of the report: ``name`` for files and anchors, ``caption`` for the paper."""

    name: str
    caption: str
    header: list[str]
    rows: list[list[str]]


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return str(value)


def estimate(interval: dict[str, Any] | None, digits: int = 3) -> str:
    """``0.512 [0.401, 0.618]``; just the estimate where there is no interval; MISSING if none."""
    if not interval or interval.get("estimate") is None:
        return MISSING
    text = _number(interval["estimate"], digits)
    if interval.get("low") is not None and interval.get("high") is not None:
        text += f" [{_number(interval['low'], digits)}, {_number(interval['high'], digits)}]"
    return text


def report_tables(report: dict[str, Any]) -> list[Table]:
    """Every table of the study page and its exports, in the page's order."""
    return [
        _runs_table(report),
        *_human_tables(report),
        *_judge_pairwise_tables(report),
        _judge_likert_table(report),
        _attributes_table(report),
        _claims_table(report),
        *_human_claims_tables(report),
        _first_person_table(report),
        _ranking_table(report),
        _decisiveness_table(report),
        _text_table(report),
        _reference_table(report),
        _meta_table(report),
        _calibration_table(report),
    ]


def _run_labels(report: dict[str, Any]) -> dict[int, str]:
    return {r["generation_run"]: r["label"] for r in report["runs"]}


def _runs_table(report: dict[str, Any]) -> Table:
    return Table(
        "runs",
        "Generation runs compared, with their lineage.",
        ["run", "generator", "model", "adapter", "prompt", "split", "seed", "sample", "explanations"],
        [
            [
                r["label"],
                r["generator"],
                f"{r['model']} ({r.get('precision') or r['quantization']})",
                f"{r['adapter']} (sha256 {r['adapter_sha256'][:12] or MISSING})" if r["adapter"] else MISSING,
                r["prompt"],
                f"#{r['split']} {r['split_name']}" if r.get("split") else MISSING,
                str(r["seed"]),
                " ".join(str(part) for part in (r.get("sample"), r.get("sample_size")) if part) or MISSING,
                str(r["explanations"]),
            ]
            for r in report["runs"]
        ],
    )


def _human_tables(report: dict[str, Any]) -> list[Table]:
    """Human Likert summaries, human pairwise preferences and the campaigns' agreement."""
    human_rows, agreement_rows, human_pair_rows = [], [], []
    for section in report["human"]:
        if section["mode"] == "likert":
            for row in section["runs"]:
                for name, summary in row["criteria"].items():
                    human_rows.append(
                        [
                            section["name"],
                            row["run"],
                            name,
                            estimate(summary["mean"], 2),
                            estimate(summary.get("mean_by_item"), 2),
                            estimate(summary["median"], 1),
                            str(summary["n"]),
                        ]
                    )
        else:
            for pair in section["pairs"]:
                wtl = pair["win_tie_loss"]
                human_pair_rows.append(
                    [
                        section["name"],
                        pair["criterion"],
                        pair["a"],
                        pair["b"],
                        estimate(wtl["a"]),
                        estimate(wtl["tie"]),
                        estimate(wtl["b"]),
                        estimate(pair.get("win_rate_by_item")),
                        str(wtl["n"]),
                    ]
                )
        for name, alphas in section["agreement"].items():
            agreement_rows.append(
                [section["name"], name] + [f"{level}: {estimate(value)}" for level, value in alphas.items()]
            )
    return [
        Table(
            "human_likert",
            "Human ratings per run and criterion: mean and median with bootstrap 95% intervals.",
            ["campaign", "run", "criterion", "mean", "mean (items and annotators resampled)", "median", "n"],
            human_rows,
        ),
        _paired_table(report),
        Table(
            "human_pairwise",
            "Human pairwise preferences: share of A wins, ties and B wins with 95% intervals.",
            ["campaign", "criterion", "A", "B", "A wins", "tie", "B wins", "A win rate (items resampled)", "n"],
            human_pair_rows,
        ),
        _agreement_table(agreement_rows),
    ]


def _paired_table(report: dict[str, Any]) -> Table:
    """Two runs rated on the same recommendations: paired differences and signed-rank tests."""
    rows, made = [], 0
    for section in report["human"]:
        for c in section.get("paired", []):
            made += 1
            rows.append(
                [
                    section["name"],
                    c["criterion"],
                    c["a"],
                    c["b"],
                    estimate(c["difference"]),
                    str(c["n_items"]),
                    _p(c["p_value"]),
                    _p(c["p_holm"]),
                    MISSING if c["rank_biserial"] is None else f"{c['rank_biserial']:.2f}",
                    MISSING if c["cohens_dz"] is None else f"{c['cohens_dz']:.2f}",
                ]
            )
    return Table(
        "human_paired",
        f"Paired comparisons of runs rated on the same recommendations (A - B of the item means, "
        f"paired bootstrap 95% interval; Wilcoxon signed-rank p, Holm-adjusted over the {made} comparisons made).",
        ["campaign", "criterion", "A", "B", "A - B", "items", "p", "p (Holm)", "rank-biserial", "d_z"],
        rows,
    )


def _p(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3g}"


def _agreement_table(agreement_rows: list[list[str]]) -> Table:
    # Likert campaigns report two alphas, pairwise ones one: rows are padded to the widest.
    width = max((len(row) for row in agreement_rows), default=3)
    return Table(
        "agreement",
        "Krippendorff's alpha per criterion, with bootstrap 95% intervals over items.",
        ["campaign", "criterion"] + [f"alpha {i}" for i in range(1, width - 1)],
        [row + [""] * (width - len(row)) for row in agreement_rows],
    )


def _judge_pairwise_tables(report: dict[str, Any]) -> list[Table]:
    """Pairwise judges: win/tie/loss per pair, Bradley-Terry strengths and position bias."""
    judge_rows, bias_rows, strength_rows, rate_rows = [], [], [], []
    # Sections with no usable answer are said in words on the page (``meta.empty``), not as rows of n/a.
    for judge in report["judge"]["pairwise"]:
        if not judge.get("usable", 1):
            continue
        name = f"#{judge['judge_run']} {judge['judge']}"
        for pair in judge["pairs"]:
            wtl = pair["win_tie_loss"]
            judge_rows.append(
                [
                    name,
                    pair["a"],
                    pair["b"],
                    estimate(wtl["a"]),
                    estimate(wtl["tie"]),
                    estimate(wtl["b"]),
                    estimate(wtl["unparsed"]),
                    str(wtl["n"]),
                ]
            )
        if judge["position_bias"]:
            bias_rows.append(_position_bias_row(name, judge))
        rates = judge.get("win_rates", {})
        for system, single in rates.get("single_order", {}).items():
            both = rates.get("both_orders", {}).get(system)
            first_slot = judge["position_bias"]["first"] if judge["position_bias"] else None
            rate_rows.append([name, system, estimate(single), estimate(both), estimate(first_slot)])
        if judge["bradley_terry"]:
            for system, interval in judge["bradley_terry"]["strengths"].items():
                strength_rows.append([name, system, estimate(interval, 2)])
    return [
        Table(
            "judge_pairwise",
            "LLM judge, pairwise in both orders (a win counts only when both orders agree), with 95% intervals.",
            ["judge", "A", "B", "A wins", "tie", "B wins", "unparsed", "pairs"],
            judge_rows,
        ),
        Table(
            "judge_win_rates",
            "Per-run win rate of the judge: the LLMXRec study's single order (the lower run id shown "
            "first) beside both orders (a win only when both agree), with the judge's share of "
            "first-slot verdicts; the gap between the two is what position bias does to a single order.",
            ["judge", "run", "win rate, single order", "win rate, both orders", "first-slot share"],
            rate_rows,
        ),
        Table(
            "judge_strengths",
            "Bradley-Terry log-strengths from the judge's combined verdicts (ties count half), 95% intervals.",
            ["judge", "run", "strength"],
            strength_rows,
        ),
        Table(
            "position_bias",
            "Judge position bias: share of verdicts picking each slot, how often the two orders disagreed, "
            "and the mean P(first slot) - P(second slot) of verdicts scored by likelihood.",
            ["judge", "first slot", "second slot", "tie", "unparsed", "orders disagree", "P(first) - P(second)"],
            bias_rows,
        ),
    ]


def _position_bias_row(name: str, judge: dict[str, Any]) -> list[str]:
    bias = judge["position_bias"]
    leaning = judge.get("probability_bias")
    return [
        name,
        estimate(bias["first"]),
        estimate(bias["second"]),
        estimate(bias["tie"]),
        estimate(bias["unparsed"]),
        estimate(bias["disagreement"]),
        _number(leaning["first_minus_second"]) if leaning else MISSING,
    ]


def _judge_likert_table(report: dict[str, Any]) -> Table:
    likert_rows = []
    for judge in report["judge"]["likert"]:
        if not judge.get("usable", 1):
            continue
        for row in judge["runs"]:
            for name, summary in row["criteria"].items():
                likert_rows.append(
                    [
                        f"#{judge['judge_run']} {judge['judge']}",
                        row["run"],
                        name,
                        estimate(summary["mean"], 2),
                        _number(row.get("expected", {}).get(name), 2),
                        f"{row['unparsed']}/{row['n']}",
                    ]
                )
    return Table(
        "judge_likert",
        "LLM judge scores on the annotators' rubric: mean of the chosen scores with 95% interval, mean "
        "expected score (probability-weighted, answers scored by likelihood), and unparsed answers.",
        ["judge", "run", "criterion", "mean", "expected", "unparsed"],
        likert_rows,
    )


def scored_targets(probe: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A probe section's scored targets as (label, variant → figures): its target, or for a
    profile probe all fields at once and then each field."""
    if "fields" not in probe:
        return [(probe["target"], probe["variants"])]
    fields = [(f"profile: {field}", variants) for field, variants in probe["fields"].items()]
    return [("profile (all fields)", probe["variants"]), *fields]


def _attributes_table(report: dict[str, Any]) -> Table:
    labels = _run_labels(report)
    attribute_rows = []
    for probe in report["attributes"]:
        if not probe.get("usable", 1):
            continue
        for target, variants in scored_targets(probe):
            for variant, values in variants.items():
                attribute_rows.append(
                    [
                        target,
                        labels.get(probe["generation_run"], str(probe["generation_run"])),
                        variant.replace("_", " "),
                        estimate(values["accuracy"]),
                        _number(values["majority_accuracy"]),
                        _number(values["parse_failure_rate"]),
                        str(values["n"]),
                    ]
                )
    return Table(
        "attributes",
        "Local attribute prediction: accuracy (unparsed answers count as wrong) against the majority baseline.",
        ["target", "run", "from", "accuracy", "majority", "parse failures", "n"],
        attribute_rows,
    )


def _claims_table(report: dict[str, Any]) -> Table:
    labels = _run_labels(report)
    rows = [
        [
            section["checker"],
            labels.get(section["generation_run"], section["run"]),
            estimate(section["supported"]) if section["supported"] else MISSING,
            _number(section["mean_p_supported"]),
            estimate(section["unsupported_explanations"]) if section["unsupported_explanations"] else MISSING,
            str(section["claims"]),
            str(section["claims"] - section["answered"]),
        ]
        for section in report.get("claims", [])
    ]
    return Table(
        "claims",
        "Automatic claim check: share of claims found supported by the facts (explanations resampled), mean "
        "P(supported), and share of explanations with a claim not found supported; unparsed or failed claims "
        "left out and counted.",
        ["checker", "run", "supported", "mean P(supported)", "explanations with an unsupported claim", "claims",
         "unanswered"],
        rows,
    )  # fmt: skip


def _human_claims_tables(report: dict[str, Any]) -> list[Table]:
    sections = report.get("human_claims", [])
    support = [
        [
            f"#{section['campaign']} {section['name']}",
            run["run"],
            estimate(run["support"]),
            estimate(run["contradicted"]),
            estimate(run["verified_claims"]),
            estimate(run["unsupported_explanations"]),
            str(run["labels"]),
            str(run["claims"]),
            str(run["explanations"]),
        ]
        for section in sections
        for run in section["runs"]
    ]
    agreement = []
    for section in sections:
        name = f"#{section['campaign']} {section['name']}"
        for key, words in (("labels", "the three labels"), ("supported", "supported or not")):
            alpha = estimate(section["agreement"][key])
            agreement.append([name, f"annotators: alpha on {words}", str(section["labels"]), alpha, *[MISSING] * 3])
        for check in section["checkers"]:
            agreement.append(
                _detection_row(
                    name,
                    f"checker {check['checker']} on {check['run']} (claims; {check['unmatched']} unmatched)",
                    check,
                )
            )
        if section["hallucinated_titles"]:
            agreement.append(
                _detection_row(name, "hallucinated title named (explanations)", section["hallucinated_titles"])
            )
    return [
        Table(
            "human_claims",
            "Claims campaigns: share of claim labels saying supported (the human-verified support rate) and "
            "contradicted, with intervals resampling explanations and annotators; share of claims whose majority "
            "label is supported; share of explanations with at least one claim that is not.",
            ["campaign", "run", "supported", "contradicted", "claims supported by majority",
             "explanations with an unsupported claim", "labels", "claims", "explanations"],
            support,
        ),
        Table(
            "claim_agreement",
            "Agreement on claims: Krippendorff's alpha among annotators; Cohen's kappa and AUROC of the automatic "
            "checker (P(supported) against the majority's supported) and of the hallucinated-title metric "
            "(against at least one claim not supported), cases resampled.",
            ["campaign", "signal", "n", "alpha or kappa", "AUROC", "precision", "recall"],
            agreement,
        ),
    ]  # fmt: skip


def _ranking_table(report: dict[str, Any]) -> Table:
    sections = [*report["human"], *report.get("first_person", {}).get("campaigns", [])]
    rows = [
        [
            f"#{section['campaign']} {section['name']}",
            "settled" if ranking["settled"] else "not settled",
            (ranking["settled_at"] or "")[:16].replace("T", " ") or MISSING,
            " > ".join(label for label, _ in ranking["order"]),
            "; ".join(
                f"{gap['better']} vs {gap['worse']}: {estimate(gap | {'estimate': gap['difference']})}"
                for gap in ranking["gaps"]
            ),
            str(ranking["ratings_needed"]) if ranking["ratings_needed"] is not None else MISSING,
        ]
        for section in sections
        if (ranking := section.get("ranking"))
    ]
    return Table(
        "ranking",
        "Is each campaign's ranking of the generators settled? Every two neighbours told apart by a 95% confidence "
        "sequence (valid however often it is looked at; Bonferroni over the pairs), over every annotator not "
        "excluded; the gap between neighbours with its interval, and about how many more ratings would settle it.",
        ["campaign", "ranking", "first settled", "order (best first)", "gaps", "ratings still needed"],
        rows,
    )


def _first_person_table(report: dict[str, Any]) -> Table:
    rows = [
        [
            row["first_person_campaign"],
            row["third_person_campaign"] or MISSING,
            row["run"],
            row["criterion"],
            row["measure"],
            estimate(row["first_person"]),
            str(row["participants"]),
            estimate(row["third_person"]),
            estimate(row["difference"]),
        ]
        for row in report.get("first_person", {}).get("comparison", [])
    ]
    return Table(
        "first_person",
        "First person beside third person: the same generators rated by participants about their own "
        "recommendations and by annotators about dataset users' (mean rating, or the first run's win rate with "
        "ties half). First-person intervals resample participants, third-person ones items and annotators; the "
        "difference's is the normal approximation from the two.",
        ["first-person campaign", "third-person campaign", "run or pair", "criterion", "measure", "first person",
         "participants", "third person", "difference"],
        rows,
    )  # fmt: skip


def _detection_row(campaign: str, signal: str, figures: dict[str, Any]) -> list[str]:
    return [
        campaign,
        signal,
        str(figures["n"]),
        estimate(figures["kappa"]),
        estimate(figures["auroc"]),
        _number(figures["precision"]),
        _number(figures["recall"]),
    ]


def _decisiveness_table(report: dict[str, Any]) -> Table:
    return Table(
        "decisiveness",
        "How sure the judges and probers were: mean probability of the chosen option and mean entropy "
        "(answers scored by likelihood), beside chance (1 / options) and the share of the most common answer.",
        ["section", "answers", "options", "chance", "most common answer", "share", "mean top p", "mean entropy (bits)",
         "max entropy"],
        _decisiveness_rows(report, _run_labels(report)),
    )  # fmt: skip


def _text_table(report: dict[str, Any]) -> Table:
    return Table(
        "text",
        "Text metrics per run (DIV and hallucination: lower is better).",
        ["run"] + [name for name, _ in TEXT_METRICS],
        [[run] + [_number(dig(metrics, path)) for _, path in TEXT_METRICS] for run, metrics in report["text"].items()],
    )


def _reference_table(report: dict[str, Any]) -> Table:
    return Table(
        "reference",
        "Similarity to the reference run's explanations of the same recommendations.",
        ["run", "reference run", "pairs", "BLEU", "ROUGE-L F1", "embedding cosine"],
        [
            [
                run,
                f"#{metrics['reference']['run']}",
                str(metrics["reference"]["n_pairs"]),
                _number(metrics["reference"]["bleu"], 2),
                _number(metrics["reference"]["rouge_l_f1"]),
                _number(metrics["reference"]["embedding_similarity"]),
            ]
            for run, metrics in report["text"].items()
            if metrics.get("reference")
        ],
    )


def _meta_table(report: dict[str, Any]) -> Table:
    return Table(
        "meta",
        "Agreement of automatic signals with human means (system level).",
        ["signal", "criterion", "systems", "Kendall tau", "Spearman rho"],
        [
            [
                c["signal"],
                c["criterion"],
                str(c["systems"]),
                _number(c["kendall_tau"]["statistic"]),
                _number(c["spearman_rho"]["statistic"]),
            ]
            for c in report["meta"]["correlations"]
        ]
        + [
            [
                f"judge #{k['judge_run']} vs human majority (Cohen's kappa)",
                k["criterion"],
                str(k["items"]),
                _number(k["kappa"]),
                "",
            ]
            for k in report["meta"]["item_kappa"]
        ],
    )


def _calibration_table(report: dict[str, Any]) -> Table:
    return Table(
        "calibration",
        "Judge calibration: mean human score of the explanations the Likert judge gave each score.",
        ["judge", "criterion", "judge score", "explanations", "mean human score"],
        [
            [
                f"#{g['judge_run']} {g['judge']}",
                g["criterion"],
                str(b["judge"]),
                str(b["human"]["n"]),
                estimate(b["human"]),
            ]
            for g in report["meta"]["calibration"]
            for b in g["bins"]
        ],
    )


def _decisiveness_rows(report: dict[str, Any], labels: dict[int, str]) -> list[list[str]]:
    sections: list[tuple[str, dict[str, Any]]] = []
    for judge in report["judge"]["pairwise"]:
        sections.append((f"judge #{judge['judge_run']} {judge['judge']} pairwise", judge["decisiveness"]))
    for judge in report["judge"]["likert"]:
        for name, values in judge["decisiveness"].items():
            sections.append((f"judge #{judge['judge_run']} {judge['judge']} {name}", values))
    for probe in report["attributes"]:
        run = labels.get(probe["generation_run"], str(probe["generation_run"]))
        for variant, values in probe["variants"].items():
            sections.append(
                (
                    f"probe #{probe['probe']} {probe['target']} on {run}, {variant.replace('_', ' ')}",
                    values["decisiveness"],
                )
            )
    return [
        [
            name,
            str(d["n"]),
            str(d["options"]),
            _number(d["chance"]),
            str(d["majority_answer"]) if d["majority_answer"] is not None else MISSING,
            _number(d["majority_share"]),
            _number(d["mean_top_probability"]),
            _number(d["mean_entropy_bits"]),
            _number(d["max_entropy_bits"]),
        ]
        for name, d in sections
        if d["n"]
    ]  # fmt: skip


def to_csv(table: Table) -> str:
    return csv_text(table.header, table.rows)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(tables: list[Table]) -> str:
    """Every non-empty table as a GitHub-flavoured Markdown table under its caption."""
    parts = []
    for table in tables:
        if not table.rows:
            continue
        lines = [f"**{table.caption}**", "", "| " + " | ".join(map(_markdown_cell, table.header)) + " |"]
        lines.append("|" + "|".join("---" for _ in table.header) + "|")
        lines += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in table.rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}  # fmt: skip


def _latex_cell(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def to_latex(tables: list[Table]) -> str:
    """Every non-empty table as a booktabs ``table`` environment with its caption."""
    parts = []
    for table in tables:
        if not table.rows:
            continue
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_latex_cell(table.caption)}}}",
            rf"\label{{tab:xrec-{table.name.replace('_', '-')}}}",
            r"\begin{tabular}{" + "l" * len(table.header) + "}",
            r"\toprule",
            " & ".join(map(_latex_cell, table.header)) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(map(_latex_cell, row)) + r" \\" for row in table.rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
