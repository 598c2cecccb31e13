"""Prompts are personalised from the train side only, and the controls change them."""

import pytest

from explanations.models import PromptTemplate
from explanations.prompts import BUILTIN_TEMPLATES, Controls, attributes_text, profile_text, prompt_context, render
from explanations.services.generators import (
    GenerationError,
    prompt_preview,
    prompt_template_revise,
    prompt_templates_ensure_builtin,
)
from recommendations.models import Interaction, Recommendation
from tests.explanations.factories import template, trained_run

pytestmark = pytest.mark.django_db


def _text(messages) -> str:
    return "\n".join(m["content"] for m in messages)


def test_no_prompt_contains_a_test_split_interaction() -> None:
    run = trained_run(n_users=12, k=3)
    assert run.split is not None
    test_rows = Interaction.objects.in_test_of(run.split).select_related("item", "user")
    held_out = {(row.user_id, row.item.title) for row in test_rows}
    tmpl = template()

    for recommendation in Recommendation.objects.for_run(run).select_related("user", "item__dataset", "run"):
        context = prompt_context(recommendation, run.split, Controls(history_length=200))
        history_titles = {h["title"] for h in context["history"]}
        assert not {title for user, title in held_out if user == recommendation.user_id} & history_titles
        assert len(context["history"]) == 7  # 8 interactions, the last one held out
        messages = render(tmpl.system_text, tmpl.user_text, context)
        assert recommendation.item.title in _text(messages)


def test_history_is_the_most_recent_n_oldest_first() -> None:
    run = trained_run()
    recommendation = Recommendation.objects.for_run(run).select_related("user", "item__dataset").first()
    assert recommendation is not None and run.split is not None

    context = prompt_context(recommendation, run.split, Controls(history_length=3))

    train = list(Interaction.objects.history_of(recommendation.user).in_train_of(run.split))
    assert [h["title"] for h in context["history"]] == [i.item.title for i in train[-3:]]


def test_controls_change_the_prompt() -> None:
    run = trained_run()
    recommendation = Recommendation.objects.for_run(run).select_related("user", "item__dataset", "run").first()
    assert recommendation is not None
    tmpl = template()

    plain = _text(prompt_preview(recommendation=recommendation, template=tmpl, controls=Controls()))
    varied = _text(
        prompt_preview(
            recommendation=recommendation,
            template=tmpl,
            controls=Controls(
                max_words=30, tone="enthusiastic", second_person=False, include_profile=False, aspects=("genres",)
            ),
        )
    )

    assert "at most 75 words" in plain and "at most 30 words" in varied
    assert "Be enthusiastic" in varied and "neutral" in plain
    assert '"you"' in plain and "third person" in varied
    assert "-year-old" in plain and "-year-old" not in varied
    assert "Focus on: genres" in varied


def test_every_builtin_template_renders() -> None:
    run = trained_run()
    recommendation = Recommendation.objects.for_run(run).select_related("user", "item__dataset", "run").first()
    assert recommendation is not None
    installed = prompt_templates_ensure_builtin()

    assert [t.name for t in installed] == list(dict.fromkeys(spec["name"] for spec in BUILTIN_TEMPLATES))
    for tmpl in PromptTemplate.objects.all():
        text = _text(prompt_preview(recommendation=recommendation, template=tmpl, controls=Controls()))
        assert recommendation.item.title in text and "{{" not in text and "{%" not in text


def test_builtins_install_once_keeping_earlier_versions() -> None:
    first = prompt_templates_ensure_builtin()
    again = prompt_templates_ensure_builtin()

    assert first == again
    versions = list(PromptTemplate.objects.filter(name="xrec-default").order_by("version"))
    assert [t.version for t in versions] == [1, 2] and all(t.builtin for t in versions)
    assert first[0] == versions[-1]  # the grounded template is the default
    assert "{{ item.facts_text }}" in versions[1].user_text and "{{ item.facts_text }}" not in versions[0].user_text


def test_editing_a_template_makes_a_new_version() -> None:
    original = template()

    same = prompt_template_revise(template=original, system_text=original.system_text, user_text=original.user_text)
    revised = prompt_template_revise(template=original, system_text="Be brief.", user_text="Why {{ item.title }}?")

    assert same.pk == original.pk
    assert (revised.name, revised.version) == (original.name, original.version + 1)
    original.refresh_from_db()
    assert original.system_text != "Be brief."  # the old version is untouched


def test_a_broken_template_is_refused() -> None:
    with pytest.raises(GenerationError, match="template error"):
        prompt_template_revise(template=template(), system_text="", user_text="{% if %}")


@pytest.mark.parametrize(
    ("profile", "text"),
    [
        ({"age": 24, "gender": "M", "occupation": "technician"}, "a 24-year-old male technician"),
        (
            {"age": 1, "age_group": "Under 18", "gender": "F", "occupation": "K-12 student"},
            "a female K-12 student aged under 18",
        ),
        ({"gender": "F", "occupation": "other"}, "a female person"),
        ({}, ""),
    ],
)
def test_profile_text(profile: dict, text: str) -> None:
    assert profile_text(profile) == text


def test_attributes_text_hides_links_and_respects_aspects() -> None:
    attributes = {"genres": ["Action", "Sci-Fi"], "year": 1977, "imdb_url": "http://x"}

    assert attributes_text(attributes) == "genres: Action, Sci-Fi; year: 1977"
    assert attributes_text(attributes, ("year",)) == "year: 1977"


def test_related_history_names_what_it_shares_with_the_item_from_the_train_side_only() -> None:
    run = trained_run(n_users=12, k=3)
    assert run.split is not None
    held_out = {(row.user_id, row.item_id) for row in Interaction.objects.in_test_of(run.split)}
    checked = 0
    for recommendation in Recommendation.objects.for_run(run).select_related("user", "item__dataset", "run"):
        context = prompt_context(recommendation, run.split, Controls())
        genres = set(recommendation.item.attributes["genres"])
        train = Interaction.objects.filter(user=recommendation.user).in_train_of(run.split).select_related("item")
        sharing = [i for i in train if genres & set(i.item.attributes["genres"])]
        assert len(context["related"]) == min(3, len(sharing))
        for related in context["related"]:
            assert related["shared"] and set(related["shared"]) <= genres
            assert related["shared_text"] == ", ".join(related["shared"])
            item = next(i.item for i in sharing if i.item.title == related["title"])
            assert (recommendation.user_id, item.pk) not in held_out and item != recommendation.item
        ratings = [float(r["rating"]) for r in context["related"]]
        assert ratings == sorted(ratings, reverse=True)  # one genre each here: higher rated first
        checked += bool(context["related"])
    assert checked > 10


def test_the_grounded_template_states_the_facts_and_the_shared_ones() -> None:
    run = trained_run()
    recommendation = next(
        r
        for r in Recommendation.objects.for_run(run).select_related("user", "item__dataset", "run")
        if prompt_context(r, run.split, Controls())["related"]
    )
    context = prompt_context(recommendation, run.split, Controls())

    text = _text(prompt_preview(recommendation=recommendation, template=template(), controls=Controls(max_words=40)))

    genre = recommendation.item.attributes["genres"][0]
    assert f"Recommended movie: {recommendation.item.title}; genres: {genre}." in text
    first = context["related"][0]
    assert f"- {first['title']}: also {genre}; they rated it {first['rating']}" in text
    assert f"Mention what it has in common with {first['title']}." in text
    assert "at most 40 words" in text and "Use only the facts" in text
