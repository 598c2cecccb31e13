from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """Annotation campaigns and the evaluation reports that join all three perspectives."""

    name = "annotation"
