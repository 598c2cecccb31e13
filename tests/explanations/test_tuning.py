"""LoRA tuning on a tiny random Llama: mechanics (masking, gradients, saving, determinism), not quality."""

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from explanations import tuning
from explanations.tuning import (
    IGNORE_INDEX,
    Example,
    LoraSettings,
    TuningCancelled,
    TuningError,
    collate,
    encode_example,
    split_indices,
    train_lora,
)
from tests.explanations.tiny import build_tiny_llama

TARGET = "because you liked the story and the music ."
SUBJECTS = [
    *["drama", "comedy", "action", "thriller", "horror", "romance", "adventure", "animation", "war", "western"],
    *["crime", "mystery", "movie", "film", "game", "item", "story", "plot", "actor", "actress", "director"],
    *["music", "soundtrack", "genre"],
]
LAYERS = 2  # tiny.py's default
TARGETED = 7  # q, k, v, o, gate, up, down per layer


def make_examples(n: int = 24) -> list[Example]:
    return [
        Example(
            messages=[
                {"role": "system", "content": "you recommend movie to user"},
                {
                    "role": "user",
                    "content": f"explain why you recommend this {SUBJECTS[i % len(SUBJECTS)]} to user {i}",
                },
            ],
            response=TARGET,
        )
        for i in range(n)
    ]


def settings(**changes) -> LoraSettings:
    defaults = {"epochs": 1, "learning_rate": 1e-2, "validation_fraction": 0.25, "quantization": "nf4"}
    return LoraSettings(**{**defaults, **changes})


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Matmuls this small spend their time in OpenMP spin-waits when another process shares the
    # cores; one thread runs this file about ten times faster on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def lora_b_weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    return {name: tensor for name, tensor in weights.items() if "lora_B" in name}


