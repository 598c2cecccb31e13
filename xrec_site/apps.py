from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    # post_migrate is sent once per app that has models, in INSTALLED_APPS order, and
    # contrib.auth creates each app's permissions on that app's signal: wait for the last.
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if sender is not with_models[-1]:
        return
    from explanations.services.generators import prompt_templates_ensure_builtin
    from xrec_site.roles import roles_sync

    roles_sync()
    prompt_templates_ensure_builtin()


class XrecSiteConfig(AppConfig):
    """Project-wide pieces: roles, home page, and the demo and worker commands."""

    name = "xrec_site"
    verbose_name = "xrec"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, dispatch_uid="xrec_site.after_migrate")
