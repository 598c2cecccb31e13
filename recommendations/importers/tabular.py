"""Generic CSV and JSON Lines files with a column mapping.

The interactions file has one row per (user, item) event. Without a mapping the columns are
``user``, ``item``, ``rating`` and ``timestamp``; ``rating`` and ``timestamp`` may be absent
(an implicit dataset, or one without time) unless the mapping names them. Optional item and
user attribute files are keyed by ``item``/``user`` (or ``item_id``/``user_id``, or ``id``).
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommendations.importers.base import (
    DatasetBuilder,
    FileSet,
    ImportFailed,
    ParsedDataset,
    Progress,
    parse_rating,
    parse_timestamp,
    plain_value,
)

ROLES = ("user", "item", "rating", "timestamp")
LIST_COLUMNS = {"genres", "categories", "tags", "genre", "category"}


def parse_mapping(text: str) -> dict[str, str]:
    """``"user=uid,item=iid"`` → ``{"user": "uid", "item": "iid"}``; unknown roles are refused."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, column = part.partition("=")
        role = role.strip()
        if not sep or not column.strip():
            raise ImportFailed(f"mapping {part!r} is not ROLE=COLUMN")
        if role not in ROLES:
            raise ImportFailed(f"mapping names unknown role {role!r}; roles are {', '.join(ROLES)}")
        mapping[role] = column.strip()
    return mapping


def _records(
    files: FileSet, name: str, *, encoding: str, delimiter: str, progress: Progress
) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """Column names and an iterator of (line, record) for a CSV or JSONL file."""
    label = files.display(name)
    lines = files.lines(name, encoding=encoding, progress=progress)
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return jsonl_records(label, lines)
    numbered = _Numbered(lines)
    reader = csv.reader(numbered, delimiter=delimiter, strict=True)
    try:
        columns = [c.strip() for c in next(reader)]
    except StopIteration:
        raise ImportFailed(f"{label}: file is empty") from None
    except csv.Error as exc:
        raise ImportFailed(f"{label} line {numbered.number}: {exc}") from None
    if len(set(columns)) != len(columns):
        raise ImportFailed(f"{label} line 1: repeated column names ({', '.join(columns)})")

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFailed(f"{label} line {numbered.number}: {exc}") from None
            if not cells or cells == [""]:
                continue
            if len(cells) != len(columns):
                raise ImportFailed(
                    f"{label} line {numbered.number}: expected {len(columns)} fields, found {len(cells)}"
                )
            yield numbered.number, dict(zip(columns, cells, strict=True))

    return columns, rows()


class _Numbered:
    """Feeds csv.reader text lines and remembers the physical line number of the last one."""

    def __init__(self, lines: Iterator[tuple[int, str]]):
        self.lines, self.number = lines, 0

    def __iter__(self) -> _Numbered:
        return self

    def __next__(self) -> str:
        self.number, text = next(self.lines)
        return text


def jsonl_records(
    label: str, lines: Iterator[tuple[int, str]]
) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """The first record's keys and every (line, object) of JSON Lines; a bad line is refused."""

    def parsed() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, text in lines:
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ImportFailed(f"{label} line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ImportFailed(f"{label} line {number}: expected a JSON object")
            yield number, record

    records = parsed()
    try:
        first = next(records)
    except StopIteration:
        raise ImportFailed(f"{label}: no records") from None

    def chained() -> Iterator[tuple[int, dict[str, Any]]]:
        yield first
        yield from records

    return list(first[1]), chained()


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _attribute(column: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if column in LIST_COLUMNS:
        return [part.strip() for part in value.split("|") if part.strip()]
    return plain_value(value)


def _key(columns: list[str], preferred: str, fallbacks: tuple[str, ...], label: str) -> str:
    for candidate in (preferred, *fallbacks):
        if candidate in columns:
            return candidate
    raise ImportFailed(f"{label} line 1: no id column {preferred!r} (columns: {', '.join(columns)})")


def read_tabular(path: Path, *, options: dict[str, Any], progress: Progress, max_bytes: int) -> ParsedDataset:
    """Read an interactions CSV/JSONL file and optional ``items``/``users`` attribute files.

    Options: ``map`` (role → column), ``items`` and ``users`` (paths), ``delimiter`` (CSV,
    default ``,``), ``encoding`` (default UTF-8), ``domain``, ``licence_note``.
    """
    if path.is_dir() or zipfile.is_zipfile(path):
        raise ImportFailed(f"{path.name}: give the interactions file itself (CSV or JSONL), not a folder or zip")
    encoding = options.get("encoding") or "utf-8"
    delimiter = options.get("delimiter") or ","
    explicit = dict(options.get("map") or {})
    mapping = {role: explicit.get(role, role) for role in ROLES}
    builder = DatasetBuilder(
        format="csv",
        source=str(path),
        domain=options.get("domain") or "other",
        licence_note=options.get("licence_note") or "",
    )

    def attribute_rows(option: str, role: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(where, id, other columns) for each row of the optional items or users file."""
        if not (attribute_path := options.get(option)):
            return
        name = Path(attribute_path).name
        files = FileSet.open(Path(attribute_path), max_bytes=max_bytes)
        columns, records = _records(files, name, encoding=encoding, delimiter=delimiter, progress=progress)
        key = _key(columns, mapping[role], (f"{role}_id", "id"), files.display(name))
        for number, record in records:
            values = {column: value for column, value in record.items() if column != key and value not in ("", None)}
            yield f"{files.display(name)} line {number}", _text(record.get(key)), values

    for where, external_id, values in attribute_rows("items", "item"):
        title = _text(values.pop("title", ""))
        attributes = {column: _attribute(column, value) for column, value in values.items()}
        builder.add_item(external_id, title, attributes, where=where)
    for where, external_id, values in attribute_rows("users", "user"):
        builder.add_user(
            external_id, {column: _attribute(column, value) for column, value in values.items()}, where=where
        )

    files = FileSet.open(path, max_bytes=max_bytes)
    label = files.display(path.name)
    columns, records = _records(files, path.name, encoding=encoding, delimiter=delimiter, progress=progress)
    for role in ROLES:
        required = role in ("user", "item") or role in explicit
        if required and mapping[role] not in columns:
            raise ImportFailed(
                f"{label} line 1: no {role} column {mapping[role]!r} (columns: {', '.join(columns)}); "
                f"map one with --map {role}=COLUMN"
            )
    user_col, item_col = mapping["user"], mapping["item"]
    rating_col = mapping["rating"] if mapping["rating"] in columns else None
    time_col = mapping["timestamp"] if mapping["timestamp"] in columns else None
    if rating_col is None:
        builder.parsed.warnings.append(f"{label} has no rating column: imported as implicit feedback")
    for number, record in records:
        where = f"{label} line {number}"
        rating = record.get(rating_col) if rating_col else None
        timestamp = record.get(time_col) if time_col else None
        builder.add_interaction(
            _text(record.get(user_col)),
            _text(record.get(item_col)),
            None if rating in (None, "") else parse_rating(str(rating), where),
            None if timestamp in (None, "") else parse_timestamp(str(timestamp), where),
            file=label,
            line=number,
        )
    return builder.finish(label)
