"""Benchmark: batched explanation generation on CPU, the pipeline's overhead, and a 7B model on CUDA.

Run as ``python -m tests.perf.bench_generate`` (``--cpu-only`` or ``--cuda-only`` for one half;
``--pipeline-only`` or ``--precision-only`` for one of the CPU parts).
Nothing is downloaded: the CPU parts use the bundled SmolLM2-135M-Instruct, converted once into
``$XREC_MODEL_DIR/smollm2-135m-instruct`` (``var/models/...`` under the repository root when
``XREC_MODEL_DIR`` is unset); the CUDA part uses a randomly initialised model.

The CPU parts set Django up on a throwaway SQLite database under a fresh temporary folder, import a
synthetic MovieLens-like dataset (titles, genres, years, user profiles), train SVD on it, and
start generation runs of the first 16 users' top-1 items with the built-in ``xrec-default``
template. Their 16 prompts (a system message and a ~10-movie history each, of varied lengths)
are used throughout. Decoding is greedy with at most 64 new tokens, the bundled model in nf4 on
the CPU, loaded once (not timed) and warmed up with 8-token calls before anything is timed; on a
machine with CUDA the CPU parts run in a child process that cannot see the GPU.

Figures, on the last line as one JSON object (GB means 10^9 bytes):

- ``explanations_per_second_batch1`` / ``_batch16``, ``tokens_per_second_batch1`` / ``_batch16``:
  ``HFBackend.generate`` on the 16 prompts one call each, then all in one padded call; tokens
  are the completion tokens actually generated (the sum of ``completion_tokens``) per second.
  ``batch16_vs_batch1`` is the ratio of explanations per second (goal: at least 4);
  ``batch16_outputs_matching_batch1`` counts the texts that came out identical.
- ``pipeline_seconds``: ``generation_chunk_run`` of one 16-explanation chunk (read the rows,
  render the prompts, one batched generate, write the rows), the median of three runs;
  ``bare_generate_seconds``: ``model.generate`` alone on the very same stored prompts with the
  same loaded model and decoding, the median of three runs alternated with the pipeline's;
  ``pipeline_overhead`` = (pipeline - bare) / bare (goal: under 0.10); ``same_outputs`` is 1
  when every row's text and token count equals the bare call's, else 0.

- ``cpu_auto_vs_nf4``: new tokens per second of the ``auto`` precision over nf4, the bundled
  model on the first 8 prompts in one batch of 8 (each loaded fresh, warmed up, then the better
  of two timed calls); ``cpu_auto_tps_b8`` / ``cpu_nf4_tps_b8`` are the two rates and
  ``cpu_auto_is_nf4`` is 1 where ``auto`` chose nf4 on this CPU (the ratio is then about 1).
  Goal: at least 1 everywhere, at least 2 on a CPU without AVX512-BF16.

CUDA (only when a CUDA device is visible): a Llama-2-7B-shaped model (hidden 4096, 32 layers,
32 heads, intermediate 11008, vocabulary 32000) initialised at random in bf16 on the GPU, then
the same weights quantised in place to nf4. Every row of every batch generates exactly 128
tokens after a 256-token random prompt (no EOS, ``min_new_tokens = max_new_tokens``);
transformers' own ``generate`` with its default dynamic cache and sdpa attention, no compile.

- ``cuda_<q>_tps_b<B>`` for q in bf16/nf4 and B in 1/16/64: decoding tokens per second,
  ``B * 127 / (t(128 tokens) - t(1 token))``, so the prefill is left out;
  ``cuda_<q>_e2e_tps_b<B>``: ``B * 128 / t(128 tokens)``, prefill included.
- ``cuda_<q>_max_mem_gb_b<B>``: ``torch.cuda.max_memory_allocated`` over that configuration.
- ``cuda_<q>_weight_gb``: bytes of weights read per decoding step, from the parameters' actual
  storage plus bitsandbytes' quantisation statistics; the input embedding is left out (a step
  gathers B of its rows, it does not read it whole); the KV cache is not counted.
- ``cuda_peak_bandwidth_tb_s``: the card's nominal memory bandwidth by its name (H100 SXM 3.35,
  H100 PCIe 2.0, H100 NVL 3.9, H200 4.8, A100 80GB 2.0), null for another card;
  ``cuda_<q>_bound_tps_b1`` = bandwidth / weight bytes, the batch-1 decoding ceiling, and
  ``cuda_<q>_bound_fraction_b1`` the achieved share of it (both null without a bandwidth).

nf4 is made by quantising the bf16 model in place rather than saving 13.5 GB and reloading it
with ``BitsAndBytesConfig``: it takes seconds instead of a minute of rented GPU time and yields
the same model. It does what transformers' loader does (``replace_with_bnb_linear`` and
``Bnb4bitQuantize``): every ``nn.Linear`` but ``lm_head`` becomes a ``bnb.nn.Linear4bit`` with
nf4, double quantisation, bf16 compute and uint8 storage, quantised from the bf16 weight; on a
small Llama the packed weights and statistics are byte-identical to a ``from_pretrained`` load
with the ``HFBackend`` nf4 config. The CUDA part stops starting new configurations after
``CUDA_BUDGET_SECONDS`` and reports what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tests.perf.machine import describe_machine

if TYPE_CHECKING:
    import torch

    from explanations.llm import Completion, DecodingParams, Messages
    from explanations.llm.hf import HFBackend
    from explanations.models import GenerationRun
    from recommendations.importers import ParsedDataset

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 20_240_701
Figures = dict[str, float | None]
T = TypeVar("T")

# --- the CPU parts -----------------------------------------------------------------------------

BATCH = 16
MAX_NEW_TOKENS = 64
WARM_UP_TOKENS = 8
PIPELINE_REPEATS = 3
GOAL_BATCH_SPEEDUP = 4.0
GOAL_PIPELINE_OVERHEAD = 0.10

N_MOVIES = 160
N_USERS = 40
MIN_PER_USER, MAX_PER_USER = 8, 30
STAR_WEIGHTS = [0.06, 0.11, 0.27, 0.34, 0.22]
GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
TITLE_WORDS = [
    "Night", "City", "Love", "Return", "Dark", "Last", "Story", "Man", "Woman", "Dead", "Blue", "Summer",
    "King", "Secret", "River", "House", "War", "Dream", "Star", "Ghost", "Heart", "Road", "Island", "Winter",
    "Fire", "Shadow", "Journey", "Empire", "Garden", "Stranger", "Midnight", "Brothers", "Hunter", "Silence",
]  # fmt: skip
OCCUPATIONS = [
    "student", "engineer", "writer", "educator", "programmer", "librarian", "artist", "doctor", "retired",
    "technician", "scientist", "administrator", "lawyer", "marketing", "healthcare", "homemaker",
]  # fmt: skip

# --- the CUDA part ------------------------------------------------------------------------------

CUDA_BATCHES = (1, 16, 64)
CUDA_PROMPT_TOKENS = 256
CUDA_NEW_TOKENS = 128
CUDA_BUDGET_SECONDS = 300.0


@dataclass(frozen=True)
class LlamaShape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int


LLAMA2_7B = LlamaShape(hidden=4096, layers=32, heads=32, intermediate=11008, vocab=32000)


def log(message: str) -> None:
    print(f"[bench_generate] {message}", flush=True)


def timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def rounded(figures: Figures) -> Figures:
    return {key: None if value is None else round(value, 4) for key, value in figures.items()}


# --- set-up: Django, the bundled model, a dataset, a recommender run, generation runs ----------


def bundled_target() -> Path:
    from explanations.llm.bundled import BUNDLED_FOLDER

    base = os.environ.get("XREC_MODEL_DIR")
    return ((Path(base) if base else REPO_ROOT / "var" / "models") / BUNDLED_FOLDER).resolve()


def django_setup(work: Path) -> None:
    """Django on a fresh SQLite file and filesystem broker under ``work``; must run before any model import."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrec_site.settings")
    os.environ["XREC_VAR_DIR"] = str(work / "var")
    # Recommender runs pickle their model under XREC_MODEL_DIR: keep them out of the user's folder.
    os.environ["XREC_MODEL_DIR"] = str(work / "models")
    os.environ.pop("DATABASE_URL", None)
    # generation_run_start enqueues chunk tasks; on the filesystem broker, with no worker, they only
    # sit in the throwaway folder, while the benchmark calls the chunk service itself.
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def synthetic_movies(*, seed: int = SEED) -> ParsedDataset:
    """A MovieLens-like dataset: titled movies with genres and years, profiled users, dated ratings."""
    from recommendations.importers import ParsedDataset

    rng = random.Random(seed)
    parsed = ParsedDataset(format="csv", source="bench_generate (synthetic)", domain="movies")
    for movie in range(N_MOVIES):
        year = rng.randint(1950, 1998)
        words = " ".join(rng.choice(TITLE_WORDS) for _ in range(rng.choice([1, 2, 2, 3, 3, 4, 5])))
        title = f"{'The ' if rng.random() < 0.2 else ''}{words} ({year})"
        genres = rng.sample(GENRES, rng.choice([1, 1, 2, 2, 3]))
        parsed.items[str(movie)] = (title, {"genres": genres, "year": year})
    for user in range(N_USERS):
        parsed.users[str(user)] = {
            "age": rng.randint(18, 65),
            "gender": rng.choice("MF"),
            "occupation": rng.choice(OCCUPATIONS),
        }
    clock = 880_000_000
    for user in range(N_USERS):
        for movie in rng.sample(range(N_MOVIES), rng.randint(MIN_PER_USER, MAX_PER_USER)):
            clock += rng.randint(60, 86_400)
            stars = float(rng.choices(range(1, 6), weights=STAR_WEIGHTS)[0])
            parsed.interactions.append((str(user), str(movie), stars, clock))
    return parsed


