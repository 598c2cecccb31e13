"""The transformers backend, on a tiny random Llama built for the test module."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import bitsandbytes as bnb
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, LlamaForCausalLM

from explanations.llm import BackendError, BackendSpec, DecodingParams, load_backend, unload_all
from explanations.llm import hf as hf_module
from explanations.llm.hf import HFBackend
from tests.explanations.tiny import build_tiny_llama

PROMPTS = [
    [{"role": "user", "content": "why is the movie great"}],
    [{"role": "user", "content": "a"}],
    [
        {"role": "system", "content": "you recommend a film"},
        {"role": "user", "content": "explain why the user liked the old comedy and the new drama"},
    ],
]
GREEDY = DecodingParams(max_new_tokens=8)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The tiny model gains nothing from threads, and on a busy 2-core machine torch's spinning
    # threads make each matrix product wait for a free core: 15 ms a call becomes seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_llama(tmp_path_factory.mktemp("tiny"))
    # At its small initial scale the random model repeats the prompt's last token forever, which
    # would make every answer the same. Larger weights give varied, prompt-dependent answers.
    model = LlamaForCausalLM.from_pretrained(folder)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0, 0.3)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adapter")
    model = get_peft_model(
        LlamaForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]),
    )
    # LoRA starts with B = 0, which changes nothing; a random B makes the adapter visible.
    torch.manual_seed(2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def full(tiny_model: Path):
    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="none"))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def nf4(tiny_model: Path):
    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="nf4"))
    yield backend
    backend.close()


@pytest.fixture
def _unload():
    yield
    unload_all()


def has_layer(backend: HFBackend, kind: type) -> bool:
    return any(isinstance(module, kind) for module in backend.model.modules())


def test_a_batch_gets_one_answer_per_prompt_in_prompt_order(full):
    batch = full.generate(PROMPTS, GREEDY)

    alone = [full.generate([prompt], GREEDY)[0] for prompt in PROMPTS]
    assert batch == alone
    assert len({completion.text for completion in batch}) == len(PROMPTS)


def test_left_padding_leaves_each_prompts_greedy_answer_unchanged(full):
    # Full precision only: nf4 and int8 multiply in bf16/fp16, and bitsandbytes uses another
    # kernel for one row than for a batch, so on an H200 a padded prompt's greedy answer changed
    # (on this CPU it happened not to). Quantised answers depend on the batch they are in.
    # The short prompt (6 tokens) is left-padded by 18 in the batch and not at all alone.
    batch = full.generate([PROMPTS[2], PROMPTS[1]], GREEDY)

    assert batch[1].text == full.generate([PROMPTS[1]], GREEDY)[0].text
    assert batch[0].text == full.generate([PROMPTS[2]], GREEDY)[0].text


def test_prompt_tokens_are_the_chat_template_length_without_padding(full, tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    encoded: list[Any] = [tokenizer.apply_chat_template(prompt, add_generation_prompt=True) for prompt in PROMPTS]
    lengths = [len(encoding["input_ids"]) for encoding in encoded]

    completions = full.generate(PROMPTS, GREEDY)

    assert [completion.prompt_tokens for completion in completions] == lengths
    assert len(set(lengths)) == len(PROMPTS)


def test_an_answer_without_a_stop_token_runs_to_max_new_tokens(full):
    completions = full.generate(PROMPTS, DecodingParams(max_new_tokens=5))

    assert [(c.completion_tokens, c.finish_reason) for c in completions] == [(5, "length")] * len(PROMPTS)
    assert all(len(c.text.split()) <= 5 for c in completions)


def test_a_stop_token_ends_the_answer_and_counts_as_its_last_token(full, monkeypatch):
    first = full.generate([PROMPTS[0]], GREEDY)[0]
    words = full.tokenizer(first.text, add_special_tokens=False)["input_ids"]
    # The first generated token that differs from all before it; the answer must stop just there.
    cut = next(index for index in range(1, len(words)) if words[index] not in words[:index])
    monkeypatch.setattr(full, "stop_token_ids", frozenset({words[cut]}))

    stopped, other = full.generate([PROMPTS[0], PROMPTS[2]], GREEDY)

    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens == cut + 1  # the padding after the stop token is not counted
    assert stopped.text == full.tokenizer.decode(words[:cut])
    assert other == full.generate([PROMPTS[2]], GREEDY)[0]


def test_sampling_with_the_same_seed_repeats_and_another_seed_differs(full):
    def sample(seed: int) -> list[str]:
        params = DecodingParams(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=seed)
        return [completion.text for completion in full.generate(PROMPTS, params)]

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    assert sample(7) != [completion.text for completion in full.generate(PROMPTS, GREEDY)]


def test_nf4_quantises_the_linear_layers_and_none_does_not(nf4, full):
    assert has_layer(nf4, bnb.nn.Linear4bit)
    assert not has_layer(full, bnb.nn.Linear4bit)
    assert nf4.model_bytes() < full.model_bytes() / 2


def test_int8_loads_and_answers_on_this_device(tiny_model):
    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="int8"))
    try:
        completions = backend.generate(PROMPTS, GREEDY)
        assert has_layer(backend, bnb.nn.Linear8bitLt)
        assert [c.completion_tokens for c in completions] == [GREEDY.max_new_tokens] * len(PROMPTS)
    finally:
        backend.close()


def test_a_lora_adapter_changes_the_answers_deterministically(tiny_model, tiny_adapter, nf4):
    adapted = HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="nf4", adapter=str(tiny_adapter)))
    try:
        first = adapted.generate(PROMPTS, GREEDY)
        assert adapted.generate(PROMPTS, GREEDY) == first
        assert [c.text for c in first] != [c.text for c in nf4.generate(PROMPTS, GREEDY)]
    finally:
        adapted.close()


def test_a_missing_model_directory_is_a_backend_error_naming_it(tmp_path):
    with pytest.raises(BackendError, match=re.escape(str(tmp_path / "absent"))):
        HFBackend(BackendSpec(kind="hf", model=str(tmp_path / "absent")))
    with pytest.raises(BackendError, match=r"no config\.json"):
        HFBackend(BackendSpec(kind="hf", model=str(tmp_path)))


def test_a_missing_adapter_or_unknown_quantization_is_a_backend_error(tiny_model, tmp_path):
    with pytest.raises(BackendError, match="adapter directory"):
        HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="none", adapter=str(tmp_path)))
    with pytest.raises(BackendError, match="unknown quantization"):
        HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="fp8"))


def test_a_closed_backend_refuses_to_generate(tiny_model):
    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="none"))
    backend.close()

    with pytest.raises(BackendError, match="closed"):
        backend.generate(PROMPTS, GREEDY)


@pytest.mark.usefixtures("_unload")
def test_load_backend_keeps_one_backend_per_spec_and_one_local_model(tiny_model):
    spec = BackendSpec(kind="hf", model=str(tiny_model), quantization="none")
    first = load_backend(spec)
    assert isinstance(first, HFBackend)

    assert load_backend(BackendSpec(kind="hf", model=str(tiny_model), quantization="none")) is first
    other = load_backend(BackendSpec(kind="hf", model=str(tiny_model), quantization="nf4"))
    assert other is not first
    assert first.model is None  # closed: only one local model stays resident
    assert load_backend(spec) is not first


def test_load_backend_refuses_an_unknown_kind():
    with pytest.raises(BackendError, match="unknown backend kind"):
        load_backend(BackendSpec(kind="llama.cpp", model="x"))


def test_importing_the_package_loads_no_torch():
    code = "import sys, explanations.llm; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


QUESTIONS = [
    (PROMPTS[0], "Winner:", [" 1", " 2", " good bad"]),
    (PROMPTS[1], "the", [" movie", " film", " old comedy and"]),
    (PROMPTS[2], "rating:", [" 1", " 10", " 5 stars", " 7"]),
]


def reference_logprob(backend: HFBackend, messages: list[dict[str, str]], prefix: str, option: str) -> float:
    """The option's log-probability the slow way: one plain forward pass per option token, no
    cache, over the prompt up to that token (the option's tokens: where prompt + prefix + option
    tokenises differently from prompt + prefix)."""
    text = backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefix
    base = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    full = backend.tokenizer(text + option, add_special_tokens=False)["input_ids"]
    start = next((i for i, (a, b) in enumerate(zip(base, full, strict=False)) if a != b), min(len(base), len(full)))
    total = 0.0
    with torch.no_grad():
        for position in range(start, len(full)):
            logits = backend.model(input_ids=torch.tensor([full[:position]])).logits[0, -1]
            total += float(torch.log_softmax(logits.double(), -1)[full[position]])
    return total


def test_option_scores_are_a_distribution_equal_to_the_token_by_token_product(full):
    prompts, prefixes, options = zip(*QUESTIONS, strict=True)

    scores = full.score(prompts, prefixes, options)

    for score, (messages, prefix, choices) in zip(scores, QUESTIONS, strict=True):
        assert score.options == tuple(choices)
        assert sum(score.probabilities) == pytest.approx(1.0, abs=1e-9)
        reference = [reference_logprob(full, messages, prefix, choice) for choice in choices]
        assert score.logprobs == pytest.approx(reference, abs=1e-4)
        products = torch.tensor(reference).exp()
        assert score.probabilities == pytest.approx((products / products.sum()).tolist(), abs=1e-5)


def test_a_batch_of_questions_scores_as_each_question_alone(full):
    prompts, prefixes, options = zip(*QUESTIONS, strict=True)

    batch = full.score(prompts, prefixes, options)

    alone = [full.score([p], [prefix], [choices])[0] for p, prefix, choices in QUESTIONS]
    for together, single in zip(batch, alone, strict=True):
        assert together.logprobs == pytest.approx(single.logprobs, abs=1e-5)


def test_questions_on_one_prompt_share_its_pass_and_score_as_each_alone(full, monkeypatch):
    # A Likert judge asks each criterion after its own prefix on the same prompt.
    criteria = [("reasonability:", [" 1", " 5", " 10"]), ("faithfulness:", [" 1", " 5", " 10", " 2 stars"])]
    prompts = [PROMPTS[2]] * len(criteria)
    monkeypatch.setattr(hf_module, "SCORE_ROWS", 3)  # more rows than one batch: copies of the cache

    together = full.score(prompts, [prefix for prefix, _ in criteria], [choices for _, choices in criteria])

    for score, (prefix, choices) in zip(together, criteria, strict=True):
        reference = [reference_logprob(full, PROMPTS[2], prefix, choice) for choice in choices]
        assert score.options == tuple(choices) and score.logprobs == pytest.approx(reference, abs=1e-4)


def test_prompts_that_share_a_long_start_share_its_pass_and_score_as_each_alone(full, monkeypatch):
    # A pair judged in both orders: the same context, then the two explanations swapped.
    context = {"role": "system", "content": "you recommend a film " * 6}
    orders = [
        [context, {"role": "user", "content": "explanation 1 the old comedy explanation 2 the new drama"}],
        [context, {"role": "user", "content": "explanation 1 the new drama explanation 2 the old comedy"}],
        [context, {"role": "user", "content": "a"}],
    ]
    calls = []
    original = HFBackend._score_group

    def spy(self, questions):
        calls.append(len(questions))
        return original(self, questions)

    monkeypatch.setattr(HFBackend, "_score_group", spy)

    together = full.score(orders, ["Winner:"] * 3, [[" 1", " 2", " good bad"]] * 3)

    assert calls == [3]  # one pass over the shared start for all three
    for score, messages in zip(together, orders, strict=True):
        reference = [reference_logprob(full, messages, "Winner:", choice) for choice in (" 1", " 2", " good bad")]
        assert score.logprobs == pytest.approx(reference, abs=1e-4)


def test_an_option_that_merges_with_the_end_of_the_prefix_is_scored_as_the_merged_token(full):
    # The word-level tokenizer reads "the mov" as "the <unk>" but "the movie" as two words, just
    # as BPE re-splits a prefix whose last characters merge with an option's first.
    [split] = full.score([PROMPTS[0]], ["the mov"], [["ie", "ie and"]])
    [whole] = full.score([PROMPTS[0]], ["the"], [[" movie", " movie and"]])

    assert split.logprobs == pytest.approx(whole.logprobs, abs=1e-5)


def test_the_most_likely_option_is_the_best(full):
    [score] = full.score([PROMPTS[2]], ["rating:"], [[" 1", " 2", " 3", " 4"]])

    assert score.options[score.best] == max(zip(score.probabilities, score.options, strict=True))[1]


def test_scoring_refuses_empty_options_and_a_closed_backend(tiny_model):
    backend = HFBackend(BackendSpec(kind="hf", model=str(tiny_model), quantization="none"))
    with pytest.raises(BackendError, match="adds no token"):
        backend.score([PROMPTS[0]], ["Winner:"], [[" 1", ""]])
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.score([PROMPTS[0]], ["Winner:"], [[" 1"]])
