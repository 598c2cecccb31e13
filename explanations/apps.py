from django.apps import AppConfig


class ExplanationsConfig(AppConfig):
    """LLM backends, prompts, generation, LoRA tuning and automatic evaluation."""

    name = "explanations"

    def ready(self) -> None:
        # Services enqueue tasks by name (recommendations.shared.queue), and the engine's
        # kinds register when their modules load: import both now, in every process.
        # Models are ready only here.
        from explanations import tasks  # noqa: F401
