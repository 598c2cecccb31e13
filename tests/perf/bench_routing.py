"""Benchmark: ratings a campaign needs before its generator ranking is settled, routed or not.

Run as ``python -m tests.perf.bench_routing [--repetitions N] [--seed S] [--mode likert|pairwise]``.
Each repetition draws a
simulated campaign (``tests/annotation/routing_simulation.py``, default ``Design``: four
generators of true quality 0, 0.5, 1.0 and 1.8 points above a 5.5 baseline on a 1-10 scale, 300
recommendations, k = 3, 60 annotators, recommendation difficulty sd 1.0, explanation deviation
sd 0.6, annotator leniency sd 0.5, rating noise sd 1.2) and rates it twice from the same seed: in
random order, and routed (``annotation.study.stats.ranking.priorities``). Both stop when the
stopping rule says settled (every adjacent pair told apart by a 95% confidence sequence,
Bonferroni over the pairs), checked every 20 ratings, or at the budget (every item k times).
``--mode pairwise``: the same generators, compared two at a time (every pair for each
recommendation, k = 3); an annotator calls a tie when the difference they see is within half a
point.

Printed, last line JSON: ``ratings_to_settle_random`` and ``ratings_to_settle_routed`` (means
over the repetitions; a campaign that never settled counts its whole budget), ``saving`` (1 -
routed / random; goal >= 0.30), ``wrong_ranking_rate_random`` and ``wrong_ranking_rate_routed``
(share of repetitions whose ranking at the stopping point is not the true one; goal <= 0.05),
``settled_rate_*``, the design and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict

from tests.annotation.routing_simulation import Design, simulate
from tests.perf.machine import describe_machine

GOAL_SAVING = 0.30
GOAL_WRONG = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=60, help="seeded campaigns (at least 50 for the goal)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--mode", choices=("likert", "pairwise"), default="likert")
    options = parser.parse_args()
    design = Design(mode=options.mode)
    started = time.perf_counter()
    outcomes: dict[str, list] = {"random": [], "routed": []}
    for seed in range(options.seed, options.seed + options.repetitions):
        for name in outcomes:
            outcomes[name].append(simulate(design, routed=name == "routed", seed=seed))
    figures: dict[str, object] = {"benchmark": "routing", "machine": describe_machine()}
    for name, runs in outcomes.items():
        figures[f"ratings_to_settle_{name}"] = round(statistics.mean(run.ratings for run in runs), 1)
        figures[f"wrong_ranking_rate_{name}"] = round(sum(not run.correct for run in runs) / len(runs), 4)
        figures[f"settled_rate_{name}"] = round(sum(run.settled for run in runs) / len(runs), 4)
    saving = 1 - float(figures["ratings_to_settle_routed"]) / float(figures["ratings_to_settle_random"])  # type: ignore[arg-type]
    figures |= {
        "saving": round(saving, 4),
        "goal_met": saving >= GOAL_SAVING
        and all(float(figures[f"wrong_ranking_rate_{name}"]) <= GOAL_WRONG for name in outcomes)  # type: ignore[arg-type]
        and options.repetitions >= 50,
        "repetitions": options.repetitions,
        "design": asdict(design),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"[bench_routing {options.mode}] random {figures['ratings_to_settle_random']} ratings, routed "
        f"{figures['ratings_to_settle_routed']}: saving {saving:.3f} (goal >= {GOAL_SAVING}); wrong ranking "
        f"{figures['wrong_ranking_rate_random']} / {figures['wrong_ranking_rate_routed']} (goal <= {GOAL_WRONG})",
        flush=True,
    )
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
