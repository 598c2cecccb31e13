"""The LLM judge: likelihood or strict parsing, both orders, unparsed answers counted, idempotent chunks.

The judge backend here is a real class implementing the backend interface whose answers the
test scripts: it is put in the process's backend cache under the judge generator's spec,
exactly where a worker would find a loaded model.
"""

import json

import pytest
from django.urls import reverse

from explanations.judging import combine_orders, parse_likert, parse_pairwise
from explanations.llm import BackendError
from explanations.models import AdapterTraining, AnswerMode, Explanation, JudgeRun, JudgeVerdict
from explanations.services.generators import GenerationError
from explanations.services.judging import (
    judge_chunk_run,
    judge_run_preferences,
    judge_run_retry_failed,
    judge_run_start,
    judge_run_tuning_start,
)
from tests.annotation.factories import explained_runs
from tests.conftest import client_for
from tests.explanations.factories import tiny_generator
from tests.explanations.scripted import scripted_judge

BOTH_MODES = pytest.mark.parametrize("answer_mode", [AnswerMode.LIKELIHOOD, AnswerMode.TEXT])

RUBRIC = [
    {"name": "reasonability", "question": "Is the explanation reasonable?", "scale_min": 1, "scale_max": 10},
    {"name": "faithfulness", "question": "Does it only claim what the history shows?", "scale_min": 1, "scale_max": 10},
]


def prefers_version_1(prompt: str) -> str:
    """A consistent judge: picks whichever slot holds the explanation written by run 1."""
    first = prompt.split("Explanation 1:")[1].split("Explanation 2:")[0]
    return "Winner: 1" if "Version 1" in first else "Winner: 2"


def run_all(run: JudgeRun) -> None:
    for chunk in range(-(-run.n_total // run.chunk_size)):
        judge_chunk_run(run_id=run.pk, chunk=chunk)
    run.refresh_from_db()


def outcomes(run: JudgeRun) -> list[str]:
    """Each pair's combined outcome for the earlier run's explanation (a), pairs in id order."""
    verdicts = list(JudgeVerdict.objects.filter(judge_run=run).select_related("first"))
    winner: dict[tuple[int | None, int | None], str | None] = {
        (v.first_id, v.second_id): (v.parsed or {}).get("winner") for v in verdicts
    }
    first_run = min(run.generation_runs.values_list("pk", flat=True))
    return [
        combine_orders(winner[(v.first_id, v.second_id)], winner[(v.second_id, v.first_id)])
        for v in sorted(verdicts, key=lambda v: v.pk)
        if v.first.generation_run_id == first_run
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Winner: 1", "first"),
        ("winner:2", "second"),
        ("  Winner: tie.\n", "tie"),
        ("`Winner: 2`", "second"),
        ("**Winner: 1**", "first"),
    ],
)
def test_pairwise_answers_in_the_format_are_parsed(answer: str, expected: str) -> None:
    assert parse_pairwise(answer).value == expected


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "I think Winner: 1",
        "Winner: 1\nBecause it is longer.",
        "Winner: 3",
        "Explanation 1 is better",
        "Winner: both",
    ],
)
def test_anything_else_is_unparsed_with_a_reason(answer: str) -> None:
    parsed = parse_pairwise(answer)
    assert not parsed.ok and parsed.value is None and parsed.error


def test_likert_answers_need_every_criterion_once_within_its_scale() -> None:
    assert parse_likert("reasonability: 7\nfaithfulness: 3", RUBRIC).value == {"reasonability": 7, "faithfulness": 3}
    assert "missing faithfulness" in parse_likert("reasonability: 7", RUBRIC).error
    assert "outside 1 to 10" in parse_likert("reasonability: 11\nfaithfulness: 3", RUBRIC).error
    assert "twice" in parse_likert("reasonability: 7\nreasonability: 3", RUBRIC).error
    assert "unknown" in parse_likert("reasonability: 7\nfaithfulness: 3\nstyle: 4", RUBRIC).error
    assert "not a score line" in parse_likert("Scores: reasonability 7, faithfulness 3", RUBRIC).error


