"""Benchmark: the pairwise judge answered by likelihood against free generation, on CPU.

Run as ``python -m tests.perf.bench_judge``. Nothing is downloaded: the bundled
SmolLM2-135M-Instruct is converted once into ``$XREC_MODEL_DIR/smollm2-135m-instruct``
(``var/models/...`` under the repository root when ``XREC_MODEL_DIR`` is unset) and loaded once
in the ``auto`` precision on the CPU (the GPU, if any, is hidden), then warmed up (not timed).

The 16 prompts are the judge's own (``judging.pairwise_messages`` on the study rubric): 8
synthetic recommendations, each a profile, a 10-movie history with genres, years and ratings,
a recommended movie and two ~60-word explanations, judged in both orders. They go through the
backend in chunks of 8, the judge's default chunk size, exactly as a chunk task calls it:

- likelihood: ``HFBackend.score`` with the prefix ``Winner:`` and the options `` 1``, `` 2``,
  `` tie``;
- generation: ``HFBackend.generate`` greedy with ``max_new_tokens`` 40, the judge's default,
  then ``parse_pairwise``.

Figures, on the last line as one JSON object: ``likelihood_pairs_per_second`` and
``generate_pairs_per_second`` (prompts per second; each is the better of two timed passes),
``likelihood_vs_generate`` (goal: at least 3), ``parsed_share`` (of the likelihood answers;
goal 1.0) and, for comparison, ``generate_parsed_share``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.perf.machine import describe_machine

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPTS = 16
CHUNK = 8
MAX_NEW_TOKENS = 40
GOAL_SPEEDUP = 3.0
T = TypeVar("T")
GENRES = ["Drama", "Comedy", "Thriller", "Romance", "Action", "Sci-Fi", "Horror", "Animation"]
WORDS = (  # noqa: SIM905 - a word list reads better as text
    "you enjoyed gripping stories with strong characters and this film offers a tense plot a "
    "memorable score and the kind of humour you rated highly in recent classics so it should suit "
    "your taste for clever twists warm performances and a satisfying ending"
).split()


def log(message: str) -> None:
    print(f"[bench_judge] {message}", flush=True)


def timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def bundled_target() -> Path:
    from explanations.llm.bundled import BUNDLED_FOLDER

    base = os.environ.get("XREC_MODEL_DIR")
    return ((Path(base) if base else REPO_ROOT / "var" / "models") / BUNDLED_FOLDER).resolve()


def judge_prompts() -> list[Any]:
    """The judge's pairwise prompts for 8 synthetic recommendations, in both orders."""
    from explanations.judging import default_rubric, pairwise_messages

    rng = random.Random(0)  # reproducible synthetic data
    rubric = default_rubric()
    prompts = []
    for index in range(PROMPTS // 2):
        history = [
            {
                "title": f"Movie {rng.randint(1, 999)} ({rng.randint(1950, 1999)})",
                "attributes_text": f"genres: {', '.join(rng.sample(GENRES, 2))}",
                "rating": str(rng.randint(1, 5)),
            }
            for _ in range(10)
        ]
        context = {
            "profile_text": f"a {20 + index}-year-old {rng.choice(['student', 'engineer', 'writer'])}",
            "domain": "movie",
            "domain_plural": "movies",
            "verb_past": "watched",
            "history": history,
            "item": {"title": f"Movie {1000 + index} (1997)", "attributes_text": "genres: Drama, Comedy"},
        }
        a = " ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + "."
        b = " ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + "."
        prompts += [pairwise_messages(context, a, b, rubric), pairwise_messages(context, b, a, rubric)]
    return prompts


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the figures are the CPU's
    machine = describe_machine()
    from explanations.judging import PAIRWISE_OPTIONS, PAIRWISE_PREFIX, parse_pairwise
    from explanations.llm import BackendSpec, DecodingParams
    from explanations.llm.bundled import prepare_bundled_model
    from explanations.llm.hf import HFBackend

    folder, seconds = timed(lambda: prepare_bundled_model(bundled_target()))
    log(f"bundled model ready in {seconds:.1f} s at {folder}")
    backend = HFBackend(BackendSpec(kind="hf", model=str(folder), quantization="auto"))
    log(f"loaded in {backend.precision}")
    prompts = judge_prompts()
    chunks = [prompts[start : start + CHUNK] for start in range(0, len(prompts), CHUNK)]
    options = list(PAIRWISE_OPTIONS)
    params = DecodingParams(max_new_tokens=MAX_NEW_TOKENS)

    def by_likelihood() -> list[Any]:
        return [s for c in chunks for s in backend.score(c, [PAIRWISE_PREFIX] * len(c), [options] * len(c))]

    def by_generation() -> list[Any]:
        return [completion for c in chunks for completion in backend.generate(c, params)]

    backend.score(prompts[:2], [PAIRWISE_PREFIX] * 2, [options] * 2)  # warm-up
    backend.generate(prompts[:2], DecodingParams(max_new_tokens=4))
    scores, likelihood_seconds = min((timed(by_likelihood) for _ in range(2)), key=lambda pair: pair[1])
    completions, generate_seconds = min((timed(by_generation) for _ in range(2)), key=lambda pair: pair[1])
    log(f"likelihood {likelihood_seconds:.2f} s, generation {generate_seconds:.2f} s for {len(prompts)} prompts")
    log(f"sample answer: {completions[0].text[:120]!r}; sample scores: {scores[0].probabilities}")
    parsed = sum(1 for s in scores if len(s.probabilities) == len(options) and abs(sum(s.probabilities) - 1) < 1e-6)
    figures = {
        "likelihood_pairs_per_second": len(prompts) / likelihood_seconds,
        "generate_pairs_per_second": len(prompts) / generate_seconds,
        "likelihood_vs_generate": generate_seconds / likelihood_seconds,
        "parsed_share": parsed / len(prompts),
        "generate_parsed_share": sum(parse_pairwise(c.text).ok for c in completions) / len(prompts),
    }
    figures = {key: round(value, 4) for key, value in figures.items()}
    speedup = figures["likelihood_vs_generate"]
    log(f"goal likelihood at least {GOAL_SPEEDUP:.0f}x generation: {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'}")
    print(json.dumps({"bench": "judge", "figures": figures, "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
