"""Recommendation lists computed elsewhere (RecBole's LightGCN or SASRec, a production system),
read and checked before anything is written.

Three layouts, told apart by their first line:

- CSV with a header naming ``user``, ``item`` and ``rank`` and/or ``score`` (other columns are
  ignored);
- JSON Lines, one object per line with the same keys;
- RecBole's top-K as an atomic file: a typed, tab-separated header ``user_id:token
  item_id_list:token_seq`` (optionally ``score_list:float_seq``), one user per line with their
  items best first, as ``full_sort_topk`` gives them once its ids are mapped back to tokens.

Order within a user's list: by ``rank`` when given (ranks must run 1..n with no repeat), else by
``score`` descending, ties in file order. Every problem names its line; nothing here touches
Django, so the caller writes only what passed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from recommendations.importers import ImportFailed
from recommendations.importers.recbole import atomic_header
from recommendations.importers.tabular import jsonl_records

ROLES = ("user", "item", "rank", "score")


@dataclass
class RankedList:
    """One user's list, best first; ``line`` is where the user first appears."""

    user: str
    line: int
    items: list[str] = field(default_factory=list)
    item_lines: list[int] = field(default_factory=list)
    scores: list[float] | None = None


@dataclass(frozen=True)
class ExternalLists:
    layout: str  # "csv", "jsonl" or "recbole"
    lists: list[RankedList]
    n_rows: int  # user-item pairs read
    scored: bool  # whether the file gave scores (else they are 1/rank)


@dataclass
class _Row:
    line: int
    user: str
    item: str
    rank: int | None
    score: float | None


