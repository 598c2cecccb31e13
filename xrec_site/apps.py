from django.apps import AppConfig
from django.db.models.signals import post_migrate


class XrecSiteConfig(AppConfig):
    """Project-wide pieces: roles, home page, and the demo and worker commands."""

    name = "xrec_site"
    verbose_name = "xrec"

    def ready(self) -> None:
        # The receivers import services, whose models are ready only now.
        from xrec_site.receivers import after_migrate

        post_migrate.connect(after_migrate, dispatch_uid="xrec_site.after_migrate")