def generation_runs_prepare(folder: Path, count: int) -> tuple[GenerationRun, list[GenerationRun]]:
    """A warm-up run and ``count`` identical runs of 16 explanations in one chunk each, all PENDING.

    The warm-up run's generator stops at 8 new tokens; both generators name the same model, so
    they share one loaded backend.
    """
    from explanations.models import Generator, PromptTemplate
    from explanations.services.generation import generation_run_start
    from explanations.services.generators import prompt_templates_ensure_builtin
    from recommendations.models import RecommenderRun
    from recommendations.services import dataset_import
    from recommendations.services.training import recommender_run_create, recommender_run_execute

    dataset, seconds = timed(lambda: dataset_import(parsed=synthetic_movies(), name="bench-generate"))
    log(
        f"imported {dataset.n_users} users, {dataset.n_items} movies, {dataset.n_interactions} ratings in {seconds:.1f} s"
    )
    recommender = recommender_run_create(
        created_by=None, dataset=dataset, algorithm="SVD", hyperparameters={"n_factors": 8}, seed=0, k=5
    )
    _, seconds = timed(lambda: recommender_run_execute(run_id=recommender.pk))
    recommender.refresh_from_db()
    assert recommender.status == RecommenderRun.Status.SUCCEEDED, recommender.error
    log(f"trained SVD and ranked top-{recommender.k} in {seconds:.1f} s")

    prompt_templates_ensure_builtin()
    template = PromptTemplate.objects.filter(name="xrec-default").order_by("-version").first()
    assert template is not None

    def start(max_new_tokens: int) -> GenerationRun:
        generator, _ = Generator.objects.get_or_create(
            name=f"bench-smollm2-nf4-{max_new_tokens}",
            defaults={
                "backend": Generator.Backend.HF,
                "model": str(folder),
                "quantization": Generator.Quantization.NF4,
                "max_new_tokens": max_new_tokens,
            },
        )
        run = generation_run_start(
            created_by=None,
            recommender_run=recommender,
            generator=generator,
            template=template,
            depth=1,
            sample="first",
            sample_size=BATCH,
            chunk_size=BATCH,
        )
        assert run.n_total == BATCH, run.n_total
        return run

    return start(WARM_UP_TOKENS), [start(MAX_NEW_TOKENS) for _ in range(count)]


