"""The study report joins the judge, the humans, the probes and the text metrics."""

import json
import uuid

import pytest
from django.urls import reverse

from annotation.models import Assignment, Campaign, Participant, Rating
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join
from annotation.study.report import study_report, study_report_cached
from annotation.study.tables import report_tables, to_latex, to_markdown
from explanations.judging import default_rubric
from explanations.models import Explanation, TextMetrics
from explanations.services.judging import judge_chunk_run, judge_run_start
from explanations.services.probing import probe_chunk_run, probe_start
from explanations.services.text_metrics import text_metrics_run
from tests.annotation.factories import campaign, explained_runs
from tests.conftest import client_for
from tests.explanations.scripted import scripted_judge
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CRITERIA = [criterion["name"] for criterion in default_rubric()]


def prefers_version_1(prompt: str) -> str:
    first = prompt.split("Explanation 1:")[1].split("Explanation 2:")[0]
    return "Winner: 1" if "Version 1" in first else "Winner: 2"


def judged(runs, mode: str = "pairwise", answer=prefers_version_1, name: str = "scripted-judge"):
    judge, _ = scripted_judge(answer, name=name)
    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=default_rubric(), mode=mode, enqueue=False
    )
    for chunk in range(-(-run.n_total // run.chunk_size)):
        judge_chunk_run(run_id=run.pk, chunk=chunk)
    return run


def rated(runs, annotators: int = 3) -> Campaign:
    """A Likert campaign where every annotator rates run 1's explanations higher."""
    study = campaign(runs=runs, overlap=annotators, items_per_annotator=100)
    for index in range(annotators):
        participant = participant_join(campaign=study, user=UserFactory())
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            better = "Version 1" in assignment.item.explanation.text
            value = (8 if better else 4) + (index % 2)
            answers = {c.name: value for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    return study


def test_the_report_joins_judge_humans_probes_and_text_with_intervals() -> None:
    runs = explained_runs(n_users=6, n_runs=2, include_profile=False)  # the probe asks the age
    judged(runs)
    rated(runs)
    prober, _ = scripted_judge(lambda prompt: "Answer: 25", name="scripted-prober")
    probe = probe_start(created_by=None, prober=prober, generation_run=runs[1], target="age", enqueue=False)
    for chunk in range(-(-probe.n_total // probe.chunk_size)):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)

    report = study_report(
        recommender_run=runs[0].recommender_run, generation_runs=runs, seed=1, text_metrics={runs[0].pk: {"usr": 0.5}}
    )

    a, b = (f"#{run.pk} {run.generator.name}" for run in runs)
    pair = report["judge"]["pairwise"][0]["pairs"][0]
    assert (pair["a"], pair["b"]) == (a, b)
    assert pair["win_tie_loss"]["b"]["estimate"] == 1.0 and pair["win_tie_loss"]["n"] == 6
    strengths = report["judge"]["pairwise"][0]["bradley_terry"]["strengths"]
    assert strengths[b]["estimate"] > 0 > strengths[a]["estimate"]
    bias = report["judge"]["pairwise"][0]["position_bias"]
    assert bias["first"]["estimate"] == bias["second"]["estimate"] == 0.5
    assert bias["disagreement"]["estimate"] == 0.0
    human = report["human"][0]
    means = {row["run"]: row["criteria"]["reasonability"]["mean"] for row in human["runs"]}
    assert means[b]["estimate"] > means[a]["estimate"]
    assert means[a]["low"] <= means[a]["estimate"] <= means[a]["high"]
    assert set(human["agreement"]["reasonability"]) == {"interval", "ordinal"}
    assert human["agreement"]["reasonability"]["interval"]["estimate"] > 0.5
    variants = report["attributes"][0]["variants"]
    assert set(variants) == {"history", "history_and_explanation"}
    assert variants["history"]["n"] == 6 and variants["history"]["parse_failure_rate"] == 0.0
    assert variants["history"]["majority_accuracy"] is not None
    assert report["text"] == {a: {"usr": 0.5}}
    assert report["runs"][1]["prompt"].startswith("xrec-default v")


def test_calibration_bins_the_mean_human_score_by_the_judge_likert_score() -> None:
    runs = explained_runs(n_users=6, n_runs=2)

    def scores(prompt: str) -> str:
        # Run 1's explanations score 8 on every criterion, run 0's score 3.
        score = 8 if "Version 1" in prompt.split("Explanation:")[1] else 3
        return "\n".join(f"{name}: {score}" for name in CRITERIA)

    judge = judged(runs, mode="likert", answer=scores, name="likert-judge")
    study = rated(runs)
    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)

    groups = {group["criterion"]: group for group in report["meta"]["calibration"]}
    assert set(groups) == set(CRITERIA)
    group = groups["reasonability"]
    assert (group["judge_run"], group["judge"], group["n"]) == (judge.pk, "likert-judge", 12)
    assert group["same_scale"]  # both on the study rubric's 1 to 10
    # Each bin's mean is the mean over its explanations of their mean human rating.
    expected: dict[int, list[float]] = {3: [], 8: []}
    for explanation in Explanation.objects.filter(generation_run__in=runs):
        values = [
            value
            for value in Rating.objects.filter(
                assignment__item__explanation=explanation, criterion__name="reasonability", assignment__campaign=study
            ).values_list("value", flat=True)
            if value is not None
        ]
        expected[8 if "Version 1" in explanation.text else 3].append(sum(values) / len(values))
    for b in group["bins"]:
        human = b["human"]
        assert human["n"] == 6 and human["estimate"] == pytest.approx(sum(expected[b["judge"]]) / 6)
        assert human["low"] <= human["estimate"] <= human["high"]
    assert [b["judge"] for b in group["bins"]] == [3, 8]
    rows = next(table for table in report_tables(report) if table.name == "calibration").rows
    assert len(rows) == 2 * len(CRITERIA) and rows[0][:4] == [f"#{judge.pk} likert-judge", CRITERIA[0], "3", "6"]


def test_the_same_seed_gives_the_same_report() -> None:
    runs = explained_runs(n_users=5, n_runs=2)
    judged(runs)
    rated(runs)

    def report(seed: int) -> str:
        return json.dumps(study_report(recommender_run=runs[0].recommender_run, generation_runs=runs, seed=seed))

    assert report(3) == report(3)


def test_leaving_out_flagged_annotators_changes_the_human_figures() -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    study = rated(runs)
    flagged = Participant.objects.filter(campaign=study).earliest("pk")
    Participant.objects.filter(pk=flagged.pk).update(flagged=True)

    everyone = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)
    trusted = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs, include_flagged=False)

    first_run = runs[0].pk
    ratings = Rating.objects.filter(
        criterion__name="reasonability", assignment__item__explanation__generation_run_id=first_run
    )
    n_all = everyone["human"][0]["runs"][0]["criteria"]["reasonability"]["n"]
    n_trusted = trusted["human"][0]["runs"][0]["criteria"]["reasonability"]["n"]
    assert n_all == ratings.count()
    assert n_trusted == ratings.exclude(assignment__participant=flagged).count() < n_all


def test_a_cached_report_is_recomputed_when_a_rating_changes() -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    study = rated(runs, annotators=2)

    first = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)
    second = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)
    answered = Assignment.objects.filter(campaign=study, status=Assignment.Status.SUBMITTED).first()
    assert answered is not None
    rating_submit(  # a revision: same number of ratings, new values
        assignment=answered, answers={c.name: 1 for c in study.criteria.all()}, submission_id=uuid.uuid4()
    )
    third = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)

    assert (first["cached"], second["cached"], third["cached"]) == (False, True, False)


