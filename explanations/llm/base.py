"""The interface every LLM backend implements, and the values that cross it.

Kept free of Django and torch so that web processes can build specs and read results without
loading a model stack; only the ``hf`` backend imports torch, and only when it is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Messages = list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": "..."}]


@dataclass(frozen=True)
class DecodingParams:
    """How to decode; recorded with every generation run so that it can be repeated.

    ``temperature == 0`` means greedy decoding (``top_p`` and ``seed`` then change nothing on
    the ``hf`` backend). Backends apply exactly these knobs: a model's own generation defaults
    (top-k, repetition penalty) are switched off so the record is the whole truth.
    """

    max_new_tokens: int = 120
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.0  # 1 = off; small models loop without it


@dataclass(frozen=True)
class Completion:
    """One prompt's answer.

    ``finish_reason`` is ``"stop"`` when the model ended it (EOS or a stop token) and
    ``"length"`` when it hit ``max_new_tokens``; an OpenAI-compatible server may report others,
    which are passed through unchanged.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class BackendSpec:
    """Everything needed to build a backend; equal specs share one loaded backend per process."""

    kind: str  # "hf" | "openai"
    model: str  # hf: a local model directory; openai: the model name
    quantization: str = "auto"  # hf: "auto" | "nf4" | "int8" | "none" (see llm.precision)
    adapter: str = ""  # hf: a peft LoRA adapter directory, or ""
    base_url: str = ""  # openai
    api_key: str = field(default="", repr=False)  # openai; out of repr, so logs never show it
    timeout_seconds: float = 60.0
    max_retries: int = 3
    concurrency: int = 8  # openai: requests in flight for one batch


class BackendError(Exception):
    """A backend that cannot serve: unreachable, a bad answer, a missing or unusable model.

    The message says what failed and where (the URL or the model directory), so it can be shown
    to a researcher as the reason a generation run failed.
    """


class Backend(Protocol):
    spec: BackendSpec
    # What the model actually runs in, for lineage: "float32 on cpu", "nf4 (bfloat16 compute) on cuda".
    precision: str

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        """One completion per prompt, in the order of ``prompts``."""
        ...

    def close(self) -> None:
        """Release the model or connections; the backend is unusable afterwards."""
        ...