def run_prompts(run: GenerationRun) -> list[Messages]:
    """The messages ``generation_chunk_run`` will send for ``run``, rendered the way it renders them."""
    from explanations.models import Explanation
    from explanations.prompts import Controls
    from explanations.services.generators import prompt_preview

    controls = Controls(**run.controls() | {"aspects": tuple(run.aspects)})
    rows = Explanation.objects.filter(generation_run=run).select_related("recommendation__run").order_by("id")
    return [prompt_preview(recommendation=row.recommendation, template=run.template, controls=controls) for row in rows]


def stored_outputs(run: GenerationRun) -> tuple[list[Messages], list[tuple[str, int]]]:
    """The stored prompts and (text, completion tokens) of a finished run, in row order."""
    from explanations.models import Explanation

    rows = list(Explanation.objects.filter(generation_run=run).order_by("id"))
    failed = [row for row in rows if row.status != Explanation.Status.DONE]
    if failed:
        raise RuntimeError(f"generation run #{run.pk}: {len(failed)} rows not done: {failed[0].error}")
    return [row.prompt for row in rows], [(row.text, row.completion_tokens or 0) for row in rows]


# --- measurements ------------------------------------------------------------------------------


def batching_figures(backend: HFBackend, prompts: Sequence[Messages], params: DecodingParams) -> Figures:
    log(f"warm-up ({WARM_UP_TOKENS} tokens at batch 1 and {len(prompts)})")
    short = replace(params, max_new_tokens=WARM_UP_TOKENS)
    backend.generate(prompts[:1], short)
    backend.generate(prompts, short)

    def one_at_a_time() -> list[Completion]:
        completions = []
        for index, prompt in enumerate(prompts, 1):
            completions += backend.generate([prompt], params)
            if index % 4 == 0:
                log(f"batch 1: {index}/{len(prompts)} prompts done")
        return completions

    singles, single_seconds = timed(one_at_a_time)
    batched, batch_seconds = timed(lambda: backend.generate(prompts, params))
    figures: Figures = {}
    rates: dict[str, float] = {}
    for label, completions, seconds in (("batch1", singles, single_seconds), ("batch16", batched, batch_seconds)):
        tokens = sum(completion.completion_tokens for completion in completions)
        stopped = sum(completion.finish_reason == "stop" for completion in completions)
        rates[label] = len(completions) / seconds
        figures[f"explanations_per_second_{label}"] = rates[label]
        figures[f"tokens_per_second_{label}"] = tokens / seconds
        log(
            f"{label}: {seconds:.2f} s, {tokens} completion tokens, {stopped}/{len(completions)} stopped before "
            f"{params.max_new_tokens}; {rates[label]:.2f} explanations/s, {tokens / seconds:.1f} tokens/s"
        )
    lengths = [completion.prompt_tokens for completion in batched]
    log(
        f"prompt tokens {min(lengths)}-{max(lengths)} (mean {statistics.mean(lengths):.0f}): batch 16 pads to the longest"
    )
    figures["batch16_vs_batch1"] = rates["batch16"] / rates["batch1"]
    matching = sum(one.text == many.text for one, many in zip(singles, batched, strict=True))
    figures["batch16_outputs_matching_batch1"] = matching
    log(f"batch 16 vs batch 1: {rates['batch16'] / rates['batch1']:.2f}x; {matching}/{len(prompts)} texts identical")
    return figures


