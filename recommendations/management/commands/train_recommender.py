import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.algorithms import ALL_ALGORITHMS, HyperparameterError
from recommendations.models import Dataset, RecommenderRun, Split
from recommendations.services.training import (
    TrainingError,
    recommender_run_create,
    recommender_run_execute,
    recommender_run_start,
)


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise CommandError(f"--param {text!r} is not NAME=VALUE")
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return name.strip(), raw  # a bare word such as pearson_baseline


class Command(BaseCommand):
    help = "Train a recommender (Surprise or implicit feedback) on a dataset split, evaluate it and store top-K for every user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument(
            "--algorithm", default="SVD", choices=list(ALL_ALGORITHMS), help="a Surprise algorithm or an implicit model"
        )
        parser.add_argument(
            "--param", action="append", default=[], metavar="NAME=VALUE", help="hyperparameter; value is JSON"
        )
        parser.add_argument("--split", default=Split.Mode.LEAVE_LAST_OUT, choices=Split.Mode.values)
        parser.add_argument("--min-interactions", type=int, default=5)
        parser.add_argument("--test-ratio", type=float, default=0.2)
        parser.add_argument("--cutoff", type=int, default=None, help="global_time: Unix time of the cut")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument("--threshold", type=float, default=4.0, help="relevant test rating")
        parser.add_argument(
            "--positive-threshold",
            type=float,
            default=None,
            help="implicit models on rated data: train ratings at or above this are positives (default: all)",
        )
        parser.add_argument("--enqueue", action="store_true", help="hand the run to a worker instead of running here")

    def handle(self, *args: Any, **opts: Any) -> None:
        dataset = Dataset.objects.filter(name=opts["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset named {opts['dataset']!r}")
        params = dict(_param(text) for text in opts["param"])
        kwargs: dict[str, Any] = {
            "created_by": None,
            "dataset": dataset,
            "algorithm": opts["algorithm"],
            "hyperparameters": params,
            "split_options": {
                "mode": opts["split"],
                "seed": opts["seed"],
                "min_interactions": opts["min_interactions"],
                "test_ratio": opts["test_ratio"],
                "cutoff_timestamp": opts["cutoff"],
            },
            "seed": opts["seed"],
            "k": opts["k"],
            "relevance_threshold": opts["threshold"],
            "positive_threshold": opts["positive_threshold"],
        }
        try:
            if opts["enqueue"]:
                run = recommender_run_start(**kwargs)
                self.stdout.write(json.dumps({"run": run.pk, "status": run.status}))
                return
            run = recommender_run_create(**kwargs)
        except (HyperparameterError, TrainingError) as exc:
            raise CommandError(str(exc)) from None
        recommender_run_execute(run_id=run.pk)
        run.refresh_from_db()
        if run.status != RecommenderRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} failed: {run.error}")
        self.stdout.write(json.dumps({"run": run.pk, "status": run.status, "metrics": _summary(run)}))


def _summary(run: RecommenderRun) -> dict[str, Any]:
    m = run.metrics
    rating = m["rating"] or {}  # implicit models predict no ratings
    return {
        "rmse": rating.get("rmse"),
        "mae": rating.get("mae"),
        **{f"{key}@{run.k}": m["topk"][key] for key in ("precision", "recall", "ndcg", "hit_rate")},
        "mrr": m["topk"]["mrr"],
        "coverage": m["catalogue"]["coverage"],
        "gini": m["catalogue"]["gini"],
        "top_item_user_share": m["catalogue"]["top_item_user_share"],
        "fit_seconds": run.fit_seconds,
        "topk_seconds": run.topk_seconds,
    }
