import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.importers import FORMATS, ImportFailed, parse_mapping
from recommendations.models import Dataset
from recommendations.services import dataset_import_files


class Command(BaseCommand):
    help = "Import a rating dataset in one transaction. Bad input changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("format", choices=list(FORMATS), help="; ".join(f"{k}: {v[0]}" for k, v in FORMATS.items()))
        parser.add_argument("path", nargs="?", type=Path, help="file, folder or zip (movielens-100k: optional)")
        parser.add_argument("--name", help="dataset name (default: the format name)")
        parser.add_argument("--replace", action="store_true", help="atomically swap an existing dataset of that name")
        parser.add_argument("--domain", choices=Dataset.Domain.values)
        parser.add_argument(
            "--map", default="", help="column mapping, e.g. user=uid,item=iid,rating=stars,timestamp=ts"
        )
        parser.add_argument("--items", type=Path, help="csv: item attribute file (CSV or JSONL)")
        parser.add_argument("--users", type=Path, help="csv: user attribute file (CSV or JSONL)")
        parser.add_argument("--delimiter", help="csv: field delimiter (default ',')")
        parser.add_argument("--encoding", help="text encoding (default: utf-8; MovieLens: latin-1)")
        parser.add_argument("--licence-note", default="", help="licence or terms of the data")
        parser.add_argument("--max-bytes", type=int, help="largest file accepted (default XREC_IMPORT_MAX_BYTES)")

    def handle(self, *args: Any, **opts: Any) -> None:
        options: dict[str, Any] = {}
        for key in ("items", "users"):
            if opts[key] is not None:
                options[key] = str(opts[key])
        for key in ("delimiter", "encoding", "licence_note", "domain"):
            if opts[key]:
                options[key] = opts[key]
        try:
            if opts["map"]:
                options["map"] = parse_mapping(opts["map"])
            result = dataset_import_files(
                format=opts["format"],
                path=opts["path"],
                name=opts["name"] or opts["format"],
                options=options,
                replace=opts["replace"],
                domain=opts["domain"],
                max_bytes=opts["max_bytes"],
            )
        except ImportFailed as exc:
            raise CommandError(f"import failed, nothing changed: {exc}") from None
        dataset = result.dataset
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        summary = {
            "dataset": dataset.name,
            "id": dataset.pk,
            "users": dataset.n_users,
            "items": dataset.n_items,
            "interactions": dataset.n_interactions,
            "seconds": round(result.seconds, 2),
        }
        self.stdout.write(json.dumps(summary))
