from django.apps import AppConfig


class ExplanationsConfig(AppConfig):
    """LLM backends, prompts, generation, LoRA tuning and automatic evaluation."""

    name = "explanations"
