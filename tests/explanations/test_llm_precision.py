"""The ``auto`` precision: NF4 on CUDA and on CPUs with a fast 4-bit path, full precision on
other CPUs, and the precision actually used recorded on every run."""

from pathlib import Path

import pytest
from django.urls import reverse

from explanations.llm import BackendSpec
from explanations.llm import precision as precision_module
from explanations.llm.hf import HFBackend
from explanations.llm.precision import cpu_flags, cpu_has_fast_4bit, resolve_quantization
from explanations.models import AdapterTraining, Generator, JudgeRun
from explanations.services.adapters import adapter_training_run, adapter_training_start
from explanations.services.generation import generation_chunk_run, generation_run_start
from explanations.services.generators import generator_ensure_bundled
from explanations.services.judging import judge_chunk_run, judge_run_start
from tests.explanations.factories import template, tiny_generator, trained_run

AVX2_ONLY = frozenset({"avx", "avx2", "fma"})
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_bf16"}


@pytest.mark.parametrize(
    ("requested", "cuda", "flags", "expected"),
    [
        ("auto", True, AVX2_ONLY, "nf4"),  # GPU workers keep the 4-bit path
        ("auto", False, AVX512_BF16, "nf4"),  # bitsandbytes' fused CPU kernel exists
        ("auto", False, AVX2_ONLY, "none"),  # 4-bit is 3-4x slower than float32 here
        ("auto", False, frozenset(), "none"),  # unknown CPU: the safe, fast choice
        ("nf4", False, AVX2_ONLY, "nf4"),  # an explicit choice is kept
        ("int8", True, AVX2_ONLY, "int8"),
        ("none", True, AVX512_BF16, "none"),
    ],
)
def test_auto_resolves_per_device_and_explicit_choices_stay(requested, cuda, flags, expected) -> None:
    assert resolve_quantization(requested, cuda=cuda, flags=flags) == expected


def test_an_unknown_quantization_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quantization 'fp8'"):
        resolve_quantization("fp8", cuda=False, flags=AVX2_ONLY)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")

    assert cpu_flags(cpuinfo) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cpu_has_fast_4bit(cpu_flags(cpuinfo))
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.fixture
def slow_4bit_cpu(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda *args: AVX2_ONLY)


@pytest.fixture
def fast_4bit_cpu(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda *args: AVX512_BF16)


def test_auto_backend_loads_full_precision_on_a_slow_4bit_cpu(tiny_model_dir, slow_4bit_cpu) -> None:
    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model_dir), quantization="auto"))
    try:
        assert backend.quantization == "none" and backend.precision == "float32 on cpu"
        assert backend.model.dtype.__str__() == "torch.float32"
    finally:
        backend.close()


def test_auto_backend_loads_nf4_where_the_cpu_has_a_fast_4bit_path(tiny_model_dir, fast_4bit_cpu) -> None:
    import bitsandbytes as bnb

    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model_dir), quantization="auto"))
    try:
        assert backend.quantization == "nf4" and backend.precision == "nf4 (bfloat16 compute) on cpu"
        assert any(isinstance(module, bnb.nn.Linear4bit) for module in backend.model.modules())
    finally:
        backend.close()


@pytest.mark.django_db
def test_the_bundled_generator_defaults_to_auto() -> None:
    assert generator_ensure_bundled().quantization == Generator.Quantization.AUTO
    assert Generator._meta.get_field("quantization").default == Generator.Quantization.AUTO


@pytest.mark.django_db
def test_runs_record_the_precision_their_model_ran_in_and_show_it(
    tiny_model_dir, slow_4bit_cpu, client, researcher, django_capture_on_commit_callbacks
) -> None:
    from explanations.judging import default_rubric

    run = trained_run(n_users=6, k=2)
    generator = tiny_generator(tiny_model_dir, quantization="auto")
    runs = []
    for seed in (1, 2):
        with django_capture_on_commit_callbacks():
            generation = generation_run_start(
                created_by=None,
                recommender_run=run,
                generator=generator,
                template=template(),
                sample="first",  # the same users in both runs, so the judge has pairs
                sample_size=2,
                seed=seed,
            )
        generation_chunk_run(run_id=generation.pk, chunk=0)
        generation.refresh_from_db()
        runs.append(generation)
    assert runs[0].precision == "float32 on cpu"

    judge = judge_run_start(
        created_by=None, judge=generator, generation_runs=runs, rubric=default_rubric(), enqueue=False
    )
    judge_chunk_run(run_id=judge.pk, chunk=0)
    judge.refresh_from_db()
    assert judge.n_total == 4
    assert judge.status == JudgeRun.Status.SUCCEEDED and judge.precision == "float32 on cpu"

    client.force_login(researcher)
    page = client.get(reverse("explanations:run_detail", args=[runs[0].pk]))
    assert '<span id="run-precision">float32 on cpu</span>' in page.content.decode()


@pytest.mark.django_db
def test_a_job_run_in_two_precisions_records_both(tiny_model_dir) -> None:
    from explanations.services.chunks import precision_record

    run = trained_run(n_users=4, k=1)
    generation = generation_run_start(
        created_by=None,
        recommender_run=run,
        generator=tiny_generator(tiny_model_dir),
        template=template(),
        enqueue=False,
    )

    class Seen:
        def __init__(self, precision: str) -> None:
            self.precision = precision

    for precision in ("float32 on cpu", "nf4 (bfloat16 compute) on cuda", "float32 on cpu"):
        precision_record(generation, Seen(precision))  # type: ignore[arg-type]

    generation.refresh_from_db()
    assert generation.precision == "float32 on cpu; nf4 (bfloat16 compute) on cuda"


@pytest.mark.django_db
def test_auto_training_is_lora_on_a_float32_base_on_a_slow_4bit_cpu(tiny_model_dir, slow_4bit_cpu) -> None:
    run = trained_run(n_users=8, k=1)
    generator = tiny_generator(tiny_model_dir, quantization="auto")
    teacher = generation_run_start(
        created_by=None, recommender_run=run, generator=generator, template=template(), sample="all", enqueue=False
    )
    generation_chunk_run(run_id=teacher.pk, chunk=0)
    training = adapter_training_start(
        created_by=None,
        base_generator=generator,
        source_run=teacher,
        options={"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "max_length": 256},
        enqueue=False,
    )

    adapter_training_run(training_id=training.pk)

    training.refresh_from_db()
    assert training.status == AdapterTraining.Status.SUCCEEDED, training.error
    assert training.precision == "LoRA on a float32 base on cpu"
    record = (Path(training.adapter_path) / "xrec-training.json").read_text()
    assert '"quantization": "none"' in record
