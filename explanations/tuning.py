"""LoRA instruction tuning on a 4-bit base model (QLoRA), in a plain PyTorch loop.

``train_lora`` loads a fresh base model (bitsandbytes nf4, or float32 with ``quantization="none"``;
``"auto"`` is QLoRA on CUDA and on CPUs with a fast 4-bit path, plain LoRA on a float32 base
elsewhere, as ``explanations.llm.precision`` decides for inference),
trains a peft LoRA adapter on (chat prompt, assistant response) pairs with the loss on response
tokens only, and saves the adapter with ``save_pretrained`` plus ``xrec-training.json``.

Guarantees:

- The base model is always loaded inside ``train_lora`` and never escapes it. Inference code
  reloads the base model and applies the saved adapter (see DESIGN.md, "The LLM layer").
- Same examples, settings and seed on the same machine give identical losses and weights.
- Validation never switches bitsandbytes' CPU inference repack on (see ``_evaluating``); if
  anything did, training stops with ``RuntimeError`` instead of silently losing gradients.
- The adapter directory appears complete or not at all: it is written beside ``output_dir`` and
  renamed into place, so a cancelled or failed run leaves nothing at ``output_dir``.

No Django imports: the worker task that calls this owns the database rows.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from torch.nn import functional
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase

from explanations.llm.precision import AUTO, resolve_quantization

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]
Batch = dict[str, torch.Tensor]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINING_RECORD = "xrec-training.json"
QUANTIZATIONS = (AUTO, "nf4", "none")
IGNORE_INDEX = -100  # label value that cross_entropy skips: prompt and padding positions
MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class Example:
    messages: Messages  # the prompt as chat messages (system/user)
    response: str  # the target assistant answer
    # Examples that share a group are split together: a judge's two orders of one pair.
    group: int | None = None


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    epochs: int = 1
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_length: int = 512
    validation_fraction: float = 0.1
    seed: int = 0
    quantization: str = "nf4"  # "auto" | "nf4" | "none"


@dataclass
class TuningResult:
    adapter_dir: Path
    sha256: str  # of adapter_dir / "adapter_model.safetensors", the LoRA weights
    train_losses: list[tuple[int, float]]  # (optimizer step, mean loss over the batch's response tokens)
    validation_losses: list[tuple[int, float]]  # (step, mean loss over all validation response tokens)
    n_train: int
    n_validation: int
    seconds: float
    precision: str = ""  # e.g. "QLoRA on an nf4 base on cuda", "LoRA on a float32 base on cpu"


@dataclass(frozen=True)
class EncodedExample:
    input_ids: tuple[int, ...]  # templated prompt, then response and EOS (possibly truncated)
    n_prompt: int  # leading tokens that belong to the prompt and carry no loss


class TuningError(ValueError):
    """Bad settings or examples; the message says which."""


class TuningCancelled(Exception):
    """``should_stop()`` returned true between optimizer steps; nothing was saved."""


def no_progress(phase: str, done: int, total: int) -> None:
    """Default progress callback: ignore."""


def validate_settings(settings: LoraSettings) -> None:
    """Raise ``TuningError`` naming every out-of-range setting (target modules are checked on the model)."""
    problems = []
    if settings.r < 1:
        problems.append(f"r must be at least 1 (got {settings.r})")
    if settings.alpha <= 0:
        problems.append(f"alpha must be positive (got {settings.alpha})")
    if not 0 <= settings.dropout < 1:
        problems.append(f"dropout must be in [0, 1) (got {settings.dropout})")
    if settings.epochs < 1:
        problems.append(f"epochs must be at least 1 (got {settings.epochs})")
    if not settings.learning_rate > 0:
        problems.append(f"learning_rate must be positive (got {settings.learning_rate})")
    if settings.batch_size < 1:
        problems.append(f"batch_size must be at least 1 (got {settings.batch_size})")
    if settings.max_length < 16:
        problems.append(f"max_length must be at least 16 (got {settings.max_length})")
    if not 0 <= settings.validation_fraction < 1:
        problems.append(f"validation_fraction must be in [0, 1) (got {settings.validation_fraction})")
    if not settings.target_modules:
        problems.append("target_modules must name at least one module")
    if settings.quantization not in QUANTIZATIONS:
        problems.append(f"quantization must be one of {', '.join(QUANTIZATIONS)} (got {settings.quantization!r})")
    if problems:
        raise TuningError("; ".join(problems))


def validate_examples(examples: Sequence[Example]) -> None:
    """Raise ``TuningError`` unless there are at least 2 examples, each with messages and a response."""
    if len(examples) < 2:
        raise TuningError(f"need at least 2 examples (got {len(examples)})")
    for index, example in enumerate(examples):
        if not example.messages:
            raise TuningError(f"example {index} has no prompt messages")
        for message in example.messages:
            if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
                raise TuningError(f"example {index} has a message without string 'role' and 'content'")
        if not example.response.strip():
            raise TuningError(f"example {index} has an empty response")


def encode_example(tokenizer: PreTrainedTokenizerBase, example: Example, *, max_length: int) -> EncodedExample | None:
    """Tokenize the templated prompt (with the generation prompt) followed by the response and EOS.

    The tokens are cut at ``max_length``, keeping the start of the response. Returns None when the
    prompt alone leaves no room for a response token.
    """
    prompt_text = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
    assert isinstance(prompt_text, str)
    # The template already writes any BOS it wants, so no special tokens are added here; the
    # response is tokenized on its own, as generate() will see it after the prompt.
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) >= max_length:
        return None
    input_ids = [*prompt_ids, *response_ids, _eos_id(tokenizer)][:max_length]
    return EncodedExample(input_ids=tuple(input_ids), n_prompt=len(prompt_ids))


def collate(examples: Sequence[EncodedExample], *, pad_token_id: int) -> Batch:
    """Right-pad a batch; labels are ``IGNORE_INDEX`` on prompt and padding, the token ids elsewhere."""
    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        ids = torch.tensor(example.input_ids, dtype=torch.long)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        labels[row, example.n_prompt : len(ids)] = ids[example.n_prompt :]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def split_indices(
    n: int, *, validation_fraction: float, seed: int, groups: Sequence[Hashable] | None = None
) -> tuple[list[int], list[int]]:
    """Seeded (train, validation) split of ``range(n)``; at least one of each when the fraction
    is positive. With ``groups`` (one key per index) whole groups go to one side, and the
    fraction counts groups: no validation example has a sibling in training."""
    keys = list(range(n)) if groups is None else list(groups)
    distinct = list(dict.fromkeys(keys))
    order = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed)).tolist()
    n_validation = 0
    if validation_fraction > 0 and len(distinct) >= 2:
        n_validation = min(len(distinct) - 1, max(1, round(len(distinct) * validation_fraction)))
    held = {distinct[index] for index in order[:n_validation]}
    return [i for i in range(n) if keys[i] not in held], [i for i in range(n) if keys[i] in held]


@dataclass(frozen=True)
class _Data:
    """The encoded examples, split: what one training run reads."""

    train_set: list[Any]
    validation_batches: list[Any]
    n_validation: int
    n_dropped: int
    pad_token_id: int


def _prepare_data(base_model_dir: Path, examples: Sequence[Example], settings: LoraSettings) -> _Data:
    """Tokenise ``examples`` with the base model's chat template, drop those whose prompt
    alone fills ``max_length``, and split train/validation (by group, seeded)."""
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir, local_files_only=True)
    if tokenizer.chat_template is None:
        raise TuningError(f"the tokenizer in {base_model_dir} has no chat template")
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else _eos_id(tokenizer)
    encoded = [encode_example(tokenizer, example, max_length=settings.max_length) for example in examples]
    usable = [example for example in encoded if example is not None]
    groups = [
        ("group", example.group) if example.group is not None else ("example", index)
        for index, (example, tokens) in enumerate(zip(examples, encoded, strict=True))
        if tokens is not None
    ]
    n_dropped = len(encoded) - len(usable)
    if not usable:
        raise TuningError(f"every prompt is at least max_length={settings.max_length} tokens long")
    if n_dropped:
        logger.warning(
            "Dropped %d of %d examples whose prompt alone is at least max_length=%d tokens",
            n_dropped,
            len(encoded),
            settings.max_length,
        )
    train_indices, validation_indices = split_indices(
        len(usable), validation_fraction=settings.validation_fraction, seed=settings.seed, groups=groups
    )
    train_set = [usable[index] for index in train_indices]
    validation_batches = [
        collate(
            [usable[index] for index in validation_indices[start : start + settings.batch_size]],
            pad_token_id=pad_token_id,
        )
        for start in range(0, len(validation_indices), settings.batch_size)
    ]
    return _Data(
        train_set=train_set,
        validation_batches=validation_batches,
        n_validation=len(validation_indices),
        n_dropped=n_dropped,
        pad_token_id=pad_token_id,
    )


def _train_epochs(
    model: Any,
    optimizer: Any,
    trainable: list[Any],
    data: _Data,
    settings: LoraSettings,
    device: Any,
    progress: Callable[[str, int, int], None],
    should_stop: Callable[[], bool] | None,
    total_steps: int,
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Every epoch's optimizer steps in a seeded order; the train loss of each step and the
    validation loss before the first and after every epoch."""
    train_set, validation_batches, pad_token_id = data.train_set, data.validation_batches, data.pad_token_id
    shuffle = torch.Generator().manual_seed(settings.seed)
    train_losses: list[tuple[int, float]] = []
    validation_losses: list[tuple[int, float]] = []
    if validation_batches:
        validation_losses.append((0, _validation_loss(model, validation_batches, device)))
    step = 0
    for epoch in range(1, settings.epochs + 1):
        phase = f"training epoch {epoch}/{settings.epochs}"
        order = torch.randperm(len(train_set), generator=shuffle).tolist()
        for start in range(0, len(order), settings.batch_size):
            if should_stop is not None and should_stop():
                raise TuningCancelled(f"stopped after {step} of {total_steps} steps")
            batch = collate(
                [train_set[index] for index in order[start : start + settings.batch_size]],
                pad_token_id=pad_token_id,
            )
            loss_sum, n_tokens = _loss_sum(model, batch, device)
            loss = loss_sum / n_tokens
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            optimizer.step()
            step += 1
            train_losses.append((step, loss.item()))
            progress(phase, step, total_steps)
        if validation_batches:
            validation_losses.append((step, _validation_loss(model, validation_batches, device)))
    return train_losses, validation_losses