def bare_generate(
    backend: HFBackend, prompts: Sequence[Messages], params: DecodingParams
) -> tuple[list[tuple[str, int]], float]:
    """``model.generate`` alone on ``prompts``: same model, template, left padding and greedy decoding.

    Only the ``generate`` call is timed; the (text, completion tokens) pairs are cut at the first
    stop token and decoded as ``HFBackend`` does, so they compare with stored rows.
    """
    import torch

    assert params.temperature == 0, "the bare baseline decodes greedily"
    tokenizer, model = backend.tokenizer, backend.model
    batch = tokenizer.apply_chat_template(
        [list(messages) for messages in prompts],
        add_generation_prompt=True,
        tokenize=True,
        padding=True,
        return_tensors="pt",
        return_dict=True,
    ).to(backend.device)
    stop = sorted(backend.stop_token_ids)
    started = time.perf_counter()
    with torch.inference_mode():
        sequences = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            num_beams=1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=stop,
            pad_token_id=tokenizer.pad_token_id,
        )
    if backend.device.type == "cuda":
        torch.cuda.synchronize(backend.device)
    seconds = time.perf_counter() - started
    outputs = []
    for row in sequences[:, batch["input_ids"].shape[1] :].tolist():
        end = next((index for index, token in enumerate(row) if token in backend.stop_token_ids), None)
        tokens, count = (row, len(row)) if end is None else (row[:end], end + 1)
        outputs.append((tokenizer.decode(tokens, skip_special_tokens=True).strip(), count))
    return outputs, seconds


