"""Agreement figures: the reliability matrix built from ratings, and alpha from the krippendorff package."""

import uuid

import krippendorff
import numpy as np
import pytest

from annotation.agreement import campaign_agreement, campaign_monitor, reliability_matrices
from annotation.models import Campaign, Participant
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join
from annotation.study.stats.agreement import alpha
from tests.annotation.factories import campaign, explained_runs, take
from tests.factories import UserFactory

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the worked example:
# 4 coders, 12 units, missing values, alpha interval 0.849, ordinal 0.815, nominal 0.743.
KRIPPENDORFF_EXAMPLE = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


def test_alpha_on_the_published_example_with_missing_values() -> None:
    assert alpha(KRIPPENDORFF_EXAMPLE, "interval") == pytest.approx(0.849, abs=1e-3)
    assert alpha(KRIPPENDORFF_EXAMPLE, "nominal") == pytest.approx(0.743, abs=1e-3)
    assert alpha(KRIPPENDORFF_EXAMPLE, "ordinal") == pytest.approx(0.815, abs=1e-3)


def test_alpha_is_undefined_without_pairs_or_without_variation() -> None:
    assert alpha(np.array([[1.0, np.nan], [np.nan, 2.0]]), "interval") is None
    assert alpha(np.array([[3.0, 3.0], [3.0, 3.0]]), "interval") is None
    assert alpha(np.empty((0, 0)), "interval") is None


@pytest.mark.django_db
def test_ratings_become_the_coder_by_unit_matrix_the_package_expects() -> None:
    study = campaign(runs=explained_runs(n_users=4, n_runs=1), overlap=3, items_per_annotator=4)
    # Three annotators; each answers with their own offset so the alpha is not trivial.
    expected: dict[tuple[int, int], float] = {}
    participants = [participant_join(campaign=study, user=UserFactory()) for _ in range(3)]
    for offset, participant in enumerate(participants):
        for step in range(3 if offset == 2 else 4):  # the third leaves one item unanswered
            assignment = take(participant)
            value = float(1 + (assignment.item_id * 3 + offset * (step % 2)) % 10)
            answers = {c.name: value for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
            expected[(participant.pk, assignment.item_id)] = value

    matrix = reliability_matrices(study)["reasonability"]

    coders = sorted({p for p, _ in expected})
    units = sorted({u for _, u in expected})
    by_hand = np.full((len(coders), len(units)), np.nan)
    for (coder, unit), value in expected.items():
        by_hand[coders.index(coder), units.index(unit)] = value
    np.testing.assert_array_equal(matrix, by_hand)
    row = next(r for r in campaign_agreement(study) if r["criterion"] == "reasonability")
    assert row["interval"] == pytest.approx(krippendorff.alpha(by_hand, level_of_measurement="interval"))
    assert row["ordinal"] == pytest.approx(
        krippendorff.alpha(by_hand, level_of_measurement="ordinal", value_domain=[float(v) for v in range(1, 11)])
    )
    assert row["answers"] == len(expected)


@pytest.mark.django_db
def test_excluded_annotators_leave_the_agreement_and_the_progress() -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1), overlap=2, items_per_annotator=2)
    for value in (2, 9):
        participant = participant_join(campaign=study, user=UserFactory())
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            answers = {c.name: value for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())

    before = campaign_monitor(study)
    Participant.objects.filter(pk=participant.pk).update(excluded=True)
    after = campaign_monitor(study)

    assert before["progress"]["complete"] == 2 and after["progress"]["complete"] == 0
    assert before["agreement"][0]["answers"] == 4 and after["agreement"][0]["answers"] == 2
    assert after["agreement"][0]["interval"] is None


@pytest.mark.django_db
def test_pairwise_agreement_is_nominal_and_ordinal() -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=2), mode=Campaign.Mode.PAIRWISE, overlap=2)
    for choice in ("a", "a"):
        participant = participant_join(campaign=study, user=UserFactory())
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            answers = {c.name: choice for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())

    row = campaign_agreement(study)[0]

    assert set(row) == {"criterion", "answers", "units_paired", "nominal", "ordinal"}
    assert row["units_paired"] == 3 and row["nominal"] is None  # perfect agreement on one value: undefined
