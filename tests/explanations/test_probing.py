"""Attribute probes: the held-out value never in the prompt, strict answers, unparsed = wrong."""

import itertools
import re
from collections import Counter
from typing import Any

import pytest
from django.urls import reverse

from annotation.study.attributes import probe_section
from annotation.study.tables import _attributes_table
from explanations.models import AnswerMode, AttributeProbe, Generator, ProbeAnswer
from explanations.probing import (
    age_bands,
    is_correct,
    number_value,
    parse_answer,
    parse_profile,
    probe_messages,
    profile_question,
)
from explanations.services.generators import GenerationError
from explanations.services.probing import _popularity_buckets, probe_chunk_run, probe_start
from recommendations.models import Dataset, DatasetUser, Interaction, Item
from tests.annotation.factories import explained_runs
from tests.conftest import client_for
from tests.explanations.scripted import scripted_judge


def run_all(probe: AttributeProbe) -> None:
    for chunk in range(-(-probe.n_total // probe.chunk_size)):
        probe_chunk_run(probe_id=probe.pk, chunk=chunk)
    probe.refresh_from_db()


@pytest.mark.parametrize(
    ("target", "text", "options", "expected"),
    [
        ("age", "Answer: 34", [], "34"),
        ("age", "27", [], "27"),
        ("popularity", "Answer: 5", [], "5"),
        ("popularity_fixed", "Answer: 2", [], "2"),
        ("gender", "answer: f", ["F", "M"], "F"),
        ("item:genres", "`Answer: sci-fi`", ["Comedy", "Sci-Fi"], "Sci-Fi"),
    ],
)
def test_answers_in_the_format_are_parsed(target: str, text: str, options: list[str], expected: str) -> None:
    assert parse_answer(text, target, options).value == expected


@pytest.mark.parametrize(
    ("target", "text", "options"),
    [
        ("age", "About 30 years old", []),
        ("popularity", "Answer: 7", []),
        ("popularity_fixed", "Answer: 0", []),
        ("gender", "Answer: woman", ["F", "M"]),
        ("item:genres", "Answer: Comedy\nAnswer: Drama", ["Comedy", "Drama"]),
    ],
)
def test_other_answers_are_unparsed(target: str, text: str, options: list[str]) -> None:
    assert not parse_answer(text, target, options).ok


def test_correctness_rules() -> None:
    assert is_correct("age", "30", ["35"]) and not is_correct("age", "30", ["36"])
    assert is_correct("item:genres", "Comedy", ["Comedy", "Romance"])
    assert not is_correct("gender", None, ["F"])  # unparsed counts as wrong


def test_the_held_out_item_attribute_is_not_in_the_prompt_but_the_history_keeps_its_own() -> None:
    messages = probe_messages(
        target="item:genres",
        history=[{"title": "Heat (1995)", "attributes": {"genres": ["Thriller"]}, "rating": "5"}],
        item_title="Clueless (1995)",
        item_attributes={"genres": ["Comedy"], "year": 1995},
        options=["Comedy", "Thriller"],
        explanation=None,
    )
    text = messages[-1]["content"]
    assert "Heat (1995) (genres: Thriller): rated 5" in text
    assert "Recommended item: Clueless (1995) (year: 1995)" in text
    assert "Explanation" not in text
    assert "Choose one of: Comedy, Thriller" in text


@pytest.mark.django_db
def test_popularity_buckets_are_fifths_of_the_catalogue_by_interaction_count() -> None:
    runs = explained_runs(n_users=6, n_runs=1)
    dataset_id = runs[0].recommender_run.dataset_id

    split_id = runs[0].recommender_run.split_id

    buckets = _popularity_buckets(dataset_id, split_id)

    # Train-side interactions only: the held-out ones are what the recommender is judged on.
    train = Interaction.objects.filter(dataset_id=dataset_id).outside_test_of(split_id)  # type: ignore[arg-type]
    counts = dict.fromkeys(Item.objects.filter(dataset_id=dataset_id).values_list("pk", flat=True), 0)
    for item_id in train.values_list("item_id", flat=True):
        counts[item_id] += 1
    everything = Counter(Interaction.objects.filter(dataset_id=dataset_id).values_list("item_id", flat=True))
    assert any(counts[pk] != everything[pk] for pk in counts)  # the split matters here
    least, most = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
    assert buckets[least] == "1" and buckets[most] == "5"
    assert all(
        buckets[a] <= buckets[b] for a in counts for b in counts if counts[a] < counts[b]
    )  # monotone in the count


@pytest.mark.django_db
def test_fixed_popularity_groups_are_the_studys_interaction_counts() -> None:
    runs = explained_runs(n_users=6, n_runs=1)
    recommender_run = runs[0].recommender_run
    item = Item.objects.filter(dataset_id=recommender_run.dataset_id).first()
    assert item is not None
    users = list(DatasetUser.objects.filter(dataset_id=recommender_run.dataset_id)[:1])
    # 120 extra train events on one item (timestamps before everyone's held-out last event).
    Interaction.objects.bulk_create(
        Interaction(dataset_id=recommender_run.dataset_id, user=users[0], item=item, rating=3.0, timestamp=index)
        for index in range(120)
    )

    buckets = _popularity_buckets(recommender_run.dataset_id, recommender_run.split_id, fixed=True)

    train = Interaction.objects.filter(item=item).outside_test_of(recommender_run.split_id)  # type: ignore[arg-type]
    assert 100 <= train.count() < 150 and buckets[item.pk] == "3"
    assert {bucket for pk, bucket in buckets.items() if pk != item.pk} == {"1"}  # a small catalogue: all under 50
    text = probe_messages(
        target="popularity_fixed", history=[], item_title="X", item_attributes={}, options=[], explanation=None
    )[-1]["content"]
    assert "1: fewer than 50, 2: fewer than 100, 3: fewer than 150, 4: fewer than 200, 5: 200 or more" in text


@pytest.mark.django_db
def test_an_age_probe_asks_twice_per_explanation_without_the_profile_and_scores_within_five_years() -> None:
    # Factory users are aged 20 + their index; the run's prompts did not show the profile.
    runs = explained_runs(n_users=8, n_runs=1, include_profile=False)
    prober, backend = scripted_judge(lambda prompt: "Answer: 24", name="scripted-prober")

    probe = probe_start(
        created_by=None,
        prober=prober,
        generation_run=runs[0],
        target="age",
        chunk_size=5,
        answer_mode=AnswerMode.TEXT,
        enqueue=False,
    )
    run_all(probe)

    answers = list(ProbeAnswer.objects.filter(probe=probe).select_related("explanation__recommendation__user"))
    assert probe.status == AttributeProbe.Status.SUCCEEDED and len(answers) == 16 and backend.prompts == 16
    assert sum(a.with_explanation for a in answers) == 8
    for answer in answers:
        age = answer.explanation.recommendation.user.profile["age"]
        assert answer.truth == [str(age)] and answer.answer == "24"
        assert answer.correct == (abs(age - 24) <= 5)
        prompt = answer.prompt[-1]["content"]
        # The profile is left out: no "24-year-old", and the age appears nowhere (factory items
        # are "Item 0" to "Item 19", so a two-digit age from 20 up cannot hide in a title).
        assert "year-old" not in prompt and str(age) not in re.sub(r"rated \d", "", prompt)
        assert (answer.explanation.text in prompt) == answer.with_explanation


@pytest.mark.django_db
def test_unparsed_answers_count_as_wrong_and_are_reported() -> None:
    runs = explained_runs(n_users=4, n_runs=1)
    prober, _ = scripted_judge(lambda prompt: "I would say the person likes comedies.", name="scripted-prober")

    probe = probe_start(
        created_by=None,
        prober=prober,
        generation_run=runs[0],
        target="item:genres",
        answer_mode=AnswerMode.TEXT,
        enqueue=False,
    )
    run_all(probe)

    answers = ProbeAnswer.objects.filter(probe=probe)
    assert answers.count() == 8
    assert set(answers.values_list("correct", flat=True)) == {False}
    assert set(answers.values_list("answer", flat=True)) == {""}
    assert all(a.parse_error.startswith("not one of the options") for a in answers)
    assert "8 unparsed" in probe.phase
    assert probe.options == ["Comedy", "Drama", "Horror"]


@pytest.mark.django_db
def test_unknown_targets_and_targets_nobody_has_are_refused() -> None:
    runs = explained_runs(n_users=3, n_runs=1, include_profile=False)
    prober, _ = scripted_judge(lambda prompt: "Answer: 1", name="scripted-prober")

    with pytest.raises(GenerationError, match="unknown target"):
        probe_start(created_by=None, prober=prober, generation_run=runs[0], target="income")
    with pytest.raises(GenerationError, match="no sampled explanation"):
        probe_start(created_by=None, prober=prober, generation_run=runs[0], target="occupation")
    assert not AttributeProbe.objects.exists()


@pytest.mark.django_db
def test_admins_start_a_probe_from_the_page_and_researchers_read_it(admin_user, researcher) -> None:
    runs = explained_runs(n_users=8, n_runs=1, include_profile=False)
    prober, _ = scripted_judge(lambda prompt: "Answer: 24", name="<b>scripted-prober</b>")
    form = {"prober": prober.pk, "generation_run": runs[0].pk, "sample_size": 0, "seed": 0, "max_new_tokens": 16}
    admin, reader = client_for(admin_user), client_for(researcher)
    create = reverse("explanations:probe_create")

    refused = admin.post(create, form | {"target": "income", "chunk_size": 5})
    assert refused.status_code == 200 and "unknown target" in refused.content.decode()
    assert reader.post(create, form | {"target": "age", "chunk_size": 5}).status_code == 403
    assert not AttributeProbe.objects.exists()

    started = admin.post(create, form | {"target": "age", "chunk_size": 5})
    probe = AttributeProbe.objects.get()
    assert started.status_code == 302 and started["Location"] == reverse("explanations:probe_detail", args=[probe.pk])
    run_all(probe)

    page = reader.get(started["Location"]).content.decode()
    # Factory users are aged 20 to 27: a guess of 24 is within five years of each.
    assert "history alone" in page and "history and explanation" in page and "1.000" in page
    assert "&lt;b&gt;scripted-prober&lt;/b&gt;" in page and "<b>scripted-prober" not in page
    listing = reader.get(reverse("explanations:probe_list")).content.decode()
    assert f"#{probe.pk}" in listing and "age" in listing
    progress = reader.get(started["Location"], headers={"HX-Request": "true", "HX-Target": "progress"})
    assert progress.status_code == 286  # finished: htmx stops polling


def test_age_bands_put_every_age_within_the_tolerance_of_exactly_one_centre() -> None:
    ages = list(range(7, 74))
    centres = [int(c) for c in age_bands(ages)]

    assert centres[0] == 12 and all(b - a == 11 for a, b in itertools.pairwise(centres))
    assert all(sum(is_correct("age", str(c), [str(age)]) for c in centres) == 1 for age in ages)


@pytest.mark.django_db
def test_a_likelihood_probe_answers_the_most_likely_label_and_stores_the_distribution() -> None:
    runs = explained_runs(n_users=4, n_runs=1)
    prober, _ = scripted_judge(lambda prompt: "Answer: Drama", name="scripted-prober")

    probe = probe_start(created_by=None, prober=prober, generation_run=runs[0], target="item:genres", enqueue=False)
    run_all(probe)

    answers = list(ProbeAnswer.objects.filter(probe=probe))
    assert probe.answer_mode == AnswerMode.LIKELIHOOD and "0 unparsed" in probe.phase
    for answer in answers:
        assert answer.answer == "Drama" and answer.output == "Answer: Drama" and not answer.parse_error
        # A set: PostgreSQL's jsonb keeps its own key order.
        assert answer.probabilities is not None and set(answer.probabilities) == {"Comedy", "Drama", "Horror"}
        assert sum(answer.probabilities.values()) == pytest.approx(1.0)
        assert answer.correct == ("Drama" in answer.truth)


@pytest.mark.django_db
def test_a_likelihood_age_probe_offers_bands_and_scores_within_five_years() -> None:
    runs = explained_runs(n_users=8, n_runs=1, include_profile=False)  # aged 20 to 27: one band, centred on 25
    prober, _ = scripted_judge(lambda prompt: "Answer: 25", name="scripted-prober")

    probe = probe_start(created_by=None, prober=prober, generation_run=runs[0], target="age", enqueue=False)
    run_all(probe)

    assert probe.options == ["25"]
    assert set(ProbeAnswer.objects.filter(probe=probe).values_list("answer", "correct")) == {("25", True)}


@pytest.mark.django_db
def test_a_probe_on_a_server_without_log_probabilities_is_answered_as_text_and_says_so(researcher) -> None:
    runs = explained_runs(n_users=3, n_runs=1)
    prober, _ = scripted_judge(lambda prompt: "Answer: Comedy", name="scripted-prober", logprobs=False)

    probe = probe_start(created_by=None, prober=prober, generation_run=runs[0], target="item:genres", enqueue=False)
    run_all(probe)

    assert probe.fallback == "the server returned no log-probabilities; answers were parsed as text"
    assert set(ProbeAnswer.objects.filter(probe=probe).values_list("answer", "probabilities")) == {("Comedy", None)}
    page = client_for(researcher).get(reverse("explanations:probe_detail", args=[probe.pk])).content.decode()
    assert "answers were parsed as text" in page


@pytest.mark.django_db
def test_a_likelihood_probe_on_a_local_model_parses_every_answer(tiny_model_dir) -> None:
    runs = explained_runs(n_users=3, n_runs=1, include_profile=False)
    prober = Generator.objects.create(name="tiny", backend=Generator.Backend.HF, model=str(tiny_model_dir))

    for target in ("item:genres", "age", "popularity"):
        probe = probe_start(created_by=None, prober=prober, generation_run=runs[0], target=target, enqueue=False)
        run_all(probe)

        answers = list(ProbeAnswer.objects.filter(probe=probe))
        assert probe.status == AttributeProbe.Status.SUCCEEDED and "0 unparsed, 0 failed" in probe.phase
        assert answers and all(a.answer in probe.options and a.probabilities for a in answers)


@pytest.mark.django_db
def test_the_probe_form_refuses_an_unknown_answer_mode(admin_user) -> None:
    runs = explained_runs(n_users=3, n_runs=1, include_profile=False)
    prober, _ = scripted_judge(lambda prompt: "Answer: 24", name="scripted-prober")
    form = {"prober": prober.pk, "generation_run": runs[0].pk, "target": "age", "sample_size": 0, "seed": 0}
    form |= {"chunk_size": 8, "max_new_tokens": 16}
    admin = client_for(admin_user)

    refused = admin.post(reverse("explanations:probe_create"), form | {"answer_mode": "vibes"})
    assert refused.status_code == 200 and "vibes is not one of the available choices" in refused.content.decode()
    assert not AttributeProbe.objects.exists()
    admin.post(reverse("explanations:probe_create"), form | {"answer_mode": "text"})
    assert AttributeProbe.objects.get().answer_mode == AnswerMode.TEXT


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["age", "gender", "occupation"])
def test_demographic_targets_are_refused_on_runs_whose_prompts_showed_the_profile(target: str) -> None:
    runs = explained_runs(n_users=4, n_runs=1, include_profile=True)
    prober, _ = scripted_judge(lambda prompt: "Answer: 24", name="scripted-prober")

    with pytest.raises(GenerationError, match=f"showed the user's profile.*can copy the {target}"):
        probe_start(created_by=None, prober=prober, generation_run=runs[0], target=target, enqueue=False)
    assert not AttributeProbe.objects.exists()


@pytest.mark.django_db
def test_probe_prompts_speak_of_the_datasets_own_items() -> None:
    runs = explained_runs(n_users=4, n_runs=1)
    Dataset.objects.filter(pk=runs[0].recommender_run.dataset_id).update(domain=Dataset.Domain.GAMES)
    prober, _ = scripted_judge(lambda prompt: "Answer: Drama", name="scripted-prober")

    probe = probe_start(created_by=None, prober=prober, generation_run=runs[0], target="item:genres", enqueue=False)
    run_all(probe)

    prompt = ProbeAnswer.objects.filter(probe=probe).first().prompt  # type: ignore[union-attr]
    assert "The games this person played most recently:" in prompt[-1]["content"]
    assert "from what they played" in prompt[0]["content"] and "watch" not in str(prompt)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (9.99, 9.99),
        ("$1,299.50", 1299.5),
        ("Free to Play", 0.0),
        ("free", 0.0),
        ("`12`", 12.0),
        ("soon", None),
        (True, None),
    ],
)
def test_numbers_are_read_with_free_as_zero(value: object, expected: float | None) -> None:
    assert number_value(value) == expected


