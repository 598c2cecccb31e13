"""Is the generator ranking settled, what settles it, and routing ratings where they settle it."""

import statistics

import pytest

from annotation.study.stats.ranking import likert_ranking, pairwise_ranking, priorities, radius
from tests.annotation.routing_simulation import Design, simulate


def test_a_clear_likert_ranking_is_settled_and_a_tie_is_not() -> None:
    clear = [(r, system, 3.0 + 2 * index + (r % 3) * 0.1) for r in range(30) for index, system in enumerate("abc")]
    tied = [(r, system, 5.0 + (r % 2)) for r in range(30) for system in "ab"]

    settled, unsettled = likert_ranking(clear), likert_ranking(tied)

    assert settled.order == ["c", "b", "a"] and settled.settled and settled.units_needed() == 0
    assert not unsettled.settled and unsettled.units_needed() is None  # no difference: no estimate


def test_the_likert_ranking_nets_out_which_recommendations_each_generator_was_rated_on() -> None:
    # "b" is better by 1 on every recommendation, but was rated only on the hard ones.
    ratings = [(r, "a", 2.0 + r) for r in range(20)] + [(r, "b", 3.0 + r) for r in range(10)]

    ranking = likert_ranking(ratings)

    assert ranking.order == ["b", "a"] and ranking.estimates["b"] > ranking.estimates["a"]


def test_units_needed_shrink_as_the_evidence_grows() -> None:
    def ratings(n: int) -> list[tuple[int, str, float]]:
        # b - a: 0.2 on average, spread over -0.8 to 1.2
        return [(r, "a", 5.0 + (r % 5)) for r in range(n)] + [
            (r, "b", 5.2 + (r % 5) + ((r * 7) % 5 - 2) * 0.5) for r in range(n)
        ]

    small, large = likert_ranking(ratings(10)), likert_ranking(ratings(40))

    needed_small, needed_large = small.units_needed(), large.units_needed()
    assert not small.settled and needed_small is not None and needed_small > 0
    assert large.settled or (needed_large is not None and needed_large < needed_small)


def test_the_confidence_sequence_is_wider_than_a_fixed_sample_interval_and_narrows() -> None:
    assert radius(1.0, 100, 0.05) > 1.96 / 10
    assert radius(1.0, 400, 0.05) < radius(1.0, 100, 0.05) < radius(1.0, 10, 0.05)
    assert radius(1.0, 0, 0.05) == float("inf")


def test_a_pairwise_ranking_is_settled_by_head_to_head_wins() -> None:
    # (first generator, second generator, winner: "a" the first, "b" the second, or "tie")
    verdicts = [("a", "b", "a")] * 40 + [("a", "b", "b")] * 5 + [("b", "c", "a")] * 40 + [("b", "c", "tie")] * 9
    close = [("a", "b", "a")] * 11 + [("a", "b", "b")] * 9

    ranking = pairwise_ranking(verdicts)

    assert ranking.order == ["a", "b", "c"] and ranking.settled
    assert ranking.gaps[1].units == 40  # ties left out
    needed = pairwise_ranking(close).units_needed()
    assert not pairwise_ranking(close).settled and needed is not None and needed > 0


def test_routing_sends_ratings_to_unsettled_pairs_and_completes_their_pairs_first() -> None:
    # a and b are told apart, b and c are not.
    ratings = [(r, "a", 9.0 + (r % 2) * 0.1) for r in range(30)] + [(r, "b", 5.0 + (r % 3)) for r in range(30)]
    ratings += [(r, "c", 5.0 + ((r + 1) % 3)) for r in range(30)]
    ranking = likert_ranking(ratings)
    assert ranking.unsettled_pairs == {frozenset("bc")}
    items = [(100, frozenset("a")), (100, frozenset("b")), (100, frozenset("c")), (101, frozenset("c"))]

    assert priorities(ranking, items, [0, 2, 0, 0]) == [0, 1, 2, 1]
    assert (
        priorities(likert_ranking([(r, s, 1.0 + 8 * (s == "a")) for r in range(30) for s in "ab"]), items, [0] * 4)
        == [0] * 4
    )


def test_simulated_campaigns_settle_with_fewer_routed_ratings_and_never_on_a_wrong_ranking() -> None:
    design = Design(qualities=(0.0, 0.6, 1.6), recommendations=120, annotators=40)
    random_runs = [simulate(design, routed=False, seed=seed) for seed in range(6)]
    routed_runs = [simulate(design, routed=True, seed=seed) for seed in range(6)]

    assert all(run.settled and run.correct for run in random_runs + routed_runs)
    assert statistics.mean(r.ratings for r in routed_runs) < 0.85 * statistics.mean(r.ratings for r in random_runs)


@pytest.mark.parametrize("routed", [False, True])
def test_a_simulation_is_reproducible_from_its_seed(routed: bool) -> None:
    design = Design(qualities=(0.0, 1.5), recommendations=60, annotators=20)

    assert simulate(design, routed=routed, seed=3) == simulate(design, routed=routed, seed=3)


def test_simulated_pairwise_campaigns_settle_with_fewer_routed_comparisons_and_never_wrongly() -> None:
    design = Design(qualities=(0.0, 0.6, 1.6), recommendations=150, annotators=40, mode="pairwise")
    random_runs = [simulate(design, routed=False, seed=seed) for seed in range(6)]
    routed_runs = [simulate(design, routed=True, seed=seed) for seed in range(6)]
    assert all(run.settled and run.correct for run in random_runs + routed_runs)
    assert sum(run.ratings for run in routed_runs) < sum(run.ratings for run in random_runs)