@pytest.mark.parametrize(
    ("a_first", "b_first", "outcome"),
    [
        ("first", "second", "a"),
        ("second", "first", "b"),
        ("first", "first", "tie"),  # always the first slot: position bias, not a preference
        ("second", "second", "tie"),
        ("tie", "second", "tie"),
        (None, "second", "unparsed"),
    ],
)
def test_a_win_counts_only_when_both_orders_agree(a_first, b_first, outcome) -> None:
    assert combine_orders(a_first, b_first) == outcome


@pytest.mark.django_db
@BOTH_MODES
def test_every_pair_is_judged_in_both_orders_and_a_consistent_judge_wins_every_pair(answer_mode) -> None:
    runs = explained_runs(n_users=5, n_runs=2)
    judge, backend = scripted_judge(prefers_version_1)

    run = judge_run_start(
        created_by=None,
        judge=judge,
        generation_runs=runs,
        rubric=RUBRIC,
        chunk_size=3,
        answer_mode=answer_mode,
        enqueue=False,
    )
    run_all(run)

    verdicts = JudgeVerdict.objects.filter(judge_run=run)
    assert run.status == JudgeRun.Status.SUCCEEDED and run.n_total == verdicts.count() == 5 * 2
    pairs = {(v.first_id, v.second_id) for v in verdicts}
    assert all((second, first) in pairs for first, second in pairs)  # each pair in both orders
    assert outcomes(run) == ["b"] * 5  # run 1 (the later run, b) wins everything
    assert backend.prompts == 10


@pytest.mark.django_db
@BOTH_MODES
def test_a_judge_that_always_picks_the_first_slot_produces_only_ties(answer_mode) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    judge, _ = scripted_judge(lambda prompt: "Winner: 1")

    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, answer_mode=answer_mode, enqueue=False
    )
    run_all(run)

    assert outcomes(run) == ["tie"] * 4


@pytest.mark.django_db
def test_unparsed_answers_are_stored_counted_and_never_dropped() -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    answers = iter(["Winner: 1", "Explanation 1, clearly.", "Winner: 2", "Winner: 1"] * 2)
    judge, _ = scripted_judge(lambda prompt: next(answers))

    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, answer_mode=AnswerMode.TEXT, enqueue=False
    )
    run_all(run)

    unparsed = JudgeVerdict.objects.filter(judge_run=run, status=JudgeVerdict.Status.DONE, parsed__isnull=True)
    assert unparsed.count() == 2
    assert set(unparsed.values_list("output", flat=True)) == {"Explanation 1, clearly."}
    assert all(v.parse_error.startswith("not a verdict") for v in unparsed)
    assert "2 unparsed" in run.phase
    assert outcomes(run).count("unparsed") == 2


@pytest.mark.django_db
@BOTH_MODES
def test_likert_judge_scores_each_explanation_with_the_rubrics_wording(answer_mode) -> None:
    runs = explained_runs(n_users=3, n_runs=2)
    judge, _ = scripted_judge(lambda prompt: "reasonability: 8\nfaithfulness: 6")

    run = judge_run_start(
        created_by=None,
        judge=judge,
        generation_runs=runs,
        rubric=RUBRIC,
        mode=JudgeRun.Mode.LIKERT,
        answer_mode=answer_mode,
        enqueue=False,
    )
    run_all(run)

    verdicts = list(JudgeVerdict.objects.filter(judge_run=run))
    assert len(verdicts) == 3 * 2 and all(v.second_id is None for v in verdicts)
    assert all(v.parsed == {"scores": {"reasonability": 8, "faithfulness": 6}} for v in verdicts)
    prompt = verdicts[0].prompt[-1]["content"]
    assert "Is the explanation reasonable?" in prompt and "Does it only claim what the history shows?" in prompt
    assert "Recommended movie:" in prompt and verdicts[0].first.text in prompt


