import json
import os
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from recommendations.models import Dataset, DatasetUser, Interaction, Item, Recommendation, RecommenderRun, Split
from recommendations.services import dataset_import_files
from recommendations.services.training import recommender_run_create, recommender_run_execute
from xrec_site.management.commands.createdemousers import DEFAULT_PASSWORD
from xrec_site.roles import demo_users_create

DEMO_DATASET = "movielens-100k"


class Command(BaseCommand):
    help = (
        "Run the demo pipeline on the embedded default, then serve the site with a worker. "
        "With --no-serve, run the pipeline only and print a JSON summary as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="run the pipeline and exit")
        parser.add_argument("--fresh", action="store_true", help="re-import the demo dataset even if present")
        parser.add_argument("--host", default=os.environ.get("XREC_DEMO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("XREC_DEMO_PORT", "8000")))

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("XREC_DEMO_PASSWORD", DEFAULT_PASSWORD)
        self.stdout.write("migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        logins = demo_users_create(password=password)

        dataset = Dataset.objects.filter(name=DEMO_DATASET).first()
        if dataset is None or options["fresh"]:
            self.stdout.write("importing MovieLens-100K from the recbole package…")
            dataset = dataset_import_files(format="movielens-100k", path=None, name=DEMO_DATASET, replace=True).dataset
        run = (
            RecommenderRun.objects.filter(dataset=dataset, algorithm="SVD", status=RecommenderRun.Status.SUCCEEDED)
            .order_by("-id")
            .first()
        )
        if run is None:
            self.stdout.write("training SVD and ranking the top 10 for every user…")
            run = recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD", seed=0)
            recommender_run_execute(run_id=run.pk)
            run.refresh_from_db()
            if run.status != RecommenderRun.Status.SUCCEEDED:
                raise CommandError(f"the demo's SVD run failed: {run.error}")
        base = f"http://{options['host']}:{options['port']}"
        summary = {
            "counts": {
                "datasets": Dataset.objects.count(),
                "items": Item.objects.count(),
                "dataset_users": DatasetUser.objects.count(),
                "interactions": Interaction.objects.count(),
                "site_users": get_user_model().objects.count(),
                "splits": Split.objects.count(),
                "recommender_runs": RecommenderRun.objects.count(),
                "recommendations": Recommendation.objects.count(),
            },
            "dataset": {
                "name": dataset.name,
                "users": dataset.n_users,
                "items": dataset.n_items,
                "interactions": dataset.n_interactions,
                "import_seconds": round(dataset.import_seconds or 0, 2),
            },
            "recommender": {
                "run": run.pk,
                "algorithm": run.algorithm,
                "rmse": round(run.metrics["rating"]["rmse"], 4),
                f"ndcg@{run.k}": round(run.metrics["topk"]["ndcg"], 4),
                "top_item_user_share": round(run.metrics["catalogue"]["top_item_user_share"], 4),
            },
            "urls": {
                "home": base + reverse("home"),
                "login": base + reverse("login"),
                "dataset": base + reverse("recommendations:dataset_detail", args=[dataset.pk]),
                "import": base + reverse("recommendations:import"),
                "run": base + reverse("recommendations:run_detail", args=[run.pk]),
                "admin": base + reverse("admin:index"),
            },
            "logins": {username: {"role": role, "password": password} for username, role in logins.items()},
        }
        if options["no_serve"]:
            self.stdout.write(json.dumps(summary))
            return
        self._serve(summary, options["host"], options["port"])

    def _serve(self, summary: dict[str, Any], host: str, port: int) -> None:
        call_command("collectstatic", interactive=False, verbosity=0)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        worker_log = settings.VAR_DIR / "worker.log"
        with worker_log.open("ab") as log:
            worker = subprocess.Popen([*manage, "worker", "--loglevel=INFO"], stdout=log, stderr=subprocess.STDOUT)
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "xrec_site.wsgi",
                f"--bind={host}:{port}",
                "--workers=2",
                "--access-logfile=-",
                "--log-level=warning",
            ]
        )
        self.stdout.write(f"\nxrec is running at {summary['urls']['home']} (Ctrl-C stops it)")
        self.stdout.write(f"  worker log: {worker_log}")
        for username, login in summary["logins"].items():
            self.stdout.write(f"  {login['role']:<11} {username} / {login['password']}")
        try:
            web.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in (web, worker):
                process.terminate()
            for process in (web, worker):
                process.wait(timeout=30)
