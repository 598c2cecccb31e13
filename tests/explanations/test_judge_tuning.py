"""A pairwise judge tuned with LoRA on human preferences handed over as plain data."""

from pathlib import Path

import pytest

from explanations.judging import default_rubric, parse_pairwise
from explanations.models import AdapterTraining, Explanation, GenerationRun, Generator, JudgeRun
from explanations.services.adapters import adapter_training_run, judge_training_start, teacher_examples
from explanations.services.generators import GenerationError
from explanations.services.judging import judge_chunk_run, judge_run_start
from tests.annotation.factories import explained_runs
from tests.explanations.factories import tiny_generator

pytestmark = pytest.mark.django_db

FAST = {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3}


@pytest.fixture
def preferences() -> list[dict]:
    """Humans prefer run 1's explanation of every recommendation, except a tie on the last."""
    first, second = explained_runs(n_users=4)
    theirs = dict(Explanation.objects.filter(generation_run=second).values_list("recommendation_id", "pk"))
    rows = [
        {"recommendation": recommendation, "a": a, "b": theirs[recommendation], "winner": "b", "votes": {"b": 3}}
        for recommendation, a in Explanation.objects.filter(generation_run=first)
        .order_by("recommendation_id")
        .values_list("recommendation_id", "pk")
    ]
    rows[-1]["winner"] = "tie"
    return rows


def test_each_preference_teaches_both_orders(preferences, tiny_model_dir) -> None:
    training = judge_training_start(
        created_by=None,
        base_generator=tiny_generator(tiny_model_dir),
        preferences=preferences,
        description="campaign #1",
        enqueue=False,
    )
    assert training.source == AdapterTraining.Source.PREFERENCES and training.max_length == 1024

    examples, dropped = teacher_examples(training)

    assert dropped == 0 and len(examples) == 2 * len(preferences)
    # Both orders of a pair are one group: they are split into training or validation together.
    assert [example.group for example in examples] == [pair for pair in range(len(preferences)) for _ in range(2)]
    for preference, (shown_a_first, shown_b_first) in zip(
        preferences, zip(examples[::2], examples[1::2], strict=True), strict=True
    ):
        a, b = (Explanation.objects.get(pk=preference[side]).text for side in ("a", "b"))
        prompt = shown_a_first.messages[-1]["content"]
        assert prompt.index(a) < prompt.index(b)
        swapped = shown_b_first.messages[-1]["content"]
        assert swapped.index(b) < swapped.index(a)
        # The answers are in the judge's strict format and name the humans' choice in each order.
        expected = {"b": ("second", "first"), "tie": ("tie", "tie")}[preference["winner"]]
        assert (parse_pairwise(shown_a_first.response).value, parse_pairwise(shown_b_first.response).value) == expected
    # The judge is asked in the study rubric's words when no rubric is given.
    assert default_rubric()[0]["question"] in examples[0].messages[-1]["content"]


def test_pairs_whose_explanations_were_deleted_are_counted_as_dropped(preferences, tiny_model_dir) -> None:
    training = judge_training_start(
        created_by=None, base_generator=tiny_generator(tiny_model_dir), preferences=preferences, enqueue=False
    )
    Explanation.objects.filter(pk=preferences[0]["a"]).delete()

    examples, dropped = teacher_examples(training)

    assert dropped == 1 and len(examples) == 2 * (len(preferences) - 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"winner": "left"}, "winner must be a, b or tie"),
        ({"a": "x"}, "expected integer recommendation"),
        ({"b": None}, "expected integer recommendation"),
        ({"recommendation": 999_999}, "are not finished explanations of recommendation"),
        ("same", "the same explanation"),
        ("one", "need at least 2 preferences"),
    ],
)
def test_bad_preferences_store_nothing(preferences, tiny_model_dir, change, message: str) -> None:
    if change == "same":
        preferences[1]["b"] = preferences[1]["a"]
    elif change == "one":
        preferences = preferences[:1]
    else:
        preferences[1] |= change
    base = tiny_generator(tiny_model_dir)

    with pytest.raises(GenerationError, match=message):
        judge_training_start(created_by=None, base_generator=base, preferences=preferences)

    assert not AdapterTraining.objects.exists()


def test_a_tuned_judge_trains_and_judges_only_the_pairs_it_did_not_learn(preferences, tiny_model_dir) -> None:
    learnt, unseen = preferences[:3], preferences[3]
    training = judge_training_start(
        created_by=None,
        base_generator=tiny_generator(tiny_model_dir),
        preferences=learnt,
        options=FAST,
        enqueue=False,
    )

    adapter_training_run(training_id=training.pk)

    training.refresh_from_db()
    assert training.status == AdapterTraining.Status.SUCCEEDED, training.error
    assert training.n_train + training.n_validation == 2 * len(learnt) and training.n_validation % 2 == 0
    assert Path(training.adapter_path, "adapter_config.json").is_file()
    judge = Generator.objects.get(adapter_training=training)
    runs = list(GenerationRun.objects.filter(explanations__isnull=False).distinct().order_by("pk"))
    # The tuned judge is an ordinary judge, except that the recommendations whose preferences
    # it learnt are held out: it is scored only where it never saw the humans' answer.
    run = judge_run_start(
        created_by=None, judge=judge, generation_runs=runs, rubric=default_rubric(), max_new_tokens=4, enqueue=False
    )
    for chunk in range(-(-run.n_total // run.chunk_size)):
        judge_chunk_run(run_id=run.pk, chunk=chunk)
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.SUCCEEDED and run.verdicts.exclude(output="").count() == run.n_total == 2
    assert run.n_held_out == 3
    assert set(run.verdicts.values_list("recommendation_id", flat=True)) == {unseen["recommendation"]}


def test_a_judge_tuned_on_every_recommendation_cannot_judge_them(preferences, tiny_model_dir) -> None:
    training = judge_training_start(
        created_by=None, base_generator=tiny_generator(tiny_model_dir), preferences=preferences, enqueue=False
    )
    # Stands for a finished training: only the link to the preferences matters here.
    judge = Generator.objects.create(name="tuned", model=str(tiny_model_dir), adapter_training=training)
    runs = list(GenerationRun.objects.filter(explanations__isnull=False).distinct().order_by("pk"))

    with pytest.raises(GenerationError, match="tuned on the human preferences of every recommendation"):
        judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=default_rubric(), enqueue=False)

    assert not JudgeRun.objects.exists()


def test_a_tuned_judge_whose_preferences_file_is_gone_is_refused(preferences, tiny_model_dir) -> None:
    training = judge_training_start(
        created_by=None, base_generator=tiny_generator(tiny_model_dir), preferences=preferences, enqueue=False
    )
    judge = Generator.objects.create(name="tuned", model=str(tiny_model_dir), adapter_training=training)
    Path(training.source_path).unlink()
    runs = list(GenerationRun.objects.filter(explanations__isnull=False).distinct().order_by("pk"))

    with pytest.raises(GenerationError, match="training preferences are gone"):
        judge_run_start(created_by=None, judge=judge, generation_runs=runs, rubric=default_rubric(), enqueue=False)