def train_lora(
    *,
    base_model_dir: Path,
    examples: Sequence[Example],
    settings: LoraSettings,
    output_dir: Path,
    progress: Callable[[str, int, int], None] = no_progress,
    should_stop: Callable[[], bool] | None = None,
) -> TuningResult:
    """Train a LoRA adapter on ``examples`` and save it to ``output_dir``.

    Loads a fresh base model from ``base_model_dir`` (local files only), on CUDA when present and
    the CPU otherwise. The validation loss is measured before the first step (step 0) and after
    each epoch. ``progress(phase, done, total)`` is called after every optimizer step with
    ``done``/``total`` counted over all epochs; ``should_stop()`` is asked before every step and a
    true answer raises ``TuningCancelled``. ``output_dir`` must not exist or be empty.

    Raises ``TuningError`` for bad settings or examples (before loading anything, except unknown
    target modules, which need the model), ``TuningCancelled`` when stopped.
    """
    started = time.monotonic()
    validate_settings(settings)
    validate_examples(examples)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise TuningError(f"output_dir {output_dir} already exists and is not an empty directory")

    data = _prepare_data(base_model_dir, examples, settings)
    train_set = data.train_set
    steps_per_epoch = -(-len(train_set) // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The record and the loader see the precision actually used, never "auto".
    settings = replace(settings, quantization=resolve_quantization(settings.quantization, cuda=device.type == "cuda"))
    # The seed drives LoRA initialisation and dropout; fork_rng keeps the caller's RNG untouched.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        progress("loading base model", 0, total_steps)
        model = _load_peft_model(base_model_dir, settings, device)
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
        try:
            train_losses, validation_losses = _train_epochs(
                model, optimizer, trainable, data, settings, device, progress, should_stop, total_steps
            )
            _check_not_repacked(model)
            progress("saving adapter", total_steps, total_steps)
            record = {
                "settings": asdict(settings),
                "base_model_dir": str(base_model_dir),
                "device": str(device),
                "n_train": len(train_set),
                "n_validation": data.n_validation,
                "n_dropped": data.n_dropped,
                "train_losses": train_losses,
                "validation_losses": validation_losses,
                "versions": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "peft": peft.__version__,
                },
            }
            sha256 = _save_atomically(model, output_dir, record, started)
        finally:
            # The worker process outlives this call, and a raised exception's traceback keeps this
            # frame alive: drop the model here so its (GPU) memory is freed either way.
            del model, trainable, optimizer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return TuningResult(
        adapter_dir=output_dir,
        sha256=sha256,
        train_losses=train_losses,
        validation_losses=validation_losses,
        n_train=len(train_set),
        n_validation=data.n_validation,
        seconds=time.monotonic() - started,
        precision=f"{'QLoRA on an nf4' if settings.quantization == 'nf4' else 'LoRA on a float32'} base on {device.type}",
    )


