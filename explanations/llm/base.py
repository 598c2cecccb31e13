"""The interface every LLM backend implements, and the values that cross it.

Kept free of Django and torch so that web processes can build specs and read results without
loading a model stack; only the ``hf`` backend imports torch, and only when it is loaded.
"""

from __future__ import annotations

import math
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
class OptionScores:
    """One prompt's closed question answered by likelihood.

    ``logprobs[i]`` is the summed log-probability of ``options[i]``'s tokens right after the
    prompt's generation prompt and the answer prefix; ``probabilities`` is the softmax over
    ``logprobs``, so it sums to 1 over the options offered (it is a distribution over the
    options, not over everything the model could have said).
    """

    options: tuple[str, ...]
    logprobs: tuple[float, ...]
    probabilities: tuple[float, ...]

    @classmethod
    def from_logprobs(cls, options: Sequence[str], logprobs: Sequence[float]) -> OptionScores:
        if not options or len(options) != len(logprobs):
            raise ValueError("one log-probability per option, and at least one option")
        top = max(logprobs)
        weights = [math.exp(value - top) for value in logprobs]
        total = sum(weights)
        return cls(tuple(options), tuple(float(v) for v in logprobs), tuple(w / total for w in weights))

    @property
    def best(self) -> int:
        """The index of the most likely option (the first one on a tie)."""
        return max(range(len(self.options)), key=lambda index: (self.probabilities[index], -index))


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


class ScoringUnavailable(BackendError):
    """The backend cannot score options: an OpenAI-compatible server that returns no
    log-probabilities. Callers fall back to generating text and parsing it."""


class Backend(Protocol):
    spec: BackendSpec
    # What the model actually runs in, for lineage: "float32 on cpu", "nf4 (bfloat16 compute) on cuda".
    precision: str

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        """One completion per prompt, in the order of ``prompts``."""
        ...

    def score(
        self, prompts: Sequence[Messages], prefixes: Sequence[str], options: Sequence[Sequence[str]]
    ) -> list[OptionScores]:
        """For each prompt, how likely each of its options is as the answer's continuation.

        The answer is the chat template's generation prompt, then ``prefixes[i]`` (e.g.
        ``"Winner:"``), then the option text exactly as given (so options usually start with a
        space: ``" 1"``). One ``OptionScores`` per prompt, in order, options in the order given.
        Raises ``ScoringUnavailable`` when this backend cannot score at all.
        """
        ...

    def close(self) -> None:
        """Release the model or connections; the backend is unusable afterwards."""
        ...
