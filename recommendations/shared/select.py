"""Reading joined rows into model instances with one hand-written statement.

On the pages served on every submit, building and compiling an ORM queryset with
``select_related`` costs more than the database takes to run it (some 1.3 ms against 0.5 ms
for a rating page's history on a 2-core CPU without AVX-512). ``Layout`` names the models a
statement's columns belong to, in order; ``select_models`` runs the statement and turns each
row into those models' instances, each value converted as the ORM would (JSON decoded,
SQLite's dates parsed). Fields a layout leaves out are deferred: reading one later costs a
query, as with ``QuerySet.only``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, models

Converter = Callable[[Any, Any, Any], Any]


class Layout:
    """Where one model's fields sit in a statement's select list: ``fields`` by attribute name
    (``item_id``, not ``item``), or all its concrete fields; ``alias`` the table's name in the
    statement, or "" for bare column names (an UPDATE's RETURNING). Resolved on first use, so
    a layout may be written at import time, before the app registry is ready."""

    def __init__(self, model: type[models.Model], alias: str, fields: Sequence[str] | None = None) -> None:
        self.model, self.alias, self._names = model, alias, fields
        # The select list and the converters, per database (alias and vendor): built once,
        # not on every statement (for the submit path's layouts, some 1.4 ms a submit).
        self._built: dict[tuple[str, str, str], Any] = {}

    def _once(self, what: str, build: Callable[[], Any]) -> Any:
        key = (what, connection.alias, connection.vendor)
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    @functools.cached_property
    def fields(self) -> list[Any]:
        concrete = {field.attname: field for field in self.model._meta.concrete_fields}
        chosen = [concrete[name] for name in self._names] if self._names is not None else list(concrete.values())
        if self.model._meta.pk not in chosen:
            raise ValueError(f"A layout of {self.model.__name__} must include its primary key.")
        return chosen

    @functools.cached_property
    def attnames(self) -> list[str]:
        return [field.attname for field in self.fields]

    @functools.cached_property
    def pk_position(self) -> int:
        return self.attnames.index(self.model._meta.pk.attname)

    @property
    def columns(self) -> str:
        """The select list, e.g. ``i."id", i."title"``."""
        prefix = f"{self.alias}." if self.alias else ""
        return str(
            self._once(
                "columns",
                lambda: ", ".join(f"{prefix}{connection.ops.quote_name(str(field.column))}" for field in self.fields),
            )
        )

    def converters(self) -> list[tuple[int, Any, list[Converter]]]:
        """(position, column, converters) for each field the backend or the field converts on
        reading, as the ORM's compiler finds them."""

        def build() -> list[tuple[int, Any, list[Converter]]]:
            found = []
            for position, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                chain = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
                if chain:
                    found.append((position, column, chain))
            return found

        return list(self._once("converters", build))


def table(model: type[models.Model]) -> str:
    """``model``'s table name, quoted for the database."""
    return connection.ops.quote_name(model._meta.db_table)


def select_list(layouts: Sequence[Layout]) -> str:
    """The select list of ``layouts`` in order, for a statement ``select_models`` reads."""
    return ", ".join(layout.columns for layout in layouts)


def select_models(sql: str, params: Sequence[Any] | dict[str, Any], layouts: Sequence[Layout]) -> list[tuple[Any, ...]]:
    """Run ``sql``, whose select list is ``layouts``' columns in order, and return one tuple of
    instances per row (a model whose primary key is NULL, from an outer join, is None)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    plans = [(layout, layout.converters()) for layout in layouts]
    result = []
    for row in rows:
        instances: list[Any] = []
        start = 0
        for layout, converters in plans:
            values = list(row[start : start + len(layout.fields)])
            start += len(layout.fields)
            for position, column, chain in converters:
                for convert in chain:
                    values[position] = convert(values[position], column, connection)
            instances.append(
                None
                if values[layout.pk_position] is None
                else layout.model.from_db(connection.alias, layout.attnames, values)
            )
        result.append(tuple(instances))
    return result