def pipeline_figures(
    backend: HFBackend,
    rendered: Sequence[Messages],
    warm_up: GenerationRun,
    runs: Sequence[GenerationRun],
    params: DecodingParams,
) -> Figures:
    from explanations.services.generation import generation_chunk_run

    log(f"pipeline warm-up: one chunk of {WARM_UP_TOKENS} tokens, then the bare call once")
    generation_chunk_run(run_id=warm_up.pk, chunk=0)
    prompts, _ = stored_outputs(warm_up)
    assert prompts == list(rendered), "the chunk service sent other prompts than prompt_preview renders"
    bare_generate(backend, prompts, replace(params, max_new_tokens=WARM_UP_TOKENS))

    pipeline_seconds: list[float] = []
    bare_seconds: list[float] = []
    same = True
    for index, run in enumerate(runs):
        chunk = partial(generation_chunk_run, run_id=run.pk, chunk=0)
        # Alternated, so that a machine that slows down or speeds up over the run favours neither.
        if index % 2 == 0:
            _, pipeline = timed(chunk)
            bare, seconds = bare_generate(backend, prompts, params)
        else:
            bare, seconds = bare_generate(backend, prompts, params)
            _, pipeline = timed(chunk)
        pipeline_seconds.append(pipeline)
        bare_seconds.append(seconds)
        stored_prompts, outputs = stored_outputs(run)
        assert stored_prompts == prompts, "runs with equal settings rendered different prompts"
        differing = sum(mine != theirs for mine, theirs in zip(outputs, bare, strict=True))
        same = same and not differing
        log(
            f"repeat {index + 1}: pipeline {pipeline:.2f} s, bare generate {seconds:.2f} s, "
            f"{differing}/{len(outputs)} outputs differ"
        )
    pipeline_median, bare_median = statistics.median(pipeline_seconds), statistics.median(bare_seconds)
    figures: Figures = {
        "pipeline_seconds": pipeline_median,
        "bare_generate_seconds": bare_median,
        "pipeline_overhead": (pipeline_median - bare_median) / bare_median,
        "same_outputs": 1 if same else 0,
    }
    log(
        f"pipeline overhead {figures['pipeline_overhead']:+.3f} (medians {pipeline_median:.2f} s vs {bare_median:.2f} s)"
    )
    return figures


def cpu_figures(*, precision_only: bool = False, pipeline_only: bool = False) -> Figures:
    """The CPU parts in this process, on a throwaway database that is removed afterwards
    (``precision_only``: the ``auto`` vs nf4 figures alone; ``pipeline_only``: the chunk
    service against the bare call alone, the figures a change to the job engine moves)."""
    target = bundled_target()
    work = Path(tempfile.mkdtemp(prefix="xrec-bench-generate-")).resolve()
    try:
        django_setup(work)
        import torch

        from explanations.llm import load_backend, unload_all
        from explanations.llm.bundled import prepare_bundled_model
        from explanations.llm.hf import HFBackend
        from explanations.services.generators import decoding_params, generator_spec

        folder, seconds = timed(lambda: prepare_bundled_model(target))
        log(f"bundled model ready in {folder} ({seconds:.1f} s)")
        warm_up, runs = generation_runs_prepare(folder, PIPELINE_REPEATS)
        first = runs[0]
        prompts = run_prompts(first)
        params = decoding_params(first.generator, seed=first.seed, max_words=first.max_words)
        assert params.max_new_tokens == MAX_NEW_TOKENS and params.temperature == 0, params
        # The spec the chunk service asks for, so that it finds this very model already loaded.
        backend, seconds = timed(lambda: load_backend(generator_spec(first.generator)))
        assert isinstance(backend, HFBackend), backend
        assert load_backend(generator_spec(warm_up.generator)) is backend
        log(
            f"loaded {backend.spec.quantization} on {backend.device} in {seconds:.1f} s; {torch.get_num_threads()} threads"
        )
        figures: Figures = {}
        try:
            if not precision_only and not pipeline_only:
                figures |= batching_figures(backend, prompts, params)
            if not precision_only:
                figures |= pipeline_figures(backend, prompts, warm_up, runs, params)
        finally:
            unload_all()
        if not pipeline_only:
            figures |= precision_figures(folder, prompts[:8], params)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def precision_figures(folder: Path, prompts: Sequence[Messages], params: DecodingParams) -> Figures:
    """New tokens per second at batch 8, ``auto`` against nf4, both loaded fresh here."""
    from explanations.llm import BackendSpec
    from explanations.llm.hf import HFBackend

    rates: dict[str, float] = {}
    chosen = ""
    for quantization in ("nf4", "auto"):
        backend = HFBackend(BackendSpec(kind="hf", model=str(folder), quantization=quantization))
        try:
            backend.generate(prompts, replace(params, max_new_tokens=WARM_UP_TOKENS))
            best = 0.0
            for _ in range(2):
                completions, seconds = timed(partial(backend.generate, prompts, params))
                best = max(best, sum(completion.completion_tokens for completion in completions) / seconds)
            rates[quantization] = best
            if quantization == "auto":
                chosen = backend.quantization
            log(f"{quantization} ({backend.precision}): {best:.1f} new tokens/s at batch {len(prompts)}")
        finally:
            backend.close()
    return {
        "cpu_nf4_tps_b8": rates["nf4"],
        "cpu_auto_tps_b8": rates["auto"],
        "cpu_auto_vs_nf4": rates["auto"] / rates["nf4"],
        "cpu_auto_is_nf4": float(chosen == "nf4"),
    }