def capture_trained_model(monkeypatch: pytest.MonkeyPatch) -> list[torch.nn.Module]:
    """Record the model that train_lora loads, so a test can run the trained model itself."""
    loaded: list[torch.nn.Module] = []
    load = tuning._load_peft_model

    def recording_load(*args, **kwargs):
        loaded.append(load(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(tuning, "_load_peft_model", recording_load)
    return loaded


def test_labels_count_only_the_response_and_eos(tiny_model: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    short = Example(messages=[{"role": "user", "content": "why this movie ?"}], response="you liked it .")
    long = Example(
        messages=[{"role": "system", "content": "you recommend"}, {"role": "user", "content": "why this old drama ?"}],
        response="because you loved the actor and the story .",
    )
    encoded = [item for example in (short, long) if (item := encode_example(tokenizer, example, max_length=512))]
    assert len(encoded) == 2
    batch = collate(encoded, pad_token_id=tokenizer.pad_token_id)

    for row, (example, item) in enumerate(zip((short, long), encoded, strict=True)):
        prompt = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
        assert list(item.input_ids[: item.n_prompt]) == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        length = len(item.input_ids)
        labels = batch["labels"][row]
        assert (labels[: item.n_prompt] == IGNORE_INDEX).all()
        assert (labels[length:] == IGNORE_INDEX).all()  # right padding
        assert (batch["input_ids"][row, length:] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (batch["labels"].shape[1] - length)
        counted = labels[labels != IGNORE_INDEX].tolist()
        assert counted[-1] == tokenizer.eos_token_id
        assert counted[:-1] == tokenizer(example.response, add_special_tokens=False)["input_ids"]


def test_truncation_keeps_the_response_start_and_drops_prompts_that_fill_max_length(tiny_model: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    example = make_examples(1)[0]
    full = encode_example(tokenizer, example, max_length=512)
    assert full is not None

    cut = encode_example(tokenizer, example, max_length=full.n_prompt + 2)
    assert cut is not None
    assert cut.input_ids == full.input_ids[: full.n_prompt + 2]
    assert encode_example(tokenizer, example, max_length=full.n_prompt) is None


def test_examples_whose_prompt_fills_max_length_are_dropped_with_a_counted_warning(tiny_model, tmp_path, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = make_examples(8)
    long_prompt = [{"role": "user", "content": " ".join(["movie"] * 40)}]
    examples[:3] = [Example(messages=long_prompt, response=TARGET)] * 3
    prompt_length = len(tokenizer(tokenizer.apply_chat_template(long_prompt, tokenize=False))["input_ids"])
    assert prompt_length > 32

    with caplog.at_level(logging.WARNING, logger="explanations.tuning"):
        result = train_lora(
            base_model_dir=tiny_model, examples=examples, settings=settings(max_length=32), output_dir=tmp_path / "a"
        )

    assert result.n_train + result.n_validation == 5
    assert "Dropped 3 of 8 examples" in caplog.text
    assert json.loads((tmp_path / "a" / "xrec-training.json").read_text())["n_dropped"] == 3
    with pytest.raises(TuningError, match="every prompt"):
        train_lora(
            base_model_dir=tiny_model,
            examples=examples[:3],
            settings=settings(max_length=32),
            output_dir=tmp_path / "b",
        )


def test_training_on_a_fixed_answer_lowers_the_validation_loss(tiny_model: Path, tmp_path: Path):
    calls: list[tuple[str, int, int]] = []

    result = train_lora(
        base_model_dir=tiny_model,
        examples=make_examples(24),
        settings=settings(epochs=3),
        output_dir=tmp_path / "adapter",
        progress=lambda phase, done, total: calls.append((phase, done, total)),
    )

    assert (result.n_train, result.n_validation) == (18, 6)
    steps = 3 * 5  # ceil(18 / 4) per epoch
    assert [step for step, _ in result.train_losses] == list(range(1, steps + 1))
    assert [step for step, _ in result.validation_losses] == [0, 5, 10, 15]
    first, last = result.validation_losses[0][1], result.validation_losses[-1][1]
    assert last < first - 0.5, result.validation_losses
    assert ("training epoch 1/3", 1, steps) in calls
    assert ("training epoch 3/3", steps, steps) in calls
    assert result.seconds > 0


def test_every_lora_b_moves_on_the_first_step_after_validation_with_nf4(tiny_model: Path, tmp_path: Path):
    # peft starts every lora_B at zero. Adam's first step moves each element by about the learning
    # rate unless its gradient is exactly zero, which is what happens to the LoRA layers below a
    # 4-bit layer that bitsandbytes repacked during the step-0 validation. batch_size covers the
    # whole training set, so this adapter has had exactly one step.
    result = train_lora(
        base_model_dir=tiny_model,
        examples=make_examples(12),
        settings=settings(batch_size=16, validation_fraction=0.25),
        output_dir=tmp_path / "adapter",
    )

    assert len(result.train_losses) == 1 and result.validation_losses[0][0] == 0
    weights = lora_b_weights(tmp_path / "adapter")
    assert len(weights) == LAYERS * TARGETED
    for name, weight in weights.items():
        assert (weight != 0).float().mean() > 0.9, name


def test_validation_between_epochs_does_not_change_training(tiny_model, tmp_path, monkeypatch):
    # Validation runs in eval mode without autograd and consumes no randomness, so the training
    # losses are identical with it skipped; a repack during validation would change them.
    options = {"base_model_dir": tiny_model, "examples": make_examples(16), "settings": settings(epochs=3)}
    validated = train_lora(**options, output_dir=tmp_path / "validated")
    monkeypatch.setattr(tuning, "_validation_loss", lambda *args: 0.0)
    unvalidated = train_lora(**options, output_dir=tmp_path / "unvalidated")

    assert validated.train_losses == unvalidated.train_losses
    assert validated.sha256 == unvalidated.sha256


def test_bitsandbytes_still_repacks_4bit_layers_under_eval_and_no_grad(tiny_model: Path):
    """Canary: shows the two tests above exercise the repack on this CPU (and says when it is gone)."""
    from bitsandbytes.functional import has_avx512bf16
    from bitsandbytes.nn import Linear4bit

    if not has_avx512bf16():
        pytest.skip("bitsandbytes repacks 4-bit weights only on CPUs with AVX512-BF16")
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_model, quantization_config=quantization, device_map={"": "cpu"})
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7]]))

    layers = [module for module in model.modules() if isinstance(module, Linear4bit)]
    assert layers and all(cast(Any, layer.weight).quant_state.packing_format_for_cpu for layer in layers)


def test_adapter_dir_holds_adapter_weights_config_and_training_record(tiny_model: Path, tmp_path: Path):
    output_dir = tmp_path / "runs" / "adapter"

    result = train_lora(
        base_model_dir=tiny_model, examples=make_examples(8), settings=settings(), output_dir=output_dir
    )

    assert result.adapter_dir == output_dir
    assert {"adapter_config.json", "adapter_model.safetensors", "xrec-training.json"} <= {
        path.name for path in output_dir.iterdir()
    }
    assert result.sha256 == hashlib.sha256((output_dir / "adapter_model.safetensors").read_bytes()).hexdigest()
    record = json.loads((output_dir / "xrec-training.json").read_text())
    assert record["adapter_sha256"] == result.sha256
    assert record["base_model_dir"] == str(tiny_model)
    assert record["settings"]["quantization"] == "nf4"
    assert (record["n_train"], record["n_validation"]) == (result.n_train, result.n_validation)
    assert [tuple(pair) for pair in record["train_losses"]] == result.train_losses
    assert [tuple(pair) for pair in record["validation_losses"]] == result.validation_losses
    assert record["seconds"] > 0
    assert [path.name for path in output_dir.parent.iterdir()] == ["adapter"]  # no partial folder left


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_adapter_on_a_fresh_base_reproduces_the_trained_models_logits(tiny_model, tmp_path, monkeypatch, quantization):
    loaded = capture_trained_model(monkeypatch)
    train_lora(
        base_model_dir=tiny_model,
        examples=make_examples(12),
        settings=settings(epochs=2, quantization=quantization),
        output_dir=tmp_path / "adapter",
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt = tokenizer.apply_chat_template(make_examples(30)[-1].messages, add_generation_prompt=True, tokenize=False)
    options: dict[str, Any]
    if quantization == "nf4":
        options = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
        }
    else:
        options = {"dtype": torch.float32}
    device = next(loaded[0].parameters()).device  # CUDA where present
    base = AutoModelForCausalLM.from_pretrained(tiny_model, device_map={"": device}, **options)

    # The adapter goes on before the base runs: on AVX512-BF16 CPUs the first eval forward repacks
    # the 4-bit weights, and PeftModel.from_pretrained's state_dict() unpacks them again lossily.
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)

    with torch.no_grad():
        reloaded_logits = reloaded(input_ids=input_ids).logits
        with reloaded.disable_adapter():
            base_logits = reloaded(input_ids=input_ids).logits
        trained_logits = loaded[0].eval()(input_ids=input_ids).logits

    assert not torch.allclose(base_logits, trained_logits, atol=1e-3)  # the adapter does something
    torch.testing.assert_close(reloaded_logits.float(), trained_logits.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_same_examples_settings_and_seed_give_identical_losses(tiny_model, tmp_path, quantization):
    options = {"base_model_dir": tiny_model, "examples": make_examples(12)}
    first = train_lora(**options, settings=settings(epochs=2, quantization=quantization), output_dir=tmp_path / "a")
    again = train_lora(**options, settings=settings(epochs=2, quantization=quantization), output_dir=tmp_path / "b")
    other = train_lora(
        **options, settings=settings(epochs=2, quantization=quantization, seed=1), output_dir=tmp_path / "c"
    )

    assert first.train_losses == again.train_losses
    assert first.validation_losses == again.validation_losses
    assert first.sha256 == again.sha256
    assert other.train_losses != first.train_losses


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"r": 0}, "r must be at least 1"),
        ({"alpha": 0}, "alpha must be positive"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"max_length": 8}, "max_length must be at least 16"),
        ({"validation_fraction": 1.0}, "validation_fraction must be in"),
        ({"quantization": "int3"}, "quantization must be one of auto, nf4, none"),
        ({"target_modules": ()}, "target_modules must name at least one module"),
    ],
)
def test_out_of_range_settings_raise_tuning_error(tiny_model, tmp_path, changes, message):
    with pytest.raises(TuningError, match=message):
        train_lora(
            base_model_dir=tiny_model, examples=make_examples(4), settings=settings(**changes), output_dir=tmp_path
        )


