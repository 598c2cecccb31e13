"""What every importer shares: reading files safely, parsing values, and collecting rows.

Readers never touch the database. They return a ``ParsedDataset`` of plain values or
raise ``ImportFailed`` with a message that names the file and, where there is one, the line.
"""

from __future__ import annotations

import codecs
import math
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

Progress = Callable[[str, int, int], None]
PROGRESS_EVERY_LINES = 20_000


def no_progress(phase: str, done: int, total: int) -> None:
    return None


class ImportFailed(Exception):
    """Bad input. The message is meant for the person who supplied the files."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ImportFailed(f"unknown encoding {encoding!r}") from None


@dataclass
class FileSet:
    """The files of one import: a folder, a single file's folder, or a zip archive.

    Names are relative (``u.data``). A zip may hold its files under one top folder, as the
    GroupLens downloads do. ``allowed`` names what a zip may contain; anything else, and any
    absolute or ``..`` member name, is refused before a byte is read.
    """

    root: Path
    max_bytes: int
    members: dict[str, str] = field(default_factory=dict)  # name -> zip member name
    archive: zipfile.ZipFile | None = None

    @classmethod
    def open(cls, path: Path, *, max_bytes: int, allowed: re.Pattern[str] | None = None) -> FileSet:
        if not path.exists():
            raise ImportFailed(f"{path}: no such file or folder")
        if path.is_dir():
            return cls(root=path, max_bytes=max_bytes)
        if not zipfile.is_zipfile(path):
            return cls(root=path.parent, max_bytes=max_bytes)
        _check_size(path.name, path.stat().st_size, max_bytes)
        archive = zipfile.ZipFile(path)
        members: dict[str, str] = {}
        infos = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not info.filename.startswith("__MACOSX/")
            and PurePosixPath(info.filename).name != ".DS_Store"
        ]
        tops = {PurePosixPath(info.filename).parts[0] for info in infos if "/" in info.filename}
        prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in i.filename for i in infos) else ""
        for info in infos:
            raw = info.filename
            if raw.startswith("/") or ".." in PurePosixPath(raw).parts or "\\" in raw:
                raise ImportFailed(f"{path.name}: unsafe member name {raw!r}")
            name = raw[len(prefix) :]
            if allowed is not None and not allowed.fullmatch(name):
                raise ImportFailed(f"{path.name}: unexpected member {raw!r}")
            _check_size(f"{path.name}:{raw}", info.file_size, max_bytes)
            members[name] = raw
        return cls(root=path, max_bytes=max_bytes, members=members, archive=archive)

    @property
    def is_zip(self) -> bool:
        return self.archive is not None

    def names(self) -> list[str]:
        if self.archive is not None:
            return sorted(self.members)
        return sorted(p.name for p in self.root.iterdir() if p.is_file())

    def has(self, name: str) -> bool:
        if self.archive is not None:
            return name in self.members
        return (self.root / name).is_file()

    def display(self, name: str) -> str:
        return f"{self.root.name}:{name}" if self.archive is not None else name

    def size(self, name: str) -> int:
        if self.archive is not None:
            return self.archive.getinfo(self.members[name]).file_size
        return (self.root / name).stat().st_size

    def lines(
        self, name: str, *, encoding: str, progress: Progress = no_progress, phase: str = ""
    ) -> Iterator[tuple[int, str]]:
        """Yield ``(line number, text without line ending)``; decoding errors name the line."""
        if not self.has(name):
            raise ImportFailed(f"{self.display(name)}: file is missing")
        total = self.size(name)
        label = self.display(name)
        _check_size(label, total, self.max_bytes)
        if total == 0:
            raise ImportFailed(f"{label}: file is empty")
        codec = check_encoding(encoding)
        phase = phase or f"reading {label}"
        stream = self.archive.open(self.members[name]) if self.archive is not None else (self.root / name).open("rb")
        done = 0
        with stream:
            for number, raw in enumerate(stream, 1):
                done += len(raw)
                if done > self.max_bytes:  # a zip member may lie about its size
                    _check_size(label, done, self.max_bytes)
                try:
                    text = raw.decode(codec)
                except UnicodeDecodeError as exc:
                    raise ImportFailed(
                        f"{label} line {number}: not valid {codec} (byte {raw[exc.start]:#04x} at "
                        f"column {exc.start + 1}); give the file's encoding, e.g. --encoding latin-1"
                    ) from None
                if number % PROGRESS_EVERY_LINES == 0:
                    progress(phase, done, total)
                yield number, text.rstrip("\r\n")
        progress(phase, total, total)


def _check_size(label: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ImportFailed(
            f"{label}: {human_bytes(size)} is over the import limit of {human_bytes(max_bytes)} (XREC_IMPORT_MAX_BYTES)"
        )


# --- values -------------------------------------------------------------------------------


def parse_rating(value: str, where: str) -> float:
    try:
        rating = float(value)
    except ValueError:
        raise ImportFailed(f"{where}: rating {value!r} is not a number") from None
    if not math.isfinite(rating):
        raise ImportFailed(f"{where}: rating {value!r} is not a finite number")
    return rating


def parse_timestamp(value: str, where: str) -> int | None:
    """Seconds since the epoch from epoch seconds (int or float) or an ISO 8601 date."""
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return int(number)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ImportFailed(
            f"{where}: timestamp {value!r} is neither seconds since the epoch nor an ISO 8601 date"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


# No leading zeros: "02139" is a code (a zip code, an id), not the number 2139.
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?")


def plain_value(value: str) -> Any:
    """A text attribute as JSON: integers and decimals become numbers, the rest stays text."""
    if _NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    return value


_YEAR_SUFFIX = re.compile(r"^(?P<title>.*\S)\s+\((?P<year>\d{4})\)$")


def split_title_year(title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` → ``("Toy Story", 1995)``, as MovieLens writes its titles."""
    match = _YEAR_SUFFIX.match(title.strip())
    if match is None:
        return title.strip(), None
    return match["title"], int(match["year"])


