"""RecBole atomic files: ``NAME.inter`` plus optional ``NAME.item`` and ``NAME.user``.

Each file is tab-separated with a typed header (``user_id:token	rating:float``). Types:
``token`` (text), ``token_seq`` (space-separated tokens), ``float`` and ``float_seq``.
This covers RecBole's converted MovieLens, Steam, Amazon, MIND and other datasets.
"""

from __future__ import annotations

import re
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

ATOMIC_MEMBERS = re.compile(r"[^/]+\.(inter|item|user|kg|link|net)|README(\.md|\.txt)?")
TYPES = {"token", "token_seq", "float", "float_seq"}
TITLE_FIELDS = ("title", "movie_title", "app_name", "item_name", "name", "product_name")
# RecBole's field names for attributes every later stage reads under one name.
CANONICAL = {"class": "genres", "genre": "genres", "release_year": "year"}
# Tokens that are numbers in every dataset that has them; other tokens (zip codes, ids) stay text.
NUMERIC_TOKENS = {"age", "year"}


def atomic_header(line: str, where: str) -> list[tuple[str, str]]:
    """A typed atomic-file header as (name, type) pairs; a cell that is not NAME:TYPE is refused."""
    columns = []
    for cell in line.split("\t"):
        name, _, kind = cell.strip().partition(":")
        if not name or kind not in TYPES:
            raise ImportFailed(
                f"{where}: header cell {cell!r} is not NAME:TYPE with TYPE one of {', '.join(sorted(TYPES))}"
            )
        columns.append((name, kind))
    return columns


def _typed(name: str, value: str, kind: str, where: str) -> Any:
    if kind == "token":
        return plain_value(value) if name in NUMERIC_TOKENS else value
    if kind == "token_seq":
        return value.split()
    try:
        if kind == "float":
            return float(value)
        return [float(part) for part in value.split()]
    except ValueError:
        raise ImportFailed(f"{where}: {value!r} is not a {kind}") from None


def _rows(
    files: FileSet, name: str, encoding: str, progress: Progress
) -> tuple[list[tuple[str, str]], Iterator[tuple[int, str, list[str]]]]:
    """The typed header of one atomic file and an iterator of its (line, where, cells) rows."""
    label = files.display(name)
    lines = files.lines(name, encoding=encoding, progress=progress)
    number, first = next(lines)
    header = atomic_header(first, f"{label} line {number}")

    def rows() -> Iterator[tuple[int, str, list[str]]]:
        for number, line in lines:
            if not line.strip():
                continue
            cells = line.split("\t")
            where = f"{label} line {number}"
            if len(cells) != len(header):
                raise ImportFailed(f"{where}: expected {len(header)} tab-separated fields, found {len(cells)}")
            yield number, where, cells

    return header, rows()


def _index(header: list[tuple[str, str]], name: str, label: str, role: str) -> int:
    names = [column for column, _ in header]
    if name not in names:
        raise ImportFailed(
            f"{label} line 1: no {role} column {name!r} (columns: {', '.join(names)}); map one with --map {role}=COLUMN"
        )
    return names.index(name)


def _stem(files: FileSet, path: Path) -> str:
    if path.suffix == ".inter" and not files.is_zip:
        return path.stem
    stems = sorted(name[: -len(".inter")] for name in files.names() if name.endswith(".inter"))
    if len(stems) != 1:
        found = ", ".join(files.names()) or "nothing"
        raise ImportFailed(f"{path.name}: expected exactly one .inter file, found {len(stems)} ({found})")
    return stems[0]


def read_recbole(path: Path, *, options: dict[str, Any], progress: Progress, max_bytes: int) -> ParsedDataset:
    """Read RecBole atomic files from a folder, a ``.inter`` file with its siblings, or a zip.

    Options: ``map`` (``user``, ``item``, ``rating``, ``timestamp`` → column names; defaults
    ``user_id``, ``item_id``, ``rating`` if present, ``timestamp`` if present), ``encoding``.
    """
    files = FileSet.open(path, max_bytes=max_bytes, allowed=ATOMIC_MEMBERS)
    stem = _stem(files, path)
    encoding = options.get("encoding") or "utf-8"
    mapping = {"user": "user_id", "item": "item_id"} | dict(options.get("map") or {})
    builder = DatasetBuilder(
        format="recbole",
        source=str(path),
        domain=options.get("domain") or "other",
        licence_note=options.get("licence_note") or "",
    )

    if files.has(f"{stem}.item"):
        label = files.display(f"{stem}.item")
        header, rows = _rows(files, f"{stem}.item", encoding, progress)
        id_at = _index(header, mapping.get("item_key", mapping["item"]), label, "item")
        title_at = next((i for i, (name, _) in enumerate(header) if name in TITLE_FIELDS), None)
        for _, where, cells in rows:
            title = ""
            attributes: dict[str, Any] = {}
            for at, ((name, kind), cell) in enumerate(zip(header, cells, strict=True)):
                if at == id_at or not cell:
                    continue
                if at == title_at:
                    title = cell
                    continue
                name = CANONICAL.get(name, name)
                attributes[name] = _typed(name, cell, kind, where)
            builder.add_item(cells[id_at], title, attributes, where=where)

    if files.has(f"{stem}.user"):
        label = files.display(f"{stem}.user")
        header, rows = _rows(files, f"{stem}.user", encoding, progress)
        id_at = _index(header, mapping.get("user_key", mapping["user"]), label, "user")
        for _, where, cells in rows:
            profile = {
                name: _typed(name, cell, kind, where)
                for at, ((name, kind), cell) in enumerate(zip(header, cells, strict=True))
                if at != id_at and cell
            }
            builder.add_user(cells[id_at], profile, where=where)

    label = files.display(f"{stem}.inter")
    header, rows = _rows(files, f"{stem}.inter", encoding, progress)
    names = [name for name, _ in header]
    rating = mapping.get("rating", "rating" if "rating" in names else None)
    timestamp = mapping.get("timestamp", "timestamp" if "timestamp" in names else None)
    user_at = _index(header, mapping["user"], label, "user")
    item_at = _index(header, mapping["item"], label, "item")
    rating_at = _index(header, rating, label, "rating") if rating else None
    time_at = _index(header, timestamp, label, "timestamp") if timestamp else None
    for number, where, cells in rows:
        builder.add_interaction(
            cells[user_at],
            cells[item_at],
            parse_rating(cells[rating_at], where) if rating_at is not None else None,
            parse_timestamp(cells[time_at], where) if time_at is not None else None,
            file=label,
            line=number,
        )
    return builder.finish(label)
