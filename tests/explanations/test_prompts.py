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

    assert [t.name for t in installed] == [spec["name"] for spec in BUILTIN_TEMPLATES]
    for tmpl in installed:
        text = _text(prompt_preview(recommendation=recommendation, template=tmpl, controls=Controls()))
        assert recommendation.item.title in text and "{{" not in text and "{%" not in text


def test_builtins_install_once() -> None:
    prompt_templates_ensure_builtin()
    prompt_templates_ensure_builtin()

    assert PromptTemplate.objects.filter(name="xrec-default").count() == 1


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
