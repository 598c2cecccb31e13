from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """Annotation campaigns and the evaluation reports that join all three perspectives."""

    name = "annotation"

    def ready(self) -> None:
        # Services enqueue tasks by name (recommendations.shared.queue): register them in
        # every process. Models are ready only here.
        from annotation import tasks  # noqa: F401