def test_text_metrics_join_the_report_when_their_worker_job_finishes(django_capture_on_commit_callbacks) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    label = f"#{runs[0].pk} {runs[0].generator.name}"

    with django_capture_on_commit_callbacks() as enqueued:
        waiting = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)
    assert waiting["text"] == {} and len(enqueued) == 2
    assert [job["status"] for job in waiting["text_jobs"]] == ["pending", "pending"]
    assert study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)["cached"]

    for job in TextMetrics.objects.all():  # what the default-queue worker does
        text_metrics_run(metrics_id=job.pk)
    done = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)

    assert not done["cached"] and done["text_jobs"] == []
    assert done["text"][label]["n"] == 4 and "length" in done["text"][label]
    assert done["text"][label]["personalisation"] is not None  # MiniLM embeddings by default

    with_reference = study_report_cached(
        recommender_run=runs[0].recommender_run, generation_runs=runs, reference_run=runs[1]
    )
    # Against a reference the first run needs a job of its own; the reference run needs none.
    assert [job["run"] for job in with_reference["text_jobs"]] == [label]
    assert with_reference["reference_run"] == runs[1].pk
    job = TextMetrics.objects.get(reference_run=runs[1])
    text_metrics_run(metrics_id=job.pk)
    compared = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs, reference_run=runs[1])
    (row,) = next(table for table in report_tables(compared) if table.name == "reference").rows
    assert row[:3] == [label, f"#{runs[1].pk}", "4"] and float(row[3]) > 0


