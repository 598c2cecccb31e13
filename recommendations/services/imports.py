"""Workflows that change datasets: importing files and running site-started import jobs."""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from recommendations import importers
from recommendations.importers import ImportFailed, ParsedDataset
from recommendations.importers.base import Progress, no_progress
from recommendations.models import Dataset, DatasetUser, ImportJob, Interaction, Item
from recommendations.shared.bulk import insert_rows
from recommendations.shared.queue import enqueue_on_commit

MAX_NAME_LENGTH = Dataset._meta.get_field("name").max_length or 100


@dataclass
class ImportResult:
    dataset: Dataset
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ImportFailed("the dataset needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise ImportFailed(f"dataset name is longer than {MAX_NAME_LENGTH} characters")
    return name


def _name_taken(name: str) -> ImportFailed:
    return ImportFailed(f"a dataset named {name!r} already exists; use --replace to swap it for the new one")


def _refuse_existing(name: str, *, replace: bool) -> None:
    if not replace and Dataset.objects.filter(name=name).exists():
        raise _name_taken(name)


def dataset_import(
    *,
    parsed: ParsedDataset,
    name: str,
    replace: bool = False,
    domain: str | None = None,
    imported_by: Any = None,
    progress: Progress = no_progress,
) -> Dataset:
    """Write ``parsed`` as dataset ``name`` in one transaction and return it.

    An existing dataset of that name is refused unless ``replace``; with ``replace`` the old
    one is deleted and the new one written in the same transaction, so readers see either
    the old dataset or the new one, never a mix, and a failure leaves the old one intact.
    """
    name = _check_name(name)
    ratings = [row[2] for row in parsed.interactions if row[2] is not None]
    total = len(parsed.items) + len(parsed.users) + len(parsed.interactions)
    # Reported before the transaction: anything written inside it is invisible until commit.
    progress(f"writing {total:,} rows to the database", 0, total)
    with transaction.atomic():
        existing = Dataset.objects.select_for_update().filter(name=name).first()
        if existing is not None:
            if not replace:
                raise _name_taken(name)
            existing.delete()
        try:
            # A savepoint, so that losing a race for the name is a clean ImportFailed.
            with transaction.atomic():
                dataset = Dataset.objects.create(
                    name=name,
                    domain=domain or parsed.domain,
                    source=parsed.source,
                    licence_note=parsed.licence_note,
                    import_format=parsed.format,
                    is_implicit=not ratings,
                    rating_min=min(ratings, default=None),
                    rating_max=max(ratings, default=None),
                    n_users=len(parsed.users),
                    n_items=len(parsed.items),
                    n_interactions=len(parsed.interactions),
                    imported_by=imported_by,
                )
        except IntegrityError:
            raise _name_taken(name) from None
        dataset_id = dataset.pk
        insert_rows(
            Item,
            ["dataset", "external_id", "title", "attributes"],
            ((dataset_id, ext, title, attrs) for ext, (title, attrs) in parsed.items.items()),
        )
        insert_rows(
            DatasetUser,
            ["dataset", "external_id", "profile"],
            ((dataset_id, ext, profile) for ext, profile in parsed.users.items()),
        )
        item_ids = dict(Item.objects.filter(dataset=dataset).values_list("external_id", "pk"))
        user_ids = dict(DatasetUser.objects.filter(dataset=dataset).values_list("external_id", "pk"))
        insert_rows(
            Interaction,
            ["dataset", "user", "item", "rating", "timestamp"],
            (
                (dataset_id, user_ids[user], item_ids[item], rating, timestamp)
                for user, item, rating, timestamp in parsed.interactions
            ),
        )
    return dataset


def dataset_import_files(
    *,
    format: str,
    path: Path | None,
    name: str,
    options: dict[str, Any] | None = None,
    replace: bool = False,
    domain: str | None = None,
    imported_by: Any = None,
    progress: Progress = no_progress,
    max_bytes: int | None = None,
    source: str | None = None,
) -> ImportResult:
    """Read files with the ``format`` importer and write them as dataset ``name``.

    ``source`` describes where the files came from when their path does not (an upload).

    Raises ImportFailed, naming file and line, for bad input; the database is then unchanged.
    """
    started = time.perf_counter()
    name = _check_name(name)
    _refuse_existing(name, replace=replace)  # fail before reading a large file for nothing
    parsed = importers.read(format, path, options=options, progress=progress, max_bytes=max_bytes)
    parsed.source = source or parsed.source
    dataset = dataset_import(
        parsed=parsed, name=name, replace=replace, domain=domain, imported_by=imported_by, progress=progress
    )
    seconds = time.perf_counter() - started
    Dataset.objects.filter(pk=dataset.pk).update(import_seconds=seconds)
    dataset.import_seconds = seconds
    return ImportResult(dataset=dataset, seconds=seconds, warnings=parsed.warnings)


# --- import jobs run by a worker ----------------------------------------------------------

UPLOAD_ROLES = ("data", "items", "users")
RECBOLE_SUFFIXES = {"data": ".inter", "items": ".item", "users": ".user"}


def _store_uploads(format: str, uploads: dict[str, UploadedFile[bytes]]) -> tuple[Path, dict[str, str]]:
    """Save uploads under a fresh folder with names chosen here, never the client's."""
    folder = Path(settings.XREC_UPLOAD_DIR) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    paths: dict[str, Path] = {}
    for role, upload in uploads.items():
        suffix = Path(upload.name or "").suffix.lower()
        if format == "recbole" and suffix != ".zip":
            suffix = RECBOLE_SUFFIXES[role]
        target = folder / f"{role}{suffix}"
        with target.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        paths[role] = target
    extra: dict[str, str] = {
        role: str(paths[role]) for role in ("items", "users") if role in paths and format != "recbole"
    }
    return paths["data"], extra


def import_job_start(
    *,
    created_by: Any,
    format: str,
    name: str,
    domain: str = Dataset.Domain.OTHER,
    replace: bool = False,
    options: dict[str, Any] | None = None,
    uploads: dict[str, UploadedFile[bytes]] | None = None,
) -> ImportJob:
    """Record an import job and enqueue it after commit on the ``default`` queue.

    ``uploads`` maps ``data`` (required unless the format has a bundled copy), ``items`` and
    ``users`` to uploaded files, which are stored under XREC_UPLOAD_DIR for the worker.
    Raises ImportFailed for an unknown format, a taken name without ``replace``, or a
    missing file; nothing is stored then.
    """
    name = _check_name(name)
    if format not in importers.FORMATS:
        raise ImportFailed(f"unknown format {format!r}")
    _refuse_existing(name, replace=replace)
    uploads = {role: f for role, f in (uploads or {}).items() if f is not None}
    if "interactions" in uploads:
        uploads["data"] = uploads.pop("interactions")
    if "data" not in uploads and (format != "movielens-100k" or uploads):
        raise ImportFailed("upload the interactions file (or a zip of the dataset)")
    options = dict(options or {})
    path = ""
    if uploads:
        data_path, extra = _store_uploads(format, uploads)
        path = str(data_path)
        options.update(extra)
        options["source"] = "uploaded " + ", ".join(upload.name or role for role, upload in uploads.items())
    job = ImportJob.objects.create(
        name=name, format=format, domain=domain, path=path, options=options, replace=replace, created_by=created_by
    )
    enqueue_on_commit("recommendations.import_job_run", job.pk)
    return job


def import_job_run(*, job_id: int) -> None:
    """Run a pending import job to the end, recording progress, the dataset or the error.

    Idempotent: only a PENDING job is claimed (under a row lock on PostgreSQL), so a second
    delivery of the same task finds it RUNNING or finished and returns. Uploaded files are
    removed when the job ends either way.
    """
    job = ImportJob.claim_pending(job_id)
    if job is None:
        return
    options = dict(job.options)
    source = options.pop("source", None)
    try:
        result = dataset_import_files(
            format=job.format,
            path=Path(job.path) if job.path else None,
            name=job.name,
            options=options,
            source=source,
            replace=job.replace,
            domain=job.domain,
            imported_by=job.created_by,
            progress=job.throttled_progress(),
        )
    except ImportFailed as exc:
        job.mark_failed(str(exc))
    except Exception as exc:
        job.mark_failed(f"internal error: {exc!r}")
        raise
    else:
        job.mark_succeeded(result.dataset)
    finally:
        _remove_uploads(job.path)


def _remove_uploads(path: str) -> None:
    if not path:
        return
    root = Path(settings.XREC_UPLOAD_DIR).resolve()
    folder = Path(path).resolve().parent
    # Only ever delete a job folder inside the upload root, whatever the row says.
    if folder.parent == root:
        shutil.rmtree(folder, ignore_errors=True)
