"""Explanation pages and endpoints: admins start, researchers read, annotators see nothing."""

import pytest
from django.urls import reverse

from explanations.models import Explanation, GenerationRun, PromptTemplate
from explanations.services.generation import generation_chunk_run, generation_run_start
from tests.conftest import client_for
from tests.explanations.factories import template, tiny_generator, trained_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def generation(tiny_model_dir, django_capture_on_commit_callbacks) -> GenerationRun:
    run = trained_run(n_users=6, k=2)
    generator = tiny_generator(tiny_model_dir)
    with django_capture_on_commit_callbacks():
        generation = generation_run_start(
            created_by=None, recommender_run=run, generator=generator, template=template(), sample="all", chunk_size=6
        )
    generation_chunk_run(run_id=generation.pk, chunk=0)
    generation.refresh_from_db()
    return generation


def _form(generation: GenerationRun, **extra) -> dict:
    return {
        "recommender_run": generation.recommender_run_id, "generator": generation.generator_id,
        "template": generation.template_id, "depth": 1, "sample": "first", "sample_size": 3, "seed": 0,
        "history_length": 5, "max_words": 40, "aspects": "", "tone": "warm", "second_person": "on",
        "include_profile": "on", "chunk_size": 2, "preview_user": "", "preview_rank": 1,
    } | extra  # fmt: skip


def test_annotator_is_refused_everything(annotator, generation) -> None:
    client = client_for(annotator)
    urls = [
        reverse("explanations:run_list"),
        reverse("explanations:run_create"),
        reverse("explanations:run_detail", args=[generation.pk]),
        reverse("explanations:generator_list"),
        reverse("explanations:adapter_create"),
        reverse("explanations:api_run_detail", args=[generation.pk]),
        reverse("explanations:api_explanations", args=[generation.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("explanations:run_cancel", args=[generation.pk])).status_code == 403


def test_researcher_reads_but_cannot_start_or_cancel(researcher, generation) -> None:
    client = client_for(researcher)

    assert client.get(reverse("explanations:run_detail", args=[generation.pk])).status_code == 200
    assert client.get(reverse("explanations:api_explanations", args=[generation.pk])).status_code == 200
    assert client.get(reverse("explanations:run_create")).status_code == 403
    assert client.post(reverse("explanations:run_cancel", args=[generation.pk])).status_code == 403
    assert client.post(reverse("explanations:api_run_start"), {}).status_code == 403


def test_run_page_shows_explanations_escaped_beside_the_history(admin_user, generation) -> None:
    Explanation.objects.filter(generation_run=generation).update(text="<img src=x onerror=alert(1)> fits you")

    html = client_for(admin_user).get(reverse("explanations:run_detail", args=[generation.pk])).content.decode()

    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; fits you" in html
    assert "Recent train history" in html and "6 done, 0 failed, 0 pending of 6" in html


def test_preview_renders_the_exact_prompt_without_starting(admin_user, generation) -> None:
    first = generation.recommender_run.recommendations.first()
    assert first is not None
    user = first.user.external_id

    response = client_for(admin_user).post(
        reverse("explanations:run_create"),
        _form(generation, preview="1", preview_user=user),
        headers={"HX-Request": "true"},
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="preview"') and "Be warm and friendly" in html
    assert "at most 40 words" in html
    assert GenerationRun.objects.count() == 1


def test_admin_starts_a_run_from_the_form(admin_user, generation, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(admin_user).post(reverse("explanations:run_create"), _form(generation, start="1"))

    new = GenerationRun.objects.exclude(pk=generation.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("explanations:run_detail", args=[new.pk])
    assert (new.n_total, new.tone, new.max_words, new.chunk_size) == (3, "warm", 40, 2)
    assert len(callbacks) == 2


def test_unknown_aspect_is_a_form_error(admin_user, generation) -> None:
    response = client_for(admin_user).post(
        reverse("explanations:run_create"), _form(generation, aspects="budget", start="1")
    )

    assert "not attributes of this dataset" in response.content.decode()
    assert GenerationRun.objects.count() == 1


def test_progress_partial_stops_polling_when_done(admin_user, generation) -> None:
    response = client_for(admin_user).get(
        reverse("explanations:run_detail", args=[generation.pk]),
        headers={"HX-Request": "true", "HX-Target": "progress"},
    )

    assert response.status_code == 286


def test_cancel_and_resume_buttons(admin_user, generation, django_capture_on_commit_callbacks) -> None:
    GenerationRun.objects.filter(pk=generation.pk).update(status=GenerationRun.Status.RUNNING)
    Explanation.objects.filter(generation_run=generation).update(status=Explanation.Status.PENDING)
    client = client_for(admin_user)

    client.post(reverse("explanations:run_cancel", args=[generation.pk]))
    generation.refresh_from_db()
    assert generation.status == GenerationRun.Status.CANCELLED
    with django_capture_on_commit_callbacks() as callbacks:
        client.post(reverse("explanations:run_resume", args=[generation.pk]))
    generation.refresh_from_db()
    assert generation.status == GenerationRun.Status.RUNNING and len(callbacks) == 1


def test_api_starts_a_run_and_reports_status_and_explanations(
    admin_user, generation, django_capture_on_commit_callbacks
) -> None:
    client = client_for(admin_user)
    body = {"recommender_run": generation.recommender_run_id, "generator": generation.generator_id,
            "template": generation.template_id, "sample_size": 2, "aspects": ["genres"]}  # fmt: skip

    with django_capture_on_commit_callbacks():
        started = client.post(reverse("explanations:api_run_start"), body, content_type="application/json")
    status = client.get(reverse("explanations:api_run_detail", args=[generation.pk])).json()
    listed = client.get(reverse("explanations:api_explanations", args=[generation.pk])).json()

    assert started.status_code == 201 and started.json()["total"] == 2
    assert status["status"] == "succeeded" and status["done"] == 6 and status["pending"] == 0
    assert listed["count"] == 6 and {"text", "prompt", "completion_tokens", "user", "item_title"} <= set(
        listed["results"][0]
    )


def test_api_rejects_a_depth_beyond_k(admin_user, generation) -> None:
    body = {"recommender_run": generation.recommender_run_id, "generator": generation.generator_id,
            "template": generation.template_id, "depth": 9}  # fmt: skip

    response = client_for(admin_user).post(reverse("explanations:api_run_start"), body, content_type="application/json")

    assert response.status_code == 400 and "depth must be between 1" in response.json()["detail"]


def test_editing_a_template_in_the_browser_saves_a_new_version(admin_user, researcher) -> None:
    original = template()
    url = reverse("explanations:template_edit", args=[original.pk])

    assert client_for(researcher).get(url).status_code == 403
    response = client_for(admin_user).post(
        url, {"description": "shorter", "system_text": "", "user_text": "Why {{ item.title }}?"}
    )
    broken = client_for(admin_user).post(url, {"description": "", "system_text": "", "user_text": "{% if %}"})

    assert response.status_code == 302
    assert list(PromptTemplate.objects.filter(name=original.name).values_list("version", flat=True)) == [3, 2, 1]
    assert "template error" in broken.content.decode()
    assert client_for(researcher).get(reverse("explanations:template_list")).status_code == 200