def cpu_figures_in_child(*, precision_only: bool = False, pipeline_only: bool = False) -> Figures:
    """The CPU parts in a ``--cpu-only`` child, which hides the GPU from itself, so they run on the CPU."""
    log("running the CPU parts in a child process that cannot see the GPU")
    command = [sys.executable, "-m", "tests.perf.bench_generate", "--cpu-only"]
    if precision_only:
        command.append("--precision-only")
    if pipeline_only:
        command.append("--pipeline-only")
    held = ""
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        # Everything is passed through but the child's own JSON line, which is kept for parsing.
        for line in child.stdout:
            if held:
                print(held, end="", flush=True)
            held = line
    if child.returncode:
        if held:
            print(held, end="", flush=True)
        raise SystemExit(f"the CPU parts failed (exit status {child.returncode})")
    figures: Figures = json.loads(held)["figures"]
    log(f"cpu figures: {json.dumps(figures)}")
    return figures


# --- the CUDA part -----------------------------------------------------------------------------


def peak_bandwidth(device_name: str) -> float | None:
    """Nominal memory bandwidth in bytes per second for the cards we rent, else None."""
    name = device_name.upper()
    if "GH200" in name:
        return None  # HBM3 and HBM3e variants differ; the name does not say which
    if "H200" in name:
        return 4.8e12
    if "H100" in name:
        if "PCIE" in name:
            return 2.0e12
        if "NVL" in name:
            return 3.9e12
        return 3.35e12  # SXM, named "H100 80GB HBM3"
    if "A100" in name and "80GB" in name:
        return 2.0e12
    return None


def nf4_quantize_(model: torch.nn.Module) -> None:
    """Replace every ``nn.Linear`` but ``lm_head`` by an nf4 ``Linear4bit``, as transformers' loader does."""
    import bitsandbytes as bnb
    import torch

    names = [name for name, module in model.named_modules() if type(module) is torch.nn.Linear and name != "lm_head"]
    for name in names:
        linear = model.get_submodule(name)
        assert isinstance(linear, torch.nn.Linear)
        with torch.device("meta"):
            quantized = bnb.nn.Linear4bit(
                linear.in_features,
                linear.out_features,
                linear.bias is not None,
                torch.bfloat16,
                compress_statistics=True,
                quant_type="nf4",
                quant_storage=torch.uint8,
            )
        quantized.requires_grad_(False)
        weight = linear.weight.data
        unquantized: Any = bnb.nn.Params4bit(weight, requires_grad=False, **quantized.weight.__dict__)
        # Moving a not-yet-quantised Params4bit to a device quantises it there.
        quantized.weight = unquantized.to(weight.device)
        if linear.bias is not None:
            quantized.bias = linear.bias
        model.set_submodule(name, quantized)
        del linear, weight


