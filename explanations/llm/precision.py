"""Which precision a local model runs in when its generator asks for ``auto``.

On CUDA the answer is always NF4 4-bit: that is what the GPU workers are for, and bitsandbytes'
CUDA kernels make 4-bit both smaller and fast. On a CPU, bitsandbytes has a fused 4-bit kernel
only for CPUs with AVX512-BF16; everywhere else it dequantises every layer in plain torch, which
measured 3-4x slower than float32 on a 2-core AMD EPYC without AVX-512 (SmolLM2-135M, 48 new
tokens: nf4 2.9 / 5.6 new tokens/s at batch 1 / 8, float32 8.1 / 22.2). So ``auto`` on a CPU is
NF4 only where that kernel exists and full precision otherwise.

Kept free of torch: the decision reads the CPU's feature flags, so a web process can show what a
worker on the same machine would pick without loading a model stack.
"""

from __future__ import annotations

import functools
from pathlib import Path

AUTO = "auto"
QUANTIZATIONS = ("nf4", "int8", "none")
# The flag Linux reports for AVX512-BF16 (bitsandbytes' fused CPU 4-bit matmul needs it).
FAST_4BIT_CPU_FLAG = "avx512_bf16"


@functools.cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags of the first processor in ``cpuinfo``; empty where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return frozenset(value.split())
    return frozenset()


def cpu_has_fast_4bit(flags: frozenset[str] | None = None) -> bool:
    """Whether bitsandbytes' 4-bit path is fast on this CPU (it has AVX512-BF16)."""
    return FAST_4BIT_CPU_FLAG in (cpu_flags() if flags is None else flags)


def resolve_quantization(requested: str, *, cuda: bool, flags: frozenset[str] | None = None) -> str:
    """The quantisation actually used for ``requested`` on this device: ``auto`` becomes ``nf4``
    on CUDA and on CPUs with a fast 4-bit path, and ``none`` (full precision) elsewhere; any other
    value is returned unchanged. Raises ValueError for an unknown value."""
    if requested == AUTO:
        return "nf4" if cuda or cpu_has_fast_4bit(flags) else "none"
    if requested not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {requested!r}; choose one of auto, {', '.join(QUANTIZATIONS)}")
    return requested


def describe(quantization: str, *, dtype: str, device: str) -> str:
    """What a run's lineage records, e.g. ``"nf4 (bfloat16 compute) on cuda"``."""
    if quantization == "nf4":
        return f"nf4 ({dtype} compute) on {device}"
    if quantization == "int8":
        return f"int8 ({dtype} activations) on {device}"
    return f"{dtype} on {device}"
