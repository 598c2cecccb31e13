from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    """Rating datasets, their importers, Surprise training and top-K recommendations."""

    name = "recommendations"

    def ready(self) -> None:
        # Services enqueue tasks by name (recommendations.shared.queue): register them now,
        # in every process, not only in workers that autodiscover. Models are ready only here.
        from recommendations import tasks  # noqa: F401
