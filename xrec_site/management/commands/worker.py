import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from xrec_site.celery import app


class Command(BaseCommand):
    help = "Start a Celery worker for this configuration (embedded default: both queues, one process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", default="default,gpu", help="comma-separated queues to consume")
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--pool", default="solo", choices=["solo", "prefork", "threads"])
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--hostname", default=None, help="node name, e.g. gpu0@%%h")

    def handle(self, *args: Any, **options: Any) -> None:
        # Torch and BLAS start one thread per core in every process; with several pool
        # processes (or a web server beside the worker) that oversubscribes the cores and
        # small models run 10-25x slower. Share the cores out unless the operator chose.
        threads = max(1, (os.cpu_count() or 1) // max(1, options["concurrency"]))
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        argv = [
            "worker",
            f"--queues={options['queues']}",
            f"--concurrency={options['concurrency']}",
            f"--pool={options['pool']}",
            f"--loglevel={options['loglevel']}",
            # The filesystem broker has no broadcast channel for these; they only add start-up time.
            "--without-gossip",
            "--without-mingle",
        ]
        if options["hostname"]:
            argv.append(f"--hostname={options['hostname']}")
        app.worker_main(argv=argv)