def test_unknown_target_module_raises_tuning_error_listing_the_linear_modules(tiny_model: Path, tmp_path: Path):
    with pytest.raises(TuningError, match="c_attn are not in the model") as error:
        train_lora(
            base_model_dir=tiny_model,
            examples=make_examples(4),
            settings=settings(target_modules=("q_proj", "c_attn")),
            output_dir=tmp_path / "adapter",
        )
    assert "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj" in str(error.value)
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        (make_examples(1), "need at least 2 examples"),
        ([*make_examples(2), Example(messages=[{"role": "user", "content": "why ?"}], response="  ")], "example 2"),
        ([*make_examples(2), Example(messages=[], response=TARGET)], "example 2 has no prompt"),
    ],
)
def test_too_few_or_empty_examples_raise_tuning_error(tiny_model, tmp_path, examples, message):
    with pytest.raises(TuningError, match=message):
        train_lora(base_model_dir=tiny_model, examples=examples, settings=settings(), output_dir=tmp_path)


def test_non_empty_output_dir_raises_tuning_error(tiny_model: Path, tmp_path: Path):
    (tmp_path / "old.txt").write_text("keep me")

    with pytest.raises(TuningError, match="not an empty directory"):
        train_lora(base_model_dir=tiny_model, examples=make_examples(4), settings=settings(), output_dir=tmp_path)


def test_should_stop_cancels_between_steps_and_writes_no_adapter(tiny_model: Path, tmp_path: Path):
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(len(asked))
        return len(asked) == 3

    with pytest.raises(TuningCancelled, match="after 2 of"):
        train_lora(
            base_model_dir=tiny_model,
            examples=make_examples(16),
            settings=settings(epochs=2),
            output_dir=tmp_path / "adapter",
            should_stop=should_stop,
        )
    assert list(tmp_path.iterdir()) == []


def test_the_split_is_seeded_and_keeps_groups_together() -> None:
    plain = split_indices(10, validation_fraction=0.2, seed=3)
    assert plain == split_indices(10, validation_fraction=0.2, seed=3)
    assert len(plain[1]) == 2 and sorted(plain[0] + plain[1]) == list(range(10))
    # Without groups, the validation indices are the seeded permutation's first ones.
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    assert plain == (sorted(order[2:]), sorted(order[:2]))
    assert split_indices(10, validation_fraction=0.2, seed=3, groups=list(range(10))) == plain

    groups = [index // 2 for index in range(40)]  # 20 pairs, both orders of each
    train, validation = split_indices(40, validation_fraction=0.2, seed=0, groups=groups)

    assert len(validation) == 8  # 20% of the 20 pairs, both of their orders
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in validation})
    assert sorted(train + validation) == list(range(40))