def test_markdown_and_latex_exports_are_paper_tables() -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    judged(runs)
    rated(runs)
    tables = report_tables(study_report(recommender_run=runs[0].recommender_run, generation_runs=runs))

    markdown, latex = to_markdown(tables), to_latex(tables)

    assert "| campaign | run | criterion | mean | mean (items and annotators resampled) | median | n |" in markdown
    assert "|---|---|---|---|---|---|---|" in markdown
    assert "| campaign | criterion | A | B | A - B | items | p | p (Holm) | rank-biserial | d_z |" in markdown
    assert "\\begin{tabular}{lllllll}" in latex and "\\toprule" in latex and "\\bottomrule" in latex
    assert "secret-generator-0" in markdown and "secret-generator\\_0" not in markdown
    assert "secret-generator-0" in latex and "\\#" in latex  # run labels "#12 …" are escaped


def test_researcher_reads_the_study_page_and_its_exports(researcher, annotator) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    judged(runs)
    rated(runs)
    client = client_for(researcher)
    query = f"recommender_run={runs[0].recommender_run_id}&runs={runs[0].pk}&runs={runs[1].pk}"

    page = client.get(f"{reverse('annotation:study')}?{query}")
    markdown = client.get(f"{reverse('annotation:study_export', args=['md'])}?{query}")
    table = client.get(f"{reverse('annotation:study_export', args=['csv'])}?{query}&table=judge_pairwise")
    api = client.get(f"{reverse('annotation:api_study_report')}?{query}")

    html = page.content.decode()
    assert page.status_code == 200 and '<svg class="chart"' in html and "Bradley-Terry" in html
    assert markdown.status_code == 200 and markdown.content.decode().startswith("**")
    assert table.status_code == 200 and table.content.decode().startswith("judge,A,B,A wins")
    assert api.status_code == 200 and api.json()["judge"]["pairwise"][0]["pairs"][0]["win_tie_loss"]["n"] == 4
    assert client_for(annotator).get(f"{reverse('annotation:study')}?{query}").status_code == 403
    bad = client.get(f"{reverse('annotation:study_export', args=['md'])}?recommender_run=999")
    assert bad.status_code == 400


