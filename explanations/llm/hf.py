"""A local transformers model, optionally quantised by bitsandbytes and extended by a LoRA adapter.

Quantisation (``BackendSpec.quantization``):

- ``auto``: ``nf4`` on CUDA and on CPUs with AVX512-BF16, ``none`` on other CPUs, where
  bitsandbytes' 4-bit path is 3-4x slower than float32 (``explanations.llm.precision``). The
  choice made is ``HFBackend.quantization``, and ``HFBackend.precision`` says it in words.
- ``nf4``: 4-bit NormalFloat with double quantisation; matrix products in bfloat16 on CUDA cards
  that support it and on CPUs (bitsandbytes has a fused bf16 kernel for CPUs with AVX512-BF16 and
  falls back to plain torch elsewhere), float16 on older cards.
- ``int8``: LLM.int8 (``load_in_8bit``). bitsandbytes casts activations to float16 for these
  layers, so the rest of the model is loaded in float16 too (on CPU as well, where it works but
  is slower than nf4).
- ``none``: full precision, float32 on CPU and bfloat16 (float16 on older cards) on CUDA.

The model runs on the first CUDA device when there is one and on the CPU otherwise. A batch is
one left-padded ``generate`` call. In full precision a prompt's answer does not depend on the
batch it is in. Quantised, it can: bitsandbytes multiplies in bf16/fp16 with one kernel for a
single row and another for a batch, and the rounding difference can flip a greedy choice (seen on
an H200 with nf4 and int8). Repeating a generation exactly means repeating its batches.

``score`` answers closed questions by likelihood: one forward pass over what a group of
consecutive questions has in common (a prompt and its answer prefix; a Likert judge's criteria
on one prompt; a pair's two orders up to the first explanation; a probe with and without the
explanation), whose KV cache is then shared by batched passes over the longest distinct
continuations the options need (none when every option is one token right after the shared
part), with vocabulary-wide logits only where an option token is scored.
Scores do not depend on the other prompts of a call.
"""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from .base import BackendError, BackendSpec, Completion, DecodingParams, Messages, OptionScores
from .precision import describe, resolve_quantization

# Continuations run from one shared prompt pass per batch of this many rows, each row holding a
# copy of the prompt's KV cache.
SCORE_ROWS = 32