def _eos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise TuningError("the tokenizer has no single EOS token")
    return eos


def _load_peft_model(base_model_dir: Path, settings: LoraSettings, device: torch.device) -> PeftModel:
    """A freshly loaded base model wrapped with new LoRA layers, in train mode."""
    if settings.quantization == "nf4":
        use_bf16 = device.type == "cpu" or torch.cuda.is_bf16_supported()
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if use_bf16 else torch.float16,
        )
        base = AutoModelForCausalLM.from_pretrained(
            base_model_dir, quantization_config=quantization, device_map={"": device}, local_files_only=True
        )
        # Freezes the base and upcasts the non-4-bit parameters (norms, embeddings) to float32.
        # Gradient checkpointing stays off: adapters here are small and it only costs time.
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    else:
        base = AutoModelForCausalLM.from_pretrained(
            base_model_dir, dtype=torch.float32, device_map={"": device}, local_files_only=True
        )
    available = sorted(
        {name.rsplit(".", 1)[-1] for name, module in base.named_modules() if isinstance(module, torch.nn.Linear)}
    )
    missing = [name for name in settings.target_modules if name not in available]
    if missing:
        raise TuningError(
            f"target modules {', '.join(missing)} are not in the model; its Linear modules are {', '.join(available)}"
        )
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )
    model = get_peft_model(base, config)
    assert isinstance(model, PeftModel)
    model.train()
    return model