def test_judges_and_probes_report_how_sure_they_were_beside_chance_and_the_majority() -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    judged(runs)  # by likelihood: P = 0.98 on the slot the scripted judge writes
    judged(runs, mode="likert", answer=lambda prompt: "reasonability: 8", name="likert-judge")
    prober, _ = scripted_judge(lambda prompt: "Answer: Drama", name="scripted-prober")
    probe = probe_start(created_by=None, prober=prober, generation_run=runs[1], target="item:genres", enqueue=False)
    for chunk in range(-(-probe.n_total // probe.chunk_size)):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)

    pairwise = report["judge"]["pairwise"][0]
    sure = pairwise["decisiveness"]
    assert sure["chance"] == pytest.approx(1 / 3) and sure["scored"] == sure["n"] == 8
    assert sure["mean_top_probability"] > 0.9 and sure["mean_entropy_bits"] < 0.5 < sure["max_entropy_bits"]
    assert sure["majority_share"] == 0.5  # first and second slots equally often
    assert pairwise["probability_bias"]["first_minus_second"] == pytest.approx(0.0, abs=1e-9)
    likert = report["judge"]["likert"][0]
    assert likert["decisiveness"]["reasonability"]["chance"] == 0.1
    assert likert["decisiveness"]["faithfulness"]["mean_top_probability"] == pytest.approx(0.1)  # no preference
    row = likert["runs"][0]
    assert row["criteria"]["reasonability"]["mean"]["estimate"] == 8 and 7 < row["expected"]["reasonability"] < 8
    history = report["attributes"][0]["variants"]["history"]["decisiveness"]
    assert history["majority_answer"] == "Drama" and history["chance"] == pytest.approx(1 / 3)
    assert report["meta"]["empty"] == []
    names = {table.name: table for table in report_tables(report)}
    assert len(names["decisiveness"].rows) == 1 + 4 + 2
    assert names["judge_likert"].header[4] == "expected"


def test_a_judge_with_no_usable_verdict_is_named_in_words_not_drawn(researcher) -> None:
    from explanations.models import AnswerMode, JudgeRun
    from explanations.services.judging import judge_run_start as start

    runs = explained_runs(n_users=3, n_runs=2)
    judge, _ = scripted_judge(lambda prompt: "I cannot decide.", name="mumbling-judge")
    run = start(
        created_by=None,
        judge=judge,
        generation_runs=runs,
        rubric=default_rubric(),
        answer_mode=AnswerMode.TEXT,
        enqueue=False,
    )
    for chunk in range(-(-run.n_total // run.chunk_size)):
        judge_chunk_run(run_id=run.pk, chunk=chunk)
    assert JudgeRun.objects.get(pk=run.pk).status == JudgeRun.Status.SUCCEEDED

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)
    query = f"recommender_run={runs[0].recommender_run_id}&runs={runs[0].pk}&runs={runs[1].pk}"
    html = client_for(researcher).get(f"{reverse('annotation:study')}?{query}").content.decode()

    sentence = f"Judge run #{run.pk} (mumbling-judge): no usable verdict; all 6 answers were unparsed or failed."
    assert report["meta"]["empty"] == [sentence]
    assert sentence in html and 'id="table-judge_pairwise"' not in html and "share of wins" not in html


def test_a_judge_whose_two_orders_never_agree_is_said_in_words_not_drawn_as_zero_wins(researcher) -> None:
    from annotation.study.charts import report_charts

    runs = explained_runs(n_users=3, n_runs=2)
    run = judged(runs, answer=lambda prompt: "Winner: 1", name="first-slot-judge")  # always the first slot

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)
    query = f"recommender_run={runs[0].recommender_run_id}&runs={runs[0].pk}&runs={runs[1].pk}"
    html = client_for(researcher).get(f"{reverse('annotation:study')}?{query}").content.decode()

    sentence = (
        f"Judge run #{run.pk} (first-slot-judge): its two orders never agreed (it picked the first slot in 100%), "
        "so every pair is a tie; no win shares or strengths are drawn. Its position bias is below."
    )
    assert report["meta"]["empty"] == [sentence] and sentence in html
    charts = report_charts(report)
    assert charts["judge_wins"] == [] and charts["judge_strengths"] == []
    assert "share of wins" not in html and 'id="table-position_bias"' in html  # the bias is still shown


def test_human_means_resample_items_and_runs_are_compared_paired() -> None:
    runs = explained_runs(n_users=6, n_runs=2)
    rated(runs)

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs, seed=1)

    (section,) = report["human"]
    criterion = next(iter(section["runs"][0]["criteria"]))
    for row in section["runs"]:
        summary = row["criteria"][criterion]
        by_item = summary["mean_by_item"]
        assert by_item["estimate"] == pytest.approx(summary["mean"]["estimate"])
        # 6 explanations per run, each rated by 3 annotators: the unit is the explanation.
        assert by_item["n"] == 6 and summary["n"] == 18
    assert section["n_comparisons"] == len(section["paired"]) == len(section["runs"][0]["criteria"])
    comparison = next(c for c in section["paired"] if c["criterion"] == criterion)
    # Run 1's explanations ("Version 1") are rated 4 points higher on every recommendation.
    assert comparison["n_items"] == 6 and abs(comparison["difference"]["estimate"]) == pytest.approx(4.0)
    assert comparison["p_holm"] >= comparison["p_value"] and abs(comparison["rank_biserial"]) == 1.0


def test_the_studys_single_order_win_rate_is_shown_beside_the_both_order_one() -> None:
    runs = explained_runs(n_users=6, n_runs=2)
    # A judge that always picks the first slot: in one order the lower run "wins" everything,
    # in both orders the two verdicts disagree and nobody wins.
    judged(runs, answer=lambda prompt: "Winner: 1")

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs, seed=1)

    rates = report["judge"]["pairwise"][0]["win_rates"]
    first, second = (f"#{run.pk} {run.generator.name}" for run in sorted(runs, key=lambda run: run.pk))
    assert rates["single_order"][first]["estimate"] == 1.0 and rates["single_order"][second]["estimate"] == 0.0
    assert rates["both_orders"][first]["estimate"] == 0.0 == rates["both_orders"][second]["estimate"]
    (table,) = [t for t in report_tables(report) if t.name == "judge_win_rates"]
    assert [row[1] for row in table.rows] == [first, second] and table.rows[0][2].startswith("1.000")
