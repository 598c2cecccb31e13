import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from xrec_site.roles import demo_users_create

DEFAULT_PASSWORD = "xrec-demo"  # noqa: S105 - printed for the demo accounts on purpose


class Command(BaseCommand):
    help = "Create (or reset) one demo account per role: annotator, researcher, admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            default=os.environ.get("XREC_DEMO_PASSWORD", DEFAULT_PASSWORD),
            help="password for all three accounts (default: $XREC_DEMO_PASSWORD or xrec-demo)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for username, role in demo_users_create(password=options["password"]).items():
            self.stdout.write(f"{role}: {username} / {options['password']}")
