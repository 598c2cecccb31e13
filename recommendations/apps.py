from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    """Rating datasets, their importers, and (later) Surprise training and top-K."""

    name = "recommendations"