def test_a_numeric_target_is_asked_without_the_value_and_scored_within_the_tolerance() -> None:
    text = probe_messages(
        target="number:price", history=[], item_title="Portal", item_attributes={"price": 9.99, "genres": ["Puzzle"]},
        options=[], explanation=None,
    )[-1]["content"]  # fmt: skip

    assert "9.99" not in text and "Puzzle" in text and "What is the recommended item's price?" in text
    assert parse_answer("Answer: Free", "number:price", []).value == "0"
    assert parse_answer("Answer: $10.50", "number:price", []).value == "10.5"
    assert not parse_answer("Answer: cheap", "number:price", []).ok
    assert is_correct("number:price", "10.5", ["9.99"], tolerance=1.0)
    assert not is_correct("number:price", "12", ["9.99"], tolerance=1.0)
    assert is_correct("number:price", "0", ["0"])


@pytest.mark.django_db
def test_a_price_probe_scores_answers_within_the_tolerance_and_refuses_what_means_nothing() -> None:
    runs = explained_runs(n_users=4, n_runs=1)
    dataset_id = runs[0].recommender_run.dataset_id
    for index, item in enumerate(Item.objects.filter(dataset_id=dataset_id).order_by("pk")):
        item.attributes["price"] = "Free to Play" if index % 2 else 10.0
        item.save(update_fields=["attributes"])
    prober, _ = scripted_judge(lambda prompt: "Answer: 10.4", name="scripted-prober")

    probe = probe_start(
        created_by=None, prober=prober, generation_run=runs[0], target="number:price", answer_mode="text",
        tolerance=0.5, enqueue=False,
    )  # fmt: skip
    run_all(probe)

    answers = list(ProbeAnswer.objects.filter(probe=probe))
    assert probe.status == AttributeProbe.Status.SUCCEEDED and answers
    assert all(a.correct == (a.truth == ["10"]) for a in answers) and {a.truth[0] for a in answers} <= {"0", "10"}
    with pytest.raises(GenerationError, match="open number: probe it with the text answer mode"):
        probe_start(created_by=None, prober=prober, generation_run=runs[0], target="number:price", enqueue=False)
    with pytest.raises(GenerationError, match="a tolerance applies to number:<attribute> targets only"):
        probe_start(created_by=None, prober=prober, generation_run=runs[0], target="age", tolerance=1, enqueue=False)


