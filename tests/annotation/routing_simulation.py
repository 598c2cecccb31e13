"""Simulated Likert campaigns that compare generators, to measure routing against random order.

Generators have known qualities; each recommendation has a difficulty every generator's
explanation shares, each explanation its own deviation; annotators have a leniency and noise.
Ratings are drawn one at a time under the campaign's rules (at most ``overlap`` per item, never
twice by one annotator) in random order or routed (``annotation.study.stats.ranking.priorities``,
refreshed every ``refresh`` ratings, as the site refreshes them), and the stopping rule is
checked every ``check_every`` ratings. Used by the test suite and by ``tests.perf.bench_routing``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from annotation.study.stats.ranking import likert_ranking, priorities


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


@dataclass(frozen=True)
class Outcome:
    ratings: int  # at the stopping point, or the whole budget when it never settled
    settled: bool
    correct: bool  # the ranking at that point is the true one


def simulate(design: Design, *, routed: bool, seed: int) -> Outcome:
    rng = random.Random(seed)
    generators = list(range(len(design.qualities)))
    difficulty = [rng.gauss(0, design.difficulty_sd) for _ in range(design.recommendations)]
    items = [(r, g) for r in range(design.recommendations) for g in generators]
    deviation = [rng.gauss(0, design.item_sd) for _ in items]
    leniency = [rng.gauss(0, design.leniency_sd) for _ in range(design.annotators)]
    counts = [0] * len(items)
    raters: list[set[int]] = [set() for _ in items]
    ratings: list[tuple[int, int, float]] = []
    truth = sorted(generators, key=lambda g: -design.qualities[g])
    shown = [(r, frozenset((g,))) for r, g in items]
    priority = [0] * len(items)
    ranking = likert_ranking([], confidence=design.confidence)
    budget = len(items) * design.overlap
    while len(ratings) < budget:
        annotator = rng.randrange(design.annotators)
        open_items = [i for i in range(len(items)) if counts[i] < design.overlap and annotator not in raters[i]]
        if not open_items:
            continue
        if routed and ratings:
            best = max(priority[i] for i in open_items)
            candidates = [i for i in open_items if priority[i] == best]
            fewest = min(counts[i] for i in candidates)
            index = rng.choice([i for i in candidates if counts[i] == fewest])
        else:
            index = rng.choice(open_items)
        r, g = items[index]
        mean = 5.5 + design.qualities[g] + difficulty[r] + deviation[index] + leniency[annotator]
        value = min(10, max(1, round(mean + rng.gauss(0, design.noise_sd))))
        ratings.append((r, g, float(value)))
        counts[index] += 1
        raters[index].add(annotator)
        if len(ratings) % design.check_every == 0 or len(ratings) == budget:
            ranking = likert_ranking(ratings, confidence=design.confidence)
            if ranking.settled:
                return Outcome(len(ratings), True, ranking.order == truth)
        if routed and len(ratings) % design.refresh == 0:
            priority = priorities(ranking, shown, counts)
    return Outcome(len(ratings), False, ranking.order == truth)