@pytest.mark.django_db
@BOTH_MODES
def test_a_chunk_run_twice_judges_each_row_once(answer_mode) -> None:
    runs = explained_runs(n_users=3, n_runs=2)
    judge, backend = scripted_judge(prefers_version_1)
    run = judge_run_start(
        created_by=None,
        judge=judge,
        generation_runs=runs,
        rubric=RUBRIC,
        chunk_size=2,
        answer_mode=answer_mode,
        enqueue=False,
    )

    judge_chunk_run(run_id=run.pk, chunk=0)
    judged = list(JudgeVerdict.objects.filter(judge_run=run, chunk=0).values_list("judged_at", flat=True))
    judge_chunk_run(run_id=run.pk, chunk=0)

    assert backend.prompts == 2
    assert list(JudgeVerdict.objects.filter(judge_run=run, chunk=0).values_list("judged_at", flat=True)) == judged


@pytest.mark.django_db
@BOTH_MODES
def test_backend_failures_fail_the_rows_and_can_be_retried(answer_mode) -> None:
    runs = explained_runs(n_users=2, n_runs=2)
    state = {"down": True}

    def answer(prompt: str) -> str:
        if state["down"]:
            raise BackendError("judge server unreachable")
        return "Winner: tie"

    judge, _ = scripted_judge(answer)
    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, answer_mode=answer_mode, enqueue=False
    )
    run_all(run)
    assert set(JudgeVerdict.objects.filter(judge_run=run).values_list("status", flat=True)) == {"failed"}
    assert run.status == JudgeRun.Status.SUCCEEDED and "4 failed" in run.phase

    state["down"] = False
    run = judge_run_retry_failed(run=run)
    run_all(run)
    assert [v.parsed for v in JudgeVerdict.objects.filter(judge_run=run)] == [{"winner": "tie"}] * 4


@pytest.mark.django_db
def test_likelihood_verdicts_store_the_distribution_and_the_most_likely_slot() -> None:
    runs = explained_runs(n_users=3, n_runs=2)
    judge, _ = scripted_judge(prefers_version_1)

    run = judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, enqueue=False)
    run_all(run)

    assert run.answer_mode == AnswerMode.LIKELIHOOD and run.fallback == ""
    assert "0 unparsed" in run.phase
    for verdict in JudgeVerdict.objects.filter(judge_run=run):
        probabilities: dict[str, float] = verdict.probabilities or {}
        parsed: dict[str, str] = verdict.parsed or {}
        assert set(probabilities) == {"first", "second", "tie"}
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert parsed["winner"] == max(probabilities, key=probabilities.__getitem__)
        assert verdict.output == {"first": "Winner: 1", "second": "Winner: 2"}[parsed["winner"]]


@pytest.mark.django_db
def test_likelihood_likert_verdicts_store_each_criterions_distribution_and_expected_score() -> None:
    runs = explained_runs(n_users=2, n_runs=2)
    judge, _ = scripted_judge(lambda prompt: "reasonability: 8\nfaithfulness: 6")

    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, mode=JudgeRun.Mode.LIKERT, enqueue=False
    )
    run_all(run)

    verdict = JudgeVerdict.objects.filter(judge_run=run).first()
    assert verdict is not None and verdict.probabilities is not None
    reasonability = verdict.probabilities["reasonability"]
    assert list(reasonability["distribution"]) == [str(point) for point in range(1, 11)]
    assert sum(reasonability["distribution"].values()) == pytest.approx(1.0)
    expected = sum(int(point) * p for point, p in reasonability["distribution"].items())
    assert reasonability["expected"] == pytest.approx(expected) and 7 < expected < 8  # pulled towards the middle
    assert verdict.parsed == {"scores": {"reasonability": 8, "faithfulness": 6}}


