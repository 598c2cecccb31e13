"""The automatic claim checker: every claim of a run's explanations, checked against the facts
the explanation was written from, by likelihood (P(supported)) or as strict text."""

import pytest
from django.urls import reverse

from explanations.judging import parse_claim_verdict
from explanations.models import CheckedClaim, ClaimCheck, Explanation, Generator
from explanations.services.claims import CLAIM_CHECK, claim_check_start, claim_check_stats
from explanations.services.generators import GenerationError
from tests.annotation.factories import explained_runs
from tests.conftest import client_for
from tests.explanations.scripted import scripted_judge

pytestmark = pytest.mark.django_db


def _run_with_two_claim_texts():
    # Half the explanations make one supported and one unsupported claim, the rest one claim.
    run = explained_runs(n_users=4, n_runs=1)[0]
    for index, explanation in enumerate(Explanation.objects.filter(generation_run=run).order_by("pk")):
        text = "You liked Item 3. It won an Oscar because the cast is famous." if index % 2 else "You liked Item 3."
        Explanation.objects.filter(pk=explanation.pk).update(text=text)
    return run


def _verdict(prompt: str) -> str:
    claim = prompt.split("A claim from an explanation of this recommendation:\n")[1].split("\n")[0]
    return "Supported: yes" if claim.startswith("You liked") else "Supported: no"


def test_each_claim_is_checked_against_the_facts_by_likelihood(researcher) -> None:
    run = _run_with_two_claim_texts()
    checker, backend = scripted_judge(_verdict, name="scripted-checker")

    check = claim_check_start(created_by=None, checker=checker, generation_run=run, chunk_size=3, enqueue=False)
    CLAIM_CHECK.run_here(check)

    claims = list(CheckedClaim.objects.filter(claim_check=check).order_by("explanation_id", "position"))
    assert check.status == ClaimCheck.Status.SUCCEEDED and len(claims) == 2 + 2 * 3 and backend.prompts == 8
    assert {c.text for c in claims} == {"You liked Item 3.", "It won an Oscar", "the cast is famous."}
    for claim in claims:
        supported = claim.text.startswith("You liked")
        assert claim.p_supported is not None and (claim.p_supported > 0.5) == supported
        assert claim.answer == ("yes" if supported else "no")
        explanation = claim.explanation
        assert explanation.text[claim.start : claim.end] == claim.text
        prompt = claim.prompt[-1]["content"]
        # The facts are the explanation's own: its user's train-side history and the item.
        assert explanation.recommendation.item.title in prompt and "most recently:" in prompt
    stats = claim_check_stats(check)
    assert stats["supported_share"] == pytest.approx(4 / 8) and stats["unsupported_explanation_share"] == 0.5
    assert stats["explanations"] == 4 and stats["pending"] == 0 and stats["percent"] == 100

    page = client_for(researcher).get(reverse("explanations:claim_check_detail", args=[check.pk])).content.decode()
    assert "It won an Oscar" in page and 'id="claim-figures"' in page and "0.500" in page


def test_text_answers_are_parsed_strictly_and_unparsed_ones_are_counted() -> None:
    run = _run_with_two_claim_texts()
    checker, _ = scripted_judge(lambda prompt: "Probably yes, I think.", name="scripted-checker")

    check = claim_check_start(
        created_by=None, checker=checker, generation_run=run, answer_mode="text", sample_size=2, enqueue=False
    )
    CLAIM_CHECK.run_here(check)

    stats = claim_check_stats(check)
    assert check.status == ClaimCheck.Status.SUCCEEDED and stats["unparsed"] == stats["done"] > 0
    assert (
        stats["supported_share"] is None
        and f"{stats['done']} claims checked, {stats['unparsed']} unparsed" in check.phase
    )
    assert parse_claim_verdict("`Supported: YES`").value == "yes" and not parse_claim_verdict("yes").ok


def test_bad_choices_are_refused_and_admins_start_checks_from_the_page(admin_user, researcher) -> None:
    run = _run_with_two_claim_texts()
    checker, _ = scripted_judge(_verdict, name="scripted-checker")
    Explanation.objects.filter(generation_run=run).update(text="...")

    with pytest.raises(GenerationError, match="no finished explanation with a claim"):
        claim_check_start(created_by=None, checker=checker, generation_run=run, enqueue=False)
    with pytest.raises(GenerationError, match="unknown answer mode"):
        claim_check_start(created_by=None, checker=checker, generation_run=run, answer_mode="vibes", enqueue=False)
    Explanation.objects.filter(generation_run=run).update(text="You liked Item 3.")
    form = {"checker": checker.pk, "generation_run": run.pk, "sample_size": 0, "seed": 0, "chunk_size": 16,
            "max_new_tokens": 8, "answer_mode": "likelihood"}  # fmt: skip
    create = reverse("explanations:claim_check_create")

    assert client_for(researcher).post(create, form).status_code == 403
    started = client_for(admin_user).post(create, form)

    check = ClaimCheck.objects.get()
    assert started.status_code == 302 and started["Location"] == reverse(
        "explanations:claim_check_detail", args=[check.pk]
    )
    listing = client_for(researcher).get(reverse("explanations:claim_check_list")).content.decode()
    assert f"#{check.pk}" in listing and "scripted-checker" in listing


def test_a_local_model_gives_every_claim_a_probability(tiny_model_dir) -> None:
    run = _run_with_two_claim_texts()
    checker = Generator.objects.create(name="tiny", backend=Generator.Backend.HF, model=str(tiny_model_dir))

    check = claim_check_start(created_by=None, checker=checker, generation_run=run, enqueue=False)
    CLAIM_CHECK.run_here(check)

    claims = list(CheckedClaim.objects.filter(claim_check=check))
    assert check.status == ClaimCheck.Status.SUCCEEDED and "0 unparsed, 0 failed" in check.phase
    assert claims and all(c.p_supported is not None and 0 < c.p_supported < 1 for c in claims)
    assert all(c.answer == ("yes" if (c.p_supported or 0) >= 0.5 else "no") for c in claims)


def test_the_study_report_and_the_cross_study_tables_show_what_the_checker_found(researcher) -> None:
    from annotation.study.cross import cross_study_tables
    from annotation.study.report import study_report
    from annotation.study.tables import report_tables

    runs = explained_runs(n_users=4, n_runs=2)
    for index, explanation in enumerate(Explanation.objects.filter(generation_run=runs[1]).order_by("pk")):
        text = "You liked Item 3. It won an Oscar." if index % 2 else "You liked Item 3."
        Explanation.objects.filter(pk=explanation.pk).update(text=text)
    checker, _ = scripted_judge(_verdict, name="scripted-checker")
    check = claim_check_start(created_by=None, checker=checker, generation_run=runs[1], enqueue=False)
    CLAIM_CHECK.run_here(check)

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs, seed=0)

    (section,) = report["claims"]
    assert section["claims"] == section["answered"] == 6 and section["explanations"] == 4
    assert section["supported"]["estimate"] == pytest.approx(4 / 6) and section["supported"]["n"] == 4
    assert section["unsupported_explanations"]["estimate"] == 0.5
    table = next(t for t in report_tables(report) if t.name == "claims")
    assert table.rows[0][0] == "scripted-checker" and table.rows[0][2].startswith("0.667 [")
    cross = next(t for t in cross_study_tables([report]) if t.name == "cross_claim_support")
    assert [row[0] for row in cross.rows] == [runs[1].generator.name] and cross.rows[0][1].startswith("0.667")