PROFILE_OPTIONS = {"age": [], "gender": ["F", "M"], "occupation": ["artist", "engineer"]}


def test_the_profile_question_asks_every_field_in_one_json_answer() -> None:
    text = profile_question(PROFILE_OPTIONS)

    assert text.startswith("What are this person's age, gender and occupation?")
    assert "The gender is one of: F, M." in text and "The occupation is one of: artist, engineer." in text
    assert '{"age": <years>, "gender": "<choice>", "occupation": "<choice>"}' in text
    assert profile_question({"gender": ["F", "M"]}).startswith("What are this person's gender?")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"age": 31, "gender": "f", "occupation": "Artist"}', {"age": "31", "gender": "F", "occupation": "artist"}),
        ('```json\n{"age": 31.0, "gender": "M",\n "occupation": "engineer"}\n```', {"age": "31", "gender": "M", "occupation": "engineer"}),
        ('{"age": "31", "gender": "other", "occupation": ["artist"]}', {"age": "31", "gender": None, "occupation": None}),
        ('{"gender": "F", "age": true}', {"age": None, "gender": "F", "occupation": None}),
        ('Sure! {"age": 31, "gender": "F", "occupation": "artist"}', {"age": None, "gender": None, "occupation": None}),
        ('[31, "F", "artist"]', {"age": None, "gender": None, "occupation": None}),
    ],
)  # fmt: skip
def test_each_profile_field_is_parsed_on_its_own(text: str, expected: dict[str, str | None]) -> None:
    parsed = parse_profile(text, PROFILE_OPTIONS)

    assert {field: result.value for field, result in parsed.items()} == expected
    assert all(result.ok == (expected[field] is not None) for field, result in parsed.items())


