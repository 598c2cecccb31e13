"""A tiny randomly initialised Llama with a word-level tokenizer and a ChatML template.

Built in a few hundred milliseconds, fully offline, and shaped like the real thing
(Llama architecture, q/k/v/o/gate/up/down projections, chat template, EOS and pad tokens),
so backend, batching, quantisation and adapter code runs on it unchanged. Its outputs are
random words: tests check mechanics, never quality.
"""

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
WORDS = (  # noqa: SIM905 - a word list reads better as text
    "the a an and or but because so you your it this that these those is are was were be been "
    "movie film game item story plot actor actress director music soundtrack genre drama comedy "
    "action thriller horror romance adventure science fiction animation war western crime mystery "
    "like liked love loved enjoy enjoyed watch watched play played rated rating stars year old new "
    "great good fine bad best favourite classic fun dark light warm funny sad exciting similar "
    "user system assistant recommend recommended why explain explanation history profile age "
    "gender occupation student engineer writer teacher doctor artist other male female "
    "1 2 3 4 5 6 7 8 9 0 . , : ; ! ? ' \" ( ) - / words in of to for with on at from as by"
).split()
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate([*SPECIAL, *dict.fromkeys(WORDS)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_llama(folder: Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Write a tiny random Llama and its tokenizer to ``folder``; return ``folder``."""
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=int(tokenizer.convert_tokens_to_ids("<|im_start|>")),  # type: ignore[arg-type]
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
