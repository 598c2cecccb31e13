"""The cross-study tables: several studies in the paper's layout, on the page and as exports."""

import pytest
from django.urls import reverse

from explanations.services.probing import probe_chunk_run, probe_start
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.annotation.factories import explained_runs
from tests.annotation.test_reports import judged, rated
from tests.conftest import client_for
from tests.explanations.scripted import scripted_judge

pytestmark = pytest.mark.django_db


def _two_studies() -> str:
    first = explained_runs(n_users=6, n_runs=2)
    dataset = first[0].recommender_run.dataset
    bpr = recommender_run_create(created_by=None, dataset=dataset, algorithm="BPR", k=2, hyperparameters={"factors": 4})
    recommender_run_execute(run_id=bpr.pk)
    bpr.refresh_from_db()
    second = explained_runs(n_users=6, n_runs=2, run=bpr)
    for index, runs in enumerate((first, second)):
        judged(runs, name=f"scripted-judge-{index}")
        rated(runs)
    # A scripted backend answers for whichever model asked last: the prober comes after the judges.
    prober, _ = scripted_judge(lambda prompt: "Answer: 22", name="scripted-prober")
    for runs in (first, second):
        for run in runs:
            run.include_profile = False
            run.save(update_fields=["include_profile"])
            probe = probe_start(created_by=None, prober=prober, generation_run=run, target="age", enqueue=False)
            for chunk in range(-(-probe.n_total // probe.chunk_size)):
                probe_chunk_run(probe_id=probe.pk, chunk=chunk)
    return ";".join(f"{runs[0].recommender_run_id}:{runs[0].pk},{runs[1].pk}" for runs in (first, second))


def test_rows_are_generators_and_columns_are_dataset_and_recommender(researcher) -> None:
    studies = _two_studies()
    client = client_for(researcher)

    page = client.get(reverse("annotation:cross_study"), {"studies": studies}).content.decode()
    markdown = client.get(reverse("annotation:cross_study_export", args=["md"]), {"studies": studies})
    latex = client.get(reverse("annotation:cross_study_export", args=["tex"]), {"studies": studies})
    csv = client.get(
        reverse("annotation:cross_study_export", args=["csv"]), {"studies": studies, "table": "cross_judge_win_rate"}
    )

    assert 'id="table-cross_judge_win_rate_single_order"' in page and "/ SVD (#" in page and "/ BPR (#" in page
    text = markdown.content.decode()
    header = next(line for line in text.splitlines() if line.startswith("| generator |"))
    assert header.count(" / ") == 2  # one column per study
    rows = [line for line in text.splitlines() if line.startswith("| secret-generator-")]
    assert {row.split(" | ")[0] for row in rows} == {"| secret-generator-0", "| secret-generator-1"}
    assert "n/a" not in "".join(rows[:2])  # the judge's win rates exist in both studies
    assert latex.status_code == 200 and "\\begin{tabular}" in latex.content.decode()
    assert csv.status_code == 200 and csv.content.decode().startswith("generator,")
    # Factory users are 20 to 25 years old: an answer of 22 is within five years of every age.
    probes = text.split("Attribute prediction, age")[1].split("**")[1]
    assert probes.count("| 1.000 [") == 4, probes


def test_bad_studies_are_refused_with_the_reason(researcher, annotator) -> None:
    client = client_for(researcher)

    response = client.get(reverse("annotation:cross_study_export", args=["md"]), {"studies": "999:1,2"})

    assert response.status_code == 400 and "no finished recommender run #999" in response.content.decode()
    bad = client.get(reverse("annotation:cross_study"), {"studies": "abc"}).content.decode()
    assert "is not RUN:GENERATION,GENERATION" in bad
    assert client_for(annotator).get(reverse("annotation:cross_study")).status_code == 403