# --- rows ---------------------------------------------------------------------------------


@dataclass
class ParsedDataset:
    """Everything an importer read, as plain values, ready to be written in one transaction."""

    format: str
    source: str
    domain: str = "other"
    licence_note: str = ""
    items: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    interactions: list[tuple[str, str, float | None, int | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_implicit(self) -> bool:
        return all(row[2] is None for row in self.interactions)


class DatasetBuilder:
    """Collects rows while refusing duplicates; ``finish`` fills in what the files imply."""

    def __init__(self, *, format: str, source: str, domain: str = "other", licence_note: str = ""):
        self.parsed = ParsedDataset(format=format, source=source, domain=domain, licence_note=licence_note)
        self._item_lines: dict[str, str] = {}
        self._user_lines: dict[str, str] = {}
        # (user, item, timestamp) -> line number of its first occurrence.
        self._seen: dict[tuple[str, str, int | None], int] = {}

    def add_item(self, external_id: str, title: str, attributes: dict[str, Any], *, where: str) -> None:
        if not external_id:
            raise ImportFailed(f"{where}: empty item id")
        if external_id in self._item_lines:
            raise ImportFailed(f"{where}: item {external_id!r} already given at {self._item_lines[external_id]}")
        self._item_lines[external_id] = where
        self.parsed.items[external_id] = (title[:500], attributes)

    def add_user(self, external_id: str, profile: dict[str, Any], *, where: str) -> None:
        if not external_id:
            raise ImportFailed(f"{where}: empty user id")
        if external_id in self._user_lines:
            raise ImportFailed(f"{where}: user {external_id!r} already given at {self._user_lines[external_id]}")
        self._user_lines[external_id] = where
        self.parsed.users[external_id] = profile

    def add_interaction(
        self, user: str, item: str, rating: float | None, timestamp: int | None, *, file: str, line: int
    ) -> None:
        if not user or not item:
            raise ImportFailed(f"{file} line {line}: empty {'user' if not user else 'item'} id")
        key = (user, item, timestamp)
        first = self._seen.setdefault(key, line)
        if first != line:
            when = "no timestamp" if timestamp is None else f"timestamp {timestamp}"
            raise ImportFailed(f"{file} line {line}: duplicate of line {first} (user {user!r}, item {item!r}, {when})")
        self.parsed.interactions.append((user, item, rating, timestamp))

    def finish(self, interactions_file: str) -> ParsedDataset:
        parsed = self.parsed
        if not parsed.interactions:
            raise ImportFailed(f"{interactions_file}: no interactions (the file has no data rows)")
        missing_items = {row[1] for row in parsed.interactions} - parsed.items.keys()
        missing_users = {row[0] for row in parsed.interactions} - parsed.users.keys()
        for external_id in sorted(missing_items):
            parsed.items[external_id] = (external_id, {})
        for external_id in sorted(missing_users):
            parsed.users[external_id] = {}
        if missing_items and self._item_lines:
            parsed.warnings.append(f"{len(missing_items)} items have interactions but no attributes")
        if missing_users and self._user_lines:
            parsed.warnings.append(f"{len(missing_users)} users have interactions but no profile")
        return parsed
