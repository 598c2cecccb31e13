import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.importers import ImportFailed
from recommendations.models import Dataset, Split
from recommendations.services.external import external_run_import


class Command(BaseCommand):
    help = (
        "Import top-K lists computed elsewhere (CSV or JSONL with user,item,rank or user,item,score, "
        "or RecBole's top-K atomic file) as a recommender run. Bad input changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the lists file")
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--name", required=True, help="a name for the run")
        parser.add_argument("--model", default="", help="the model that made the lists (LightGCN, SASRec...)")
        parser.add_argument("--split", choices=Split.Mode.values, help="score the lists against this split")
        parser.add_argument("--min-interactions", type=int, default=5)
        parser.add_argument("--test-ratio", type=float, default=0.2)
        parser.add_argument("--cutoff", type=int, default=None, help="global_time: Unix time of the cut")
        parser.add_argument("--seed", type=int, default=0, help="the split's seed")
        parser.add_argument("--threshold", type=float, default=4.0, help="relevant test rating")

    def handle(self, *args: Any, **opts: Any) -> None:
        dataset = Dataset.objects.filter(name=opts["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset named {opts['dataset']!r}")
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"no file {path}")
        split_options = None
        if opts["split"]:
            split_options = {
                "mode": opts["split"],
                "seed": opts["seed"],
                "min_interactions": opts["min_interactions"],
                "test_ratio": opts["test_ratio"],
                "cutoff_timestamp": opts["cutoff"],
            }
        try:
            run = external_run_import(
                dataset=dataset,
                name=opts["name"],
                data=path.read_bytes(),
                file_name=path.name,
                label=opts["model"],
                split_options=split_options,
                relevance_threshold=opts["threshold"],
            )
        except ImportFailed as exc:
            raise CommandError(f"import failed, nothing changed: {exc}") from None
        topk = run.metrics["topk"] or {}
        summary = {
            "run": run.pk,
            "name": run.name,
            "users": run.source["users"],
            "rows": run.source["rows"],
            "k": run.k,
            **{f"{key}@{run.k}": topk.get(key) for key in ("precision", "recall", "ndcg", "hit_rate")},
            "coverage": run.metrics["catalogue"]["coverage"],
            "recommended_seen": run.metrics["n_recommended_seen"],
        }
        self.stdout.write(json.dumps(summary))