def _loss_sum(model: PeftModel, batch: Batch, device: torch.device) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the batch's response tokens, and their count."""
    logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits[
        :, :-1
    ]
    targets = batch["labels"][:, 1:].to(device)
    loss_sum = functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss_sum, int((targets != IGNORE_INDEX).sum())


def _validation_loss(model: PeftModel, batches: Sequence[Batch], device: torch.device) -> float:
    """Mean loss over all validation response tokens, leaving the model ready to train on."""
    total, count = 0.0, 0
    with _evaluating(model):
        for batch in batches:
            loss_sum, n_tokens = _loss_sum(model, batch, device)
            total += loss_sum.item()
            count += n_tokens
    return total / count


@contextlib.contextmanager
def _evaluating(model: PeftModel) -> Iterator[None]:
    """Eval mode (no dropout) without autograd, and without bitsandbytes' CPU inference repack.

    On CPUs with AVX512-BF16, ``bitsandbytes.nn.Linear4bit.forward`` permanently repacks its
    weight into an inference-only layout the first time it runs with ``not self.training`` and
    an input that does not require grad. Afterwards the layer no longer passes gradients to its
    input, so every LoRA layer below it trains on truncated gradients (at the first step, before
    any lora_B is non-zero, most lora_B receive exactly zero). The flag is per module and only
    gates that repack, so the 4-bit layers stay in training mode here while the rest of the model
    (the LoRA dropouts) is in eval mode.
    """
    model.eval()
    for module in _four_bit_layers(model).values():
        module.train()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train()
    _check_not_repacked(model)


def _four_bit_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    try:
        from bitsandbytes.nn import Linear4bit  # heavy, and not needed for a full-precision model
    except ImportError:  # pragma: no cover - bitsandbytes is a requirement, but "none" does not need it
        return {}
    return {name: module for name, module in model.named_modules() if isinstance(module, Linear4bit)}


def _check_not_repacked(model: torch.nn.Module) -> None:
    packed = [
        name
        for name, module in _four_bit_layers(model).items()
        if getattr(getattr(module.weight, "quant_state", None), "packing_format_for_cpu", False)
    ]
    if packed:
        raise RuntimeError(
            f"bitsandbytes repacked {len(packed)} 4-bit layers for CPU inference during training "
            f"(first: {packed[0]}); their LoRA gradients are no longer correct"
        )


def _save_atomically(model: PeftModel, output_dir: Path, record: dict[str, Any], started: float) -> str:
    """Save adapter and training record into a sibling folder, then rename it to ``output_dir``."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(str(partial))
        sha256 = hashlib.sha256((partial / ADAPTER_WEIGHTS).read_bytes()).hexdigest()
        record = {**record, "adapter_sha256": sha256, "seconds": round(time.monotonic() - started, 3)}
        (partial / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if output_dir.exists():
            output_dir.rmdir()  # checked empty at the start
        partial.rename(output_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return sha256