def _weight_tensors(model: torch.nn.Module) -> Iterator[torch.Tensor]:
    import torch

    for parameter in model.parameters():
        yield parameter
        state = getattr(parameter, "quant_state", None)
        while state is not None:
            for attribute in ("absmax", "code", "offset"):
                value = getattr(state, attribute, None)
                if isinstance(value, torch.Tensor):
                    yield value
            state = getattr(state, "state2", None)  # double quantisation: the statistics' own


def weight_bytes(model: Any) -> tuple[int, int]:
    """(bytes a decoding step reads, all weight bytes): parameters as stored plus quantisation state."""
    embedding = model.get_input_embeddings().weight
    seen: set[int] = set()
    total = streamed = 0
    for tensor in _weight_tensors(model):
        if tensor.numel() == 0 or tensor.data_ptr() in seen:
            continue  # tied or shared tensors are read once
        seen.add(tensor.data_ptr())
        size = tensor.numel() * tensor.element_size()
        total += size
        if tensor.data_ptr() != embedding.data_ptr():
            streamed += size
    return streamed, total


def _synchronize(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release(device: torch.device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def decoding_speed(model: Any, prompts: torch.Tensor, new_tokens: int) -> tuple[float, float, float | None]:
    """(decoding tokens/s without the prefill, tokens/s with it, peak GB) for one batch, after a warm-up."""
    import torch
    from transformers import GenerationConfig

    device = prompts.device
    attention_mask = torch.ones_like(prompts)

    def generate(count: int) -> float:
        config = GenerationConfig(
            max_new_tokens=count, min_new_tokens=count, do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=0
        )
        _synchronize(device)
        started = time.perf_counter()
        with torch.inference_mode():
            sequences = model.generate(input_ids=prompts, attention_mask=attention_mask, generation_config=config)
        _synchronize(device)
        seconds = time.perf_counter() - started
        if sequences.shape[1] != prompts.shape[1] + count:
            raise RuntimeError(f"asked for {count} new tokens, got {sequences.shape[1] - prompts.shape[1]}")
        return seconds

    _release(device)
    generate(new_tokens)  # warm-up: kernels, cuBLAS handles, allocator blocks of every size
    prefill = generate(1)
    full = generate(new_tokens)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    batch = prompts.shape[0]
    return batch * (new_tokens - 1) / (full - prefill), batch * new_tokens / full, peak


def cuda_figures(
    *,
    shape: LlamaShape = LLAMA2_7B,
    batches: Sequence[int] = CUDA_BATCHES,
    prompt_tokens: int = CUDA_PROMPT_TOKENS,
    new_tokens: int = CUDA_NEW_TOKENS,
    budget_seconds: float = CUDA_BUDGET_SECONDS,
    device_name: str = "cuda",
) -> Figures:
    """bf16 and nf4 decoding speed of a random model of ``shape`` next to the memory-bandwidth bound.

    ``device_name`` other than ``"cuda"`` (``"cpu"``) only rehearses the code path on a small shape.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    device = torch.device(device_name, 0) if device_name == "cuda" else torch.device(device_name)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    bandwidth = peak_bandwidth(card)
    started = time.perf_counter()
    config = LlamaConfig(
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        intermediate_size=shape.intermediate,
        vocab_size=shape.vocab,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(SEED)
    # Built directly on the device: a 7B random init on the CPU alone would take minutes.
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.to(device)  # a no-op when the device context placed it, as it should
    model.eval()
    # Without an EOS nothing can end a row early, so every row generates exactly the asked count.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    parameters = sum(parameter.numel() for parameter in model.parameters())
    log(
        f"{card}: random {parameters / 1e9:.2f}B-parameter Llama in bf16 built in {time.perf_counter() - started:.1f} s"
    )
    generator = torch.Generator().manual_seed(SEED)
    # Ids from 3 up: clear of the pad, BOS and EOS ids.
    prompts = torch.randint(3, shape.vocab, (max(batches), prompt_tokens), generator=generator).to(device)

    figures: Figures = {"cuda_peak_bandwidth_tb_s": None if bandwidth is None else bandwidth / 1e12}
    for quantization in ("bf16", "nf4"):
        if quantization == "nf4":
            quantizing = time.perf_counter()
            nf4_quantize_(model)
            _release(device)
            log(f"quantised in place to nf4 in {time.perf_counter() - quantizing:.1f} s")
        streamed, total = weight_bytes(model)
        figures[f"cuda_{quantization}_weight_gb"] = streamed / 1e9
        log(f"{quantization}: {total / 1e9:.2f} GB of weights, {streamed / 1e9:.2f} GB read per decoding step")
        for batch in batches:
            if time.perf_counter() - started > budget_seconds:
                log(f"{quantization} batch {batch}: skipped, past the {budget_seconds:.0f} s budget")
                continue
            decoding, end_to_end, peak = decoding_speed(model, prompts[:batch], new_tokens)
            figures[f"cuda_{quantization}_tps_b{batch}"] = decoding
            figures[f"cuda_{quantization}_e2e_tps_b{batch}"] = end_to_end
            figures[f"cuda_{quantization}_max_mem_gb_b{batch}"] = peak
            log(
                f"{quantization} batch {batch}: {decoding:.1f} decoding tokens/s ({end_to_end:.1f} with the prefill), "
                f"peak {'-' if peak is None else f'{peak:.2f}'} GB; {time.perf_counter() - started:.0f} s so far"
            )
        achieved = figures.get(f"cuda_{quantization}_tps_b1")
        figures[f"cuda_{quantization}_bound_tps_b1"] = figures[f"cuda_{quantization}_bound_fraction_b1"] = None
        if bandwidth is not None:
            bound = bandwidth / streamed
            figures[f"cuda_{quantization}_bound_tps_b1"] = bound
            figures[f"cuda_{quantization}_bound_fraction_b1"] = None if achieved is None else achieved / bound
            log(f"{quantization}: batch-1 bandwidth bound {bound:.0f} tokens/s at {bandwidth / 1e12:.2f} TB/s")
    del model, prompts
    _release(device)
    log(f"cuda part: {time.perf_counter() - started:.0f} s")
    return figures


# --- the benchmark -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--cpu-only", action="store_true", help="skip the CUDA part (the GPU is hidden)")
    only.add_argument("--cuda-only", action="store_true", help="skip the CPU parts")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--precision-only", action="store_true", help="of the CPU parts, measure only auto against nf4")
    parts.add_argument(
        "--pipeline-only",
        action="store_true",
        help="of the CPU parts, measure only the chunk service against bare generate",
    )
    args = parser.parse_args()
    # Nothing may be fetched: the GPU machines have no internet, and a hub lookup would only stall.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.cpu_only:
        # Read when CUDA initialises, which has not happened yet: HFBackend then picks the CPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    started = time.perf_counter()
    machine = describe_machine()
    import torch

    cuda = torch.cuda.is_available()
    log(f"machine: {machine}; torch {torch.__version__}, CUDA {'visible' if cuda else 'not visible'}")
    if args.cuda_only and not cuda:
        raise SystemExit("--cuda-only: no CUDA device is visible")

    figures: Figures = {}
    # The CUDA part first: on a rented GPU it is the scarce measurement.
    if cuda and not args.cpu_only:
        figures |= cuda_figures()
        log(f"cuda figures: {json.dumps(rounded(figures))}")
    if not args.cuda_only:
        chosen = {"precision_only": args.precision_only, "pipeline_only": args.pipeline_only}
        figures |= cpu_figures_in_child(**chosen) if cuda else cpu_figures(**chosen)
    log(f"total {time.perf_counter() - started:.1f} s")

    if "batch16_vs_batch1" in figures:
        speedup = figures["batch16_vs_batch1"]
        assert speedup is not None
        log(
            f"goal batch 16 at least {GOAL_BATCH_SPEEDUP:.0f}x batch 1: {'met' if speedup >= GOAL_BATCH_SPEEDUP else 'NOT met'}"
        )
    if "pipeline_overhead" in figures:
        overhead = figures["pipeline_overhead"]
        assert overhead is not None
        log(
            f"goal pipeline overhead under {GOAL_PIPELINE_OVERHEAD:.0%}: {'met' if overhead < GOAL_PIPELINE_OVERHEAD else 'NOT met'}"
        )
    print(json.dumps({"bench": "generate", "figures": rounded(figures), "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
