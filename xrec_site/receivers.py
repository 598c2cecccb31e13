"""Signal receivers of the project (connected in ``XrecSiteConfig.ready``)."""

from typing import Any

from django.apps import AppConfig, apps

from explanations.services.generators import prompt_templates_ensure_builtin
from xrec_site.roles import roles_sync


def after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    # post_migrate is sent once per app that has models, in INSTALLED_APPS order, and
    # contrib.auth creates each app's permissions on that app's signal: wait for the last.
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if sender is not with_models[-1]:
        return
    roles_sync()
    prompt_templates_ensure_builtin()