class HFBackend:
    """A model loaded once and kept for every ``generate`` call until ``close``.

    ``stop_token_ids`` ends an answer: the model's EOS ids from its generation config and the
    tokenizer's EOS token. ``generate`` calls are serialised by a lock; one model is not meant to
    serve two threads at once.
    """

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
        try:
            self.quantization = resolve_quantization(spec.quantization, cuda=self.device.type == "cuda")
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        self.path = _model_dir(spec.model)
        self._lock = threading.Lock()
        self.tokenizer: Any = self._load_tokenizer()
        self.model: Any = self._load_model()
        if spec.adapter:
            self.model = self._load_adapter(self.model, _adapter_dir(spec.adapter))
        self.model.eval()
        self.precision = describe(
            self.quantization, dtype=str(self._compute_dtype()).removeprefix("torch."), device=self.device.type
        )
        self.stop_token_ids = _stop_token_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id)

    def _load_tokenizer(self) -> Any:
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load the tokenizer in {self.path}: {exc}") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise BackendError(f"the tokenizer in {self.path} has no chat template")
        # Left padding keeps every prompt's last token next to its first generated one.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise BackendError(f"the tokenizer in {self.path} has neither a pad nor an EOS token")
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def _half(self) -> torch.dtype:
        cuda = self.device.type == "cuda"
        return torch.bfloat16 if not cuda or torch.cuda.is_bf16_supported() else torch.float16

    def _compute_dtype(self) -> torch.dtype:
        if self.quantization == "nf4":
            return self._half()
        if self.quantization == "int8":
            return torch.float16
        return self._half() if self.device.type == "cuda" else torch.float32

    def _load_model(self) -> Any:
        options: dict[str, Any] = {"dtype": self._compute_dtype()}
        if self.quantization == "nf4":
            options["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=options["dtype"],
            )
        elif self.quantization == "int8":
            options["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if self.device.type == "cuda":
            options["device_map"] = {"": self.device.index}
        try:
            model = AutoModelForCausalLM.from_pretrained(self.path, **options)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise BackendError(
                f"cannot load the model in {self.path} ({self.quantization}, {self.device}): {exc}"
            ) from exc
        return model

    def _load_adapter(self, model: Any, adapter: Path) -> Any:
        from peft import PeftModel  # only a generator with an adapter needs peft

        try:
            return PeftModel.from_pretrained(model, adapter)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise BackendError(f"cannot load the LoRA adapter in {adapter} onto {self.path}: {exc}") from exc

    def generate(self, prompts: Sequence[Messages], params: DecodingParams) -> list[Completion]:
        """One completion per prompt, in order, from a single padded ``generate`` call.

        Seeded with ``params.seed`` before decoding, so the same batch and parameters give the
        same texts on the same hardware. ``prompt_tokens`` counts the prompt's chat-template
        tokens (padding excluded); ``completion_tokens`` counts generated tokens up to and
        including the first stop token.
        """
        if not prompts:
            return []
        with self._lock:
            if self.model is None:
                raise BackendError(f"the backend for {self.path} is closed")
            batch = self.tokenizer.apply_chat_template(
                [list(messages) for messages in prompts],
                add_generation_prompt=True,
                tokenize=True,
                padding=True,
                return_tensors="pt",
                return_dict=True,
            ).to(self.device)
            torch.manual_seed(params.seed)
            if self.device.type == "cuda":
                torch.cuda.manual_seed_all(params.seed)
            with torch.inference_mode():
                sequences = self.model.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    **self._decoding(params),
                )
            prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
            generated = sequences[:, batch["input_ids"].shape[1] :].tolist()
            return [self._completion(row, int(length)) for row, length in zip(generated, prompt_lengths, strict=True)]

    def score(
        self, prompts: Sequence[Messages], prefixes: Sequence[str], options: Sequence[Sequence[str]]
    ) -> list[OptionScores]:
        """Each option's summed token log-probability after the prompt and its prefix, and the
        softmax over a prompt's options (see ``Backend.score``).

        Options are tokenised together with the prompt and prefix, and an option's tokens are
        those where the tokenisation of prompt + prefix + option departs from that of prompt +
        prefix: when the option merges with the prefix's last characters into one token (BPE),
        that token is the option's, scored after the tokens the two still share. Consecutive
        questions share one pass over what they have in common wherever that runs fewer tokens
        than scoring them apart (a Likert judge's criteria, a pair judged in both orders, a probe
        with and without the explanation). Raises ``BackendError`` for an option that adds no token, and
        ``ValueError`` for mismatched arguments.
        """
        if not len(prompts) == len(prefixes) == len(options):
            raise ValueError("one prefix and one list of options per prompt")
        scores: list[OptionScores] = []
        with self._lock:
            if self.model is None:
                raise BackendError(f"the backend for {self.path} is closed")
            encoded = [
                self._encode(messages, prefix, list(choices))
                for messages, prefix, choices in zip(prompts, prefixes, options, strict=True)
            ]
            with torch.inference_mode():
                start = 0
                while start < len(encoded):
                    end, cost = start + 1, _tokens_run(encoded[start : start + 1])
                    # Group the next question in only where that runs fewer tokens than apart: a
                    # pair's two orders, yes; two explanations' Likert criteria, no (each would
                    # run its explanation and rubric once per criterion).
                    while end < len(encoded):
                        joined = _tokens_run(encoded[start : end + 1])
                        if joined > cost + _tokens_run(encoded[end : end + 1]):
                            break
                        end, cost = end + 1, joined
                    logprobs = self._score_group([rows for _, rows in encoded[start:end]])
                    scores += [
                        OptionScores.from_logprobs(list(options[index]), own)
                        for index, own in zip(range(start, end), logprobs, strict=True)
                    ]
                    start = end
        return scores

    def _ids(self, text: str) -> list[int]:
        # The chat template already wrote any BOS token: adding special tokens would double it.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode(
        self, messages: Messages, prefix: str, choices: list[str]
    ) -> tuple[list[int], list[tuple[list[int], int]]]:
        """The prompt + prefix ids, and per option the prompt + prefix + option ids with the
        position where the option's own tokens start."""
        if not choices:
            raise ValueError("a question needs at least one option")
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False) + prefix
        base = self._ids(text)
        rows = []
        for choice in choices:
            full = self._ids(text + choice)
            start = _common_length(base, full)
            if start >= len(full):
                raise BackendError(f"the option {choice!r} adds no token after {prefix!r}")
            rows.append((full, start))
        return base, rows

    def _score_group(self, questions: list[list[tuple[list[int], int]]]) -> list[list[float]]:
        """Per question, each option's log-probability (rows from ``_encode``): the tokens all
        rows share run once, and the longest distinct continuations the options need run in
        batches on copies of that pass's KV cache."""
        rows = [row for question in questions for row in question]
        reference = rows[0][0]
        shared, needed, longest = _plan(rows)
        if shared == 0:
            raise BackendError("an option changes the first token of the prompt")
        head = self.model(
            input_ids=torch.tensor([reference[:shared]], device=self.device), use_cache=True, logits_to_keep=1
        )
        after: dict[tuple[int, ...], Any] = {(): head.logits[0, -1].float().log_softmax(-1)}
        for batch in range(0, len(longest), SCORE_ROWS):
            chunk = longest[batch : batch + SCORE_ROWS]
            lengths = [[n for n in range(1, len(context) + 1) if context[:n] in needed] for context in chunk]
            first_position = min(min(n) for n in lengths) - 1
            logits = self._continue(head.cache, [list(context) for context in chunk], shared, first_position)
            for row, context in enumerate(chunk):
                for length in lengths[row]:
                    after[context[:length]] = logits[row, length - 1 - first_position].float().log_softmax(-1)
        return [
            [
                sum(float(after[tuple(full[shared:position])][full[position]]) for position in range(start, len(full)))
                for full, start in question
            ]
            for question in questions
        ]

    def _continue(self, cache: Any, tails: list[list[int]], shared: int, first_position: int) -> Any:
        """The logits after each tail position from ``first_position`` on (rows right-padded to
        the longest tail; index 0 is ``first_position``), every tail continuing the cached
        ``shared`` tokens. Positions before it are run but get no vocabulary-wide logits:
        a long continuation (an explanation, then the question) needs them only at its end."""
        width = max(len(tail) for tail in tails)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([tail + [pad] * (width - len(tail)) for tail in tails], device=self.device)
        # Right padding: a real token never attends to the padding after it, and positions
        # continue from the cache, so each row is scored as if it were alone.
        mask = torch.tensor(
            [[1] * (shared + len(tail)) + [0] * (width - len(tail)) for tail in tails], device=self.device
        )
        # The cache is repeated in place for the batch: each batch gets its own copy.
        rows = copy.deepcopy(cache)
        rows.batch_repeat_interleave(len(tails))
        output = self.model(
            input_ids=ids, attention_mask=mask, cache=rows, use_cache=False, logits_to_keep=width - first_position
        )
        return output.logits

    def _decoding(self, params: DecodingParams) -> dict[str, Any]:
        # Every knob is set here, so the model's own generation defaults (top-k 50, repetition
        # penalties, a sampling temperature) never change what the recorded params mean.
        options: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": sorted(self.stop_token_ids),
            "pad_token_id": self.tokenizer.pad_token_id,
            "repetition_penalty": params.repetition_penalty,
            "no_repeat_ngram_size": 0,
            "num_beams": 1,
        }
        if params.temperature == 0:
            options |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        else:
            options |= {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
        return options

    def _completion(self, row: list[int], prompt_tokens: int) -> Completion:
        # Rows that stop early are padded to the longest one; only the first stop token counts.
        end = next((index for index, token in enumerate(row) if token in self.stop_token_ids), None)
        if end is None:
            tokens, count, reason = row, len(row), "length"
        else:
            tokens, count, reason = row[:end], end + 1, "stop"
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=count, finish_reason=reason)

    def model_bytes(self) -> int:
        """Bytes the weights and buffers take (quantised sizes for nf4 and int8)."""
        if self.model is None:
            return 0
        return sum(t.numel() * t.element_size() for t in (*self.model.parameters(), *self.model.buffers()))

    def close(self) -> None:
        with self._lock:
            self.model = None
            self.tokenizer = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _plan(rows: list[tuple[list[int], int]]) -> tuple[int, set[tuple[int, ...]], list[tuple[int, ...]]]:
    """How a group of option rows (ids, option start) is scored: the tokens every row agrees on
    up to the earliest option token (run once), the contexts after which a distribution is
    needed, and the longest of them, which are the rows that run.

    A token's log-probability needs the distribution after the tokens before it. Options share
    those contexts (" 1" and " 10" both begin with " "; every scale point follows its criterion's
    prefix), so only the longest contexts run, each giving the distribution after every one of
    its prefixes: a Likert criterion of ten points is one row.
    """
    reference = rows[0][0]
    shared = min(min(start, _common_length(reference, full)) for full, start in rows)
    needed = {tuple(full[shared:position]) for full, start in rows for position in range(start, len(full))}
    ordered = sorted(needed)
    # Sorted, every context that extends another comes right after it: a context is longest
    # when the next one does not extend it.
    longest = [
        context
        for index, context in enumerate(ordered)
        if context and (index + 1 == len(ordered) or ordered[index + 1][: len(context)] != context)
    ]
    return shared, needed, longest


def _tokens_run(encoded: Sequence[tuple[list[int], list[tuple[list[int], int]]]]) -> int:
    """Tokens the model runs to score these questions as one group (``_plan``)."""
    shared, _, longest = _plan([row for _, rows in encoded for row in rows])
    return shared + sum(len(context) for context in longest)


def _common_length(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _model_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise BackendError(f"model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise BackendError(f"model directory {path} has no config.json")
    return path


def _adapter_dir(value: str) -> Path:
    path = Path(value)
    if not (path / "adapter_config.json").is_file():
        raise BackendError(f"adapter directory {path} has no adapter_config.json")
    return path


def _stop_token_ids(*values: int | list[int] | None) -> frozenset[int]:
    ids: set[int] = set()
    for value in values:
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    if not ids:
        raise BackendError("the model defines no EOS token, so answers could never stop")
    return frozenset(ids)
