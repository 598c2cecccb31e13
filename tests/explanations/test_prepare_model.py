"""`manage.py prepare_model`: the bundled model, any local GGUF file or model folder, or a hub id,
registered as a generator in the auto precision."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from explanations.llm import bundled as bundled_module
from explanations.models import Generator
from explanations.services.generators import generator_spec

pytestmark = pytest.mark.django_db


def prepare(*args: str, capsys) -> dict:
    call_command("prepare_model", *args)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_local_model_folder_is_registered_where_it_is(tiny_model_dir, capsys) -> None:
    summary = prepare(str(tiny_model_dir), capsys=capsys)

    generator = Generator.objects.get(name=tiny_model_dir.name)
    assert summary == {
        "model": str(tiny_model_dir.resolve()),
        "generator": generator.name,
        "quantization": "auto",
        "seconds": summary["seconds"],
    }
    assert generator.backend == "hf" and generator_spec(generator).model == str(tiny_model_dir.resolve())


def test_a_local_gguf_file_is_converted_once_into_the_model_dir(tmp_path, settings, monkeypatch, capsys) -> None:
    converted: list[Path] = []

    def fake_convert(gguf: Path, folder: Path) -> None:
        converted.append(gguf)
        for name in bundled_module.REQUIRED:
            (folder / name).write_text("{}")

    monkeypatch.setattr(bundled_module, "_convert", fake_convert)
    gguf = tmp_path / "Qwen2.5-1.5B-Instruct-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")

    first = prepare(str(gguf), "--name", "qwen-1.5b", "--quantization", "nf4", capsys=capsys)
    again = prepare(str(gguf), "--name", "qwen-1.5b", "--quantization", "nf4", capsys=capsys)

    target = Path(settings.XREC_MODEL_DIR) / "Qwen2.5-1.5B-Instruct-Q4_K_M"
    assert first["model"] == again["model"] == str(target) and converted == [gguf]
    generator = Generator.objects.get(name="qwen-1.5b")
    assert generator.model == str(target) and generator.quantization == "nf4"


def test_a_hub_id_is_downloaded_once_into_the_model_dir(settings, monkeypatch, capsys) -> None:
    import huggingface_hub

    calls = []

    def fake_download(repo_id: str, *, local_dir: Path, allow_patterns: list[str]) -> str:
        calls.append(repo_id)
        Path(local_dir).mkdir(parents=True)
        (Path(local_dir) / "config.json").write_text("{}")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)

    summary = prepare("Qwen/Qwen2.5-1.5B-Instruct", capsys=capsys)
    prepare("Qwen/Qwen2.5-1.5B-Instruct", capsys=capsys)

    assert calls == ["Qwen/Qwen2.5-1.5B-Instruct"]
    assert summary["model"] == str(Path(settings.XREC_MODEL_DIR) / "Qwen--Qwen2.5-1.5B-Instruct")
    assert summary["generator"] == "Qwen2.5-1.5B-Instruct" and summary["quantization"] == "auto"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing-folder/with/parts", "not a model folder, a .gguf file or a hub id"),
        ("missing.gguf", "no GGUF file at missing.gguf"),
    ],
)
def test_what_is_not_a_model_is_refused_and_registers_nothing(source, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("prepare_model", source)
    assert not Generator.objects.exists()


def test_a_folder_without_config_is_refused(tmp_path) -> None:
    with pytest.raises(CommandError, match=r"without config\.json"):
        call_command("prepare_model", str(tmp_path))
    assert not Generator.objects.exists()
