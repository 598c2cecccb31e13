"""Writing many rows fast: PostgreSQL's COPY, or one prepared INSERT run with executemany.

``Model.objects.bulk_create`` builds a model instance per row and, on SQLite, splits the
insert into statements of at most 999 parameters; for a million interactions that costs
tens of seconds. This writes plain tuples straight through the backend's fastest route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from django.db import connections, models

BATCH_ROWS = 50_000


def _preparers(model: type[models.Model], fields: list[str], using: str) -> list[Callable[[Any], Any] | None]:
    connection = connections[using]
    plain = (
        models.IntegerField,
        models.FloatField,
        models.CharField,
        models.TextField,
        models.BooleanField,
        models.ForeignKey,
    )
    preparers: list[Callable[[Any], Any] | None] = []
    for name in fields:
        field = model._meta.get_field(name)
        if isinstance(field, plain):
            preparers.append(None)
        else:  # JSON, dates…: let the field adapt the value as Django would
            preparers.append(lambda v, f=field: f.get_db_prep_value(v, connection, prepared=False))  # type: ignore[misc]
    return preparers


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column, f"{name} is not a concrete field"
    return field.column


def _with_defaults(
    model: type[models.Model], fields: list[str], rows: Iterable[tuple[Any, ...]]
) -> tuple[list[str], Iterable[tuple[Any, ...]]]:
    """Add each left-out field that has a default, so a column added later needs no caller edits."""
    named = {model._meta.get_field(name).name for name in fields}
    missing = [
        field
        for field in model._meta.concrete_fields
        if field.name not in named and not field.primary_key and field.has_default()
    ]
    if not missing:
        return fields, rows
    # Callable defaults (uuid4, timezone.now…) are called per row, as Model() would.
    return [*fields, *(field.name for field in missing)], (
        (*row, *(field.get_default() for field in missing)) for row in rows
    )


def _batches(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def insert_rows(
    model: type[models.Model],
    fields: list[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    using: str = "default",
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Insert ``rows`` (tuples in ``fields`` order) into ``model``'s table; return the count.

    No model instances, signals or ``save()``; the caller supplies every non-null column without
    a default (a left-out field with one gets it, per row). Runs inside the caller's transaction.
    ``on_batch`` receives the running count.
    """
    connection = connections[using]
    fields, rows = _with_defaults(model, fields, rows)
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(_column(model, f)) for f in fields)
    preparers = _preparers(model, fields, using)
    if any(preparers):
        rows = (
            tuple(value if prep is None else prep(value) for prep, value in zip(preparers, row, strict=True))
            for row in rows
        )
    written = 0
    with connection.cursor() as cursor:
        for batch in _batches(rows, BATCH_ROWS):
            if connection.vendor == "postgresql":
                # The raw cursor's COPY: wrapped so failures are Django's IntegrityError etc., as
                # from the executemany route.
                with (
                    connection.wrap_database_errors,
                    cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
                ):
                    for row in batch:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(fields))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", batch)
            written += len(batch)
            if on_batch is not None:
                on_batch(written)
    return written
