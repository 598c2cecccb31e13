"""Simulated campaigns that compare generators, Likert or pairwise, to measure routing against
random order.

Generators have known qualities; each recommendation has a difficulty every generator's
explanation shares, each explanation its own deviation; annotators have a leniency and noise.
Likert: an item is one explanation, rated 1-10. Pairwise: an item is two generators' explanations
of one recommendation; the annotator sees the quality difference plus both explanations'
deviations plus their noise, and calls it a tie when that is within ``tie_band`` (difficulty and
leniency cancel in a comparison).
Ratings are drawn one at a time under the campaign's rules (at most ``overlap`` per item, never
twice by one annotator) in random order or routed (``annotation.study.stats.ranking.priorities``,
refreshed every ``refresh`` ratings, as the site refreshes them), and the stopping rule is
checked every ``check_every`` ratings. Used by the test suite and by ``tests.perf.bench_routing``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from annotation.study.stats.ranking import Ranking, likert_ranking, pairwise_ranking, priorities


@dataclass(frozen=True)
class Design:
    qualities: tuple[float, ...] = (0.0, 0.5, 1.0, 1.8)
    recommendations: int = 300
    overlap: int = 3
    annotators: int = 60
    difficulty_sd: float = 1.0
    item_sd: float = 0.6
    leniency_sd: float = 0.5
    noise_sd: float = 1.2
    check_every: int = 20
    refresh: int = 20
    confidence: float = 0.95
    mode: str = "likert"  # or "pairwise"
    tie_band: float = 0.5


@dataclass(frozen=True)
class Outcome:
    ratings: int  # at the stopping point, or the whole budget when it never settled
    settled: bool
    correct: bool  # the ranking at that point is the true one


def simulate(design: Design, *, routed: bool, seed: int) -> Outcome:
    rng = random.Random(seed)
    generators = list(range(len(design.qualities)))
    difficulty = [rng.gauss(0, design.difficulty_sd) for _ in range(design.recommendations)]
    pairwise = design.mode == "pairwise"
    shows: list[tuple[int, ...]] = (
        list(itertools.combinations(generators, 2)) if pairwise else [(g,) for g in generators]
    )
    items = [(r, shown) for r in range(design.recommendations) for shown in shows]
    deviation = {(r, g): rng.gauss(0, design.item_sd) for r in range(design.recommendations) for g in generators}
    leniency = [rng.gauss(0, design.leniency_sd) for _ in range(design.annotators)]
    counts = [0] * len(items)
    raters: list[set[int]] = [set() for _ in items]
    ratings: list[tuple[int, int, float]] = []
    verdicts: list[tuple[int, int, str]] = []
    truth = sorted(generators, key=lambda g: -design.qualities[g])
    shown = [(r, frozenset(systems)) for r, systems in items]
    priority = [0] * len(items)

    def rank() -> Ranking:
        if pairwise:
            return pairwise_ranking(verdicts, confidence=design.confidence)
        return likert_ranking(ratings, confidence=design.confidence)

    ranking = rank()
    budget = len(items) * design.overlap
    while (given := len(verdicts) if pairwise else len(ratings)) < budget:
        annotator = rng.randrange(design.annotators)
        open_items = [i for i in range(len(items)) if counts[i] < design.overlap and annotator not in raters[i]]
        if not open_items:
            continue
        if routed and given:
            best = max(priority[i] for i in open_items)
            candidates = [i for i in open_items if priority[i] == best]
            fewest = min(counts[i] for i in candidates)
            index = rng.choice([i for i in candidates if counts[i] == fewest])
        else:
            index = rng.choice(open_items)
        r, systems = items[index]
        if pairwise:
            a, b = systems
            seen = design.qualities[a] - design.qualities[b] + deviation[(r, a)] - deviation[(r, b)]
            seen += rng.gauss(0, design.noise_sd)
            verdicts.append((a, b, "a" if seen > design.tie_band else "b" if seen < -design.tie_band else "tie"))
        else:
            (g,) = systems
            mean = 5.5 + design.qualities[g] + difficulty[r] + deviation[(r, g)] + leniency[annotator]
            value = min(10, max(1, round(mean + rng.gauss(0, design.noise_sd))))
            ratings.append((r, g, float(value)))
        counts[index] += 1
        raters[index].add(annotator)
        given += 1
        if given % design.check_every == 0 or given == budget:
            ranking = rank()
            if ranking.settled:
                return Outcome(given, True, ranking.order == truth)
        if routed and given % design.refresh == 0:
            priority = priorities(ranking, shown, counts)
    return Outcome(budget, False, ranking.order == truth)