@pytest.mark.django_db
def test_a_server_without_log_probabilities_is_judged_as_text_and_the_run_says_so(researcher) -> None:
    from django.urls import reverse

    from tests.conftest import client_for

    runs = explained_runs(n_users=3, n_runs=2)
    judge, _ = scripted_judge(prefers_version_1, logprobs=False)

    run = judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, enqueue=False)
    run_all(run)

    assert run.answer_mode == AnswerMode.LIKELIHOOD and run.status == JudgeRun.Status.SUCCEEDED
    assert run.fallback == "the server returned no log-probabilities; answers were parsed as text"
    assert outcomes(run) == ["b"] * 3
    assert not JudgeVerdict.objects.filter(judge_run=run, probabilities__isnull=False).exists()
    page = client_for(researcher).get(reverse("explanations:judge_detail", args=[run.pk])).content.decode()
    assert "answers were parsed as text" in page


@pytest.mark.django_db
def test_a_likelihood_judge_run_on_a_local_model_parses_every_verdict(tiny_model_dir) -> None:
    from explanations.models import Generator

    runs = explained_runs(n_users=2, n_runs=2)
    judge = Generator.objects.create(name="tiny", backend=Generator.Backend.HF, model=str(tiny_model_dir))

    pairwise = judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, enqueue=False)
    likert = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, mode=JudgeRun.Mode.LIKERT, enqueue=False
    )
    run_all(pairwise)
    run_all(likert)

    for run in (pairwise, likert):
        verdicts = list(JudgeVerdict.objects.filter(judge_run=run))
        assert run.status == JudgeRun.Status.SUCCEEDED and "0 unparsed, 0 failed" in run.phase
        assert verdicts and all(v.parsed is not None and v.probabilities for v in verdicts)
        assert run.precision and run.fallback == ""


@pytest.mark.django_db
def test_start_enqueues_one_task_per_chunk_after_commit(django_capture_on_commit_callbacks) -> None:
    runs = explained_runs(n_users=5, n_runs=2)
    judge, _ = scripted_judge(prefers_version_1)

    with django_capture_on_commit_callbacks() as callbacks:
        run = judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, chunk_size=4)

    assert len(callbacks) == 3  # 10 verdicts in chunks of 4
    assert run.status == JudgeRun.Status.RUNNING


@pytest.mark.django_db
def test_bad_requests_store_nothing() -> None:
    runs = explained_runs(n_users=2, n_runs=2)
    judge, _ = scripted_judge(prefers_version_1)

    with pytest.raises(GenerationError, match="at least two"):
        judge_run_start(created_by=None, judge=judge, generation_runs=runs[:1], rubric=RUBRIC)
    with pytest.raises(GenerationError, match="rubric"):
        judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=[])
    with pytest.raises(GenerationError, match="unknown answer mode 'guess'; choose likelihood or text"):
        judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=RUBRIC, answer_mode="guess")
    assert not JudgeRun.objects.exists() and not JudgeVerdict.objects.exists()


@pytest.mark.django_db
def test_admin_starts_a_judge_run_from_the_form_and_reads_escaped_verdicts(admin_user, researcher) -> None:
    import json

    from django.urls import reverse

    from tests.conftest import client_for

    runs = explained_runs(n_users=2, n_runs=2)
    judge, _ = scripted_judge(lambda prompt: "<script>alert(1)</script>")
    client = client_for(admin_user)
    form = client.get(reverse("explanations:judge_create")).content.decode()

    response = client.post(
        reverse("explanations:judge_create"),
        {
            "judge": judge.pk,
            "mode": "pairwise",
            "answer_mode": "text",
            "generation_runs": [run.pk for run in runs],
            "sample_size": 0,
            "seed": 0,
            "chunk_size": 8,
            "max_new_tokens": 20,
            "rubric": json.dumps(RUBRIC),
        },
    )
    run = JudgeRun.objects.get()
    run_all(run)
    page = client_for(researcher).get(reverse("explanations:judge_detail", args=[run.pk])).content.decode()
    api = client_for(researcher).get(reverse("explanations:api_judge_detail", args=[run.pk])).json()

    assert "reasonability" in form  # the study rubric is the default
    assert response["Location"] == reverse("explanations:judge_detail", args=[run.pk])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "4 judged (4 unparsed)" in page
    assert api["unparsed"] == 4 and api["total"] == 4 and api["mode"] == "pairwise"
    assert api["answer_mode"] == "text" and run.answer_mode == "text"