def read_lists(data: bytes, *, name: str) -> ExternalLists:
    """Parse ``data`` (the whole file) into ranked lists. Raises ImportFailed naming the line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{name}: not UTF-8 text (byte {exc.start})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise ImportFailed(f"{name}: the file is empty")
    if first.lstrip().startswith("{"):
        layout, rows = "jsonl", list(_jsonl_rows(text, name))
        return _ranked(layout, rows, name)
    if ":token" in first.split("\t")[0]:
        return _recbole_lists(text, name)
    return _ranked("csv", list(_csv_rows(text, name)), name)


def _number(value: object, role: str, where: str) -> int | float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ImportFailed(f"{where}: {role} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ImportFailed(f"{where}: {role} {value!r} is not a finite number")
    if role == "rank":
        if not number.is_integer() or number < 1:
            raise ImportFailed(f"{where}: rank {value!r} is not a whole number of at least 1")
        return int(number)
    return number


def _row(line: int, values: dict[str, object], where: str) -> _Row:
    user, item = str(values.get("user") or "").strip(), str(values.get("item") or "").strip()
    if not user or not item:
        raise ImportFailed(f"{where}: a user and an item are needed")
    rank = _number(values.get("rank"), "rank", where)
    score = _number(values.get("score"), "score", where)
    return _Row(line, user, item, None if rank is None else int(rank), None if score is None else float(score))


def _csv_rows(text: str, name: str) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [column.strip() for column in reader.fieldnames or []]
    missing = [role for role in ("user", "item") if role not in columns]
    if missing or not {"rank", "score"} & set(columns):
        raise ImportFailed(
            f"{name} line 1: the header needs user, item and rank or score (found: {', '.join(columns) or 'nothing'})"
        )
    reader.fieldnames = columns
    for values in reader:
        line = reader.line_num
        yield _row(line, {role: values.get(role) for role in ROLES}, f"{name} line {line}")


def _jsonl_rows(text: str, name: str) -> Iterator[_Row]:
    _, records = jsonl_records(name, enumerate(text.splitlines(), 1))
    for line, values in records:
        where = f"{name} line {line}"
        if "rank" not in values and "score" not in values:
            raise ImportFailed(f"{where}: a rank or a score is needed")
        yield _row(line, values, where)


def _ranked(layout: str, rows: list[_Row], name: str) -> ExternalLists:
    if not rows:
        raise ImportFailed(f"{name}: no recommendations in the file")
    by_user: dict[str, list[_Row]] = {}
    for row in rows:
        by_user.setdefault(row.user, []).append(row)
    lists = []
    for user, user_rows in by_user.items():
        lists.append(_one_list(user, user_rows, name))
    scored = all(row.score is not None for row in rows)
    return ExternalLists(layout, lists, len(rows), scored)


def _one_list(user: str, rows: list[_Row], name: str) -> RankedList:
    seen: dict[str, int] = {}
    for row in rows:
        if row.item in seen:
            raise ImportFailed(
                f"{name} line {row.line}: user {user!r} already has item {row.item!r} (line {seen[row.item]})"
            )
        seen[row.item] = row.line
    ranked = [row for row in rows if row.rank is not None]
    if ranked and len(ranked) != len(rows):
        unranked = next(row for row in rows if row.rank is None)
        raise ImportFailed(f"{name} line {unranked.line}: user {user!r} has ranks on other lines but none here")
    if ranked:
        lines_of: dict[int, int] = {}
        for row in rows:
            assert row.rank is not None
            if row.rank in lines_of:
                raise ImportFailed(
                    f"{name} line {row.line}: user {user!r} has rank {row.rank} twice (line {lines_of[row.rank]})"
                )
            lines_of[row.rank] = row.line
        if max(lines_of) != len(rows):
            gap = min(set(range(1, len(rows) + 1)) - set(lines_of))
            raise ImportFailed(
                f"{name} line {rows[0].line}: user {user!r}'s ranks must run 1..{len(rows)}; {gap} is missing"
            )
        ordered = sorted(rows, key=lambda row: row.rank or 0)
    else:
        if any(row.score is None for row in rows):
            missing = next(row for row in rows if row.score is None)
            raise ImportFailed(f"{name} line {missing.line}: user {user!r} needs a rank or a score here")
        ordered = sorted(rows, key=lambda row: -(row.score or 0.0))  # stable: ties keep file order
    scores = None if any(row.score is None for row in ordered) else [float(row.score or 0.0) for row in ordered]
    return RankedList(
        user,
        rows[0].line,
        [row.item for row in ordered],
        [row.line for row in ordered],
        scores,
    )


def _recbole_lists(text: str, name: str) -> ExternalLists:
    lines = text.splitlines()
    header = atomic_header(lines[0], f"{name} line 1")
    columns = {column: at for at, (column, _) in enumerate(header)}
    if "user_id" not in columns or "item_id_list" not in columns:
        raise ImportFailed(
            f"{name} line 1: a RecBole top-K file needs user_id:token and item_id_list:token_seq columns"
        )
    score_at = columns.get("score_list")
    lists: list[RankedList] = []
    users: dict[str, int] = {}
    n_rows = 0
    for line, raw in enumerate(lines[1:], 2):
        if not raw.strip():
            continue
        cells = raw.split("\t")
        where = f"{name} line {line}"
        if len(cells) != len(header):
            raise ImportFailed(f"{where}: expected {len(header)} tab-separated fields, found {len(cells)}")
        user = cells[columns["user_id"]].strip()
        items = cells[columns["item_id_list"]].split()
        if not user or not items:
            raise ImportFailed(f"{where}: a user and at least one item are needed")
        if user in users:
            raise ImportFailed(f"{where}: user {user!r} already has a list (line {users[user]})")
        users[user] = line
        scores = None
        if score_at is not None:
            scores = [float(_number(value, "score", where) or 0.0) for value in cells[score_at].split()]
            if len(scores) != len(items):
                raise ImportFailed(f"{where}: {len(items)} items but {len(scores)} scores")
        rows = [
            _Row(line, user, item, rank, None if scores is None else scores[rank - 1])
            for rank, item in enumerate(items, 1)
        ]
        lists.append(_one_list(user, rows, name))
        n_rows += len(items)
    if not lists:
        raise ImportFailed(f"{name}: no recommendations in the file")
    return ExternalLists("recbole", lists, n_rows, score_at is not None)