def _profiled_run(n_users: int = 6) -> Any:
    # Factory users are aged 20 + their index; here even users are F artists, odd ones M
    # engineers, and the last user has no occupation (that field is then not scored for them).
    runs = explained_runs(n_users=n_users, n_runs=1, include_profile=False)
    users = DatasetUser.objects.filter(dataset_id=runs[0].recommender_run.dataset_id).order_by("pk")
    for index, user in enumerate(users):
        user.profile |= {"gender": "FM"[index % 2]}
        if index < n_users - 1:
            user.profile["occupation"] = ("artist", "engineer")[index % 2]
        user.save(update_fields=["profile"])
    return runs[0]


@pytest.mark.django_db
def test_a_profile_probe_asks_the_three_fields_at_once_and_scores_each_field(researcher) -> None:
    run = _profiled_run()
    prober, backend = scripted_judge(
        lambda prompt: '{"age": 22, "gender": "F", "occupation": "poet"}', name="scripted-prober"
    )

    probe = probe_start(
        created_by=None, prober=prober, generation_run=run, target="profile", answer_mode=AnswerMode.TEXT,
        max_new_tokens=60, enqueue=False,
    )  # fmt: skip
    run_all(probe)

    assert probe.status == AttributeProbe.Status.SUCCEEDED and probe.options == PROFILE_OPTIONS
    answers = list(ProbeAnswer.objects.filter(probe=probe).select_related("explanation__recommendation__user"))
    assert len(answers) == 12 and backend.prompts == 12
    for answer in answers:
        profile = answer.explanation.recommendation.user.profile
        fields = answer.field_answers or {}
        assert answer.truth == {key: [str(value)] for key, value in profile.items()}
        assert fields["age"] == {"answer": "22", "correct": abs(profile["age"] - 22) <= 5, "error": ""}
        assert fields["gender"]["correct"] == (profile["gender"] == "F")
        if "occupation" in profile:
            assert fields["occupation"] == {"answer": "", "correct": False, "error": "not one of the options: 'poet'"}
            assert answer.parse_error == "occupation: not one of the options: 'poet'"
        else:
            assert "occupation" not in fields and answer.parse_error == ""
        assert answer.correct == all(field["correct"] for field in fields.values())
        assert answer.answer == '{"age":"22","gender":"F"}'
        prompt = answer.prompt[-1]["content"]
        assert "What are this person's age, gender and occupation?" in prompt and "year-old" not in prompt

    section = probe_section(probe, seed=0)
    fields = section["fields"]
    history = fields["gender"]["history"]
    # Three of the six users are F; the majority label ties F/M and goes to F, right for three.
    assert history["accuracy"]["estimate"] == 0.5 and history["majority_accuracy"] == 0.5 and history["n"] == 6
    assert fields["occupation"]["history"]["n"] == 5 and fields["occupation"]["history"]["parse_failure_rate"] == 1.0
    assert fields["age"]["history_and_explanation"]["accuracy"]["estimate"] == 1.0  # ages 20 to 25, all within 5
    assert section["variants"]["history"]["accuracy"]["estimate"] == 0.0  # the occupation is always unparsed...
    assert section["variants"]["history"]["parse_failure_rate"] == 0.0  # ...but the other fields parse
    table = _attributes_table({"attributes": [section], "runs": []})
    targets = [row[0] for row in table.rows]
    assert targets[:2] == ["profile (all fields)"] * 2 and "profile: occupation" in targets

    page = client_for(researcher).get(reverse("explanations:probe_detail", args=[probe.pk])).content.decode()
    assert (
        'id="probe-fields"' in page
        and "age: 22 (right)" in page
        and "unparsed: not one of the options: &#x27;poet&#x27;" in page
    )


@pytest.mark.django_db
def test_a_profile_probe_is_text_only_and_refused_where_the_prompts_showed_the_profile() -> None:
    run = _profiled_run(n_users=3)
    prober, _ = scripted_judge(lambda prompt: "{}", name="scripted-prober")

    with pytest.raises(GenerationError, match="one JSON answer: use the text answer mode"):
        probe_start(created_by=None, prober=prober, generation_run=run, target="profile", enqueue=False)
    run.include_profile = True
    run.save(update_fields=["include_profile"])
    with pytest.raises(GenerationError, match="showed the user's profile"):
        probe_start(
            created_by=None, prober=prober, generation_run=run, target="profile", answer_mode="text", enqueue=False
        )
    assert not AttributeProbe.objects.exists()