@pytest.mark.django_db
def test_only_admins_start_judge_runs(researcher, annotator) -> None:
    from django.urls import reverse

    from tests.conftest import client_for

    assert client_for(researcher).get(reverse("explanations:judge_create")).status_code == 403
    assert client_for(researcher).get(reverse("explanations:judge_list")).status_code == 200
    assert client_for(annotator).get(reverse("explanations:judge_list")).status_code == 403


@pytest.mark.django_db
def test_the_form_refuses_an_unknown_answer_mode_and_starts_nothing(admin_user) -> None:
    from django.urls import reverse

    from tests.conftest import client_for

    runs = explained_runs(n_users=2, n_runs=2)
    judge, _ = scripted_judge(prefers_version_1)
    form = {
        "judge": judge.pk,
        "mode": "pairwise",
        "generation_runs": [run.pk for run in runs],
        "sample_size": 0,
        "seed": 0,
        "chunk_size": 8,
        "max_new_tokens": 20,
        "rubric": json.dumps(RUBRIC),
    }
    client = client_for(admin_user)

    refused = client.post(reverse("explanations:judge_create"), form | {"answer_mode": "guess"})
    assert refused.status_code == 200 and "guess is not one of the available choices" in refused.content.decode()
    assert not JudgeRun.objects.exists()

    started = client.post(reverse("explanations:judge_create"), form)  # left out: likelihood
    assert started.status_code == 302 and JudgeRun.objects.get().answer_mode == AnswerMode.LIKELIHOOD


@pytest.mark.django_db
def test_a_pairwise_run_teaches_a_judge_the_verdicts_both_orders_agree_on(tiny_model_dir, admin_user) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    # One scripted judge at a time: scripted backends share the process's backend cache.
    slot_judge, _ = scripted_judge(lambda prompt: "Winner: 1", name="slot-judge")
    by_slot = judge_run_start(created_by=None, judge=slot_judge, generation_runs=runs, rubric=RUBRIC, enqueue=False)
    run_all(by_slot)
    fair_judge, _ = scripted_judge(prefers_version_1, name="fair-judge")
    fair = judge_run_start(created_by=None, judge=fair_judge, generation_runs=runs, rubric=RUBRIC, enqueue=False)
    run_all(fair)

    # A judge that always picks the first slot never agrees with itself across orders.
    assert judge_run_preferences(by_slot) == []
    preferences = judge_run_preferences(fair)
    assert len(preferences) == 4 and all(p["a"] < p["b"] for p in preferences)
    assert all("Version 1" in Explanation.objects.get(pk=p[p["winner"]]).text for p in preferences)

    base = tiny_generator(tiny_model_dir, name="tiny-judge")
    training = judge_run_tuning_start(run=fair, created_by=None, base_generator=base, options={"epochs": 1})
    assert training.source == AdapterTraining.Source.PREFERENCES
    assert f"judge run #{fair.pk}" in training.source_description
    with pytest.raises(GenerationError, match="need at least 2 preferences"):
        judge_run_tuning_start(run=by_slot, created_by=None, base_generator=base, options={"epochs": 1})
    page = client_for(admin_user).get(reverse("explanations:judge_tune", args=[fair.pk])).content.decode()
    assert "(4 pairs)" in page
