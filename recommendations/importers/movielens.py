"""GroupLens MovieLens-100K (``u.data``, ``u.item``, ``u.user``) and -1M (``*.dat``) files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
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
    split_title_year,
)

LICENCE = (
    "MovieLens data (GroupLens Research, University of Minnesota): research use only, "
    "no redistribution, cite Harper & Konstan, ACM TiiS 2015."
)

ML100K_MEMBERS = re.compile(
    r"u\.(data|item|user|genre|info|occupation)|README|allbut\.pl|mku\.sh|u[1-5]\.(base|test)|u[ab]\.(base|test)"
)
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]  # fmt: skip

ML1M_MEMBERS = re.compile(r"(ratings|movies|users)\.dat|README")
ML1M_AGES = {
    1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+",
}  # fmt: skip
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip


def _fields(line: str, sep: str, count: int, where: str) -> list[str]:
    parts = line.split(sep)
    if len(parts) != count:
        raise ImportFailed(f"{where}: expected {count} fields separated by {sep!r}, found {len(parts)}")
    return parts


def _records(
    files: FileSet, name: str, sep: str, count: int, *, encoding: str, progress: Progress
) -> Iterator[tuple[int, str, list[str]]]:
    """Yield ``(line number, where, fields)`` for each non-blank line of a GroupLens file."""
    label = files.display(name)
    for number, line in files.lines(name, encoding=encoding, progress=progress):
        if line.strip():
            where = f"{label} line {number}"
            yield number, where, _fields(line, sep, count, where)


def _int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ImportFailed(f"{where}: {what} {value!r} is not a whole number") from None


def read_ml100k(path: Path, *, options: dict[str, Any], progress: Progress, max_bytes: int) -> ParsedDataset:
    """Read a GroupLens ``ml-100k`` folder or zip. ``u.data`` and ``u.item`` are required."""
    files = FileSet.open(path, max_bytes=max_bytes, allowed=ML100K_MEMBERS)
    encoding = options.get("encoding") or "latin-1"  # GroupLens ships these files in Latin-1
    builder = DatasetBuilder(format="movielens-100k", source=str(path), domain="movies", licence_note=LICENCE)
    for required in ("u.data", "u.item"):
        if not files.has(required):
            raise ImportFailed(f"{path.name}: no {required} (found: {', '.join(files.names()) or 'nothing'})")

    records = partial(_records, files, encoding=encoding, progress=progress)
    genres = ML100K_GENRES
    if files.has("u.genre"):
        named = {_int(index, "genre index", where): name for _, where, (name, index) in records("u.genre", "|", 2)}
        genres = [named[i] for i in sorted(named)]

    for _, where, parts in records("u.item", "|", 5 + len(genres)):
        title, year = split_title_year(parts[1])
        if year is None and parts[2][-4:].isdigit():
            year = int(parts[2][-4:])
        attributes: dict[str, Any] = {
            "genres": [name for name, flag in zip(genres, parts[5:], strict=True) if flag == "1"]
        }
        if year is not None:
            attributes["year"] = year
        if parts[2]:
            attributes["release_date"] = parts[2]
        if parts[4]:
            attributes["imdb_url"] = parts[4]
        builder.add_item(parts[0], title, attributes, where=where)

    if files.has("u.user"):
        for _, where, (user_id, age, gender, occupation, zip_code) in records("u.user", "|", 5):
            profile = {"age": _int(age, "age", where), "gender": gender, "occupation": occupation}
            builder.add_user(user_id, profile | {"zip_code": zip_code}, where=where)

    label = files.display("u.data")
    for number, where, (user_id, item_id, rating, timestamp) in records("u.data", "\t", 4):
        builder.add_interaction(
            user_id, item_id, parse_rating(rating, where), parse_timestamp(timestamp, where),
            file=label, line=number,
        )  # fmt: skip
    return builder.finish(label)


def read_ml1m(path: Path, *, options: dict[str, Any], progress: Progress, max_bytes: int) -> ParsedDataset:
    """Read a GroupLens ``ml-1m`` folder or zip. ``ratings.dat`` is required."""
    files = FileSet.open(path, max_bytes=max_bytes, allowed=ML1M_MEMBERS)
    encoding = options.get("encoding") or "latin-1"
    builder = DatasetBuilder(format="movielens-1m", source=str(path), domain="movies", licence_note=LICENCE)
    if not files.has("ratings.dat"):
        raise ImportFailed(f"{path.name}: no ratings.dat (found: {', '.join(files.names()) or 'nothing'})")

    records = partial(_records, files, encoding=encoding, progress=progress)
    if files.has("movies.dat"):
        for _, where, (movie_id, raw_title, genres) in records("movies.dat", "::", 3):
            title, year = split_title_year(raw_title)
            attributes: dict[str, Any] = {"genres": [g for g in genres.split("|") if g]}
            if year is not None:
                attributes["year"] = year
            builder.add_item(movie_id, title, attributes, where=where)

    if files.has("users.dat"):
        for _, where, (user_id, gender, age, occupation, zip_code) in records("users.dat", "::", 5):
            age_code = _int(age, "age", where)
            occupation_code = _int(occupation, "occupation", where)
            if age_code not in ML1M_AGES or not 0 <= occupation_code < len(ML1M_OCCUPATIONS):
                raise ImportFailed(f"{where}: unknown age code {age!r} or occupation code {occupation!r}")
            profile = {
                "age": age_code,
                "age_group": ML1M_AGES[age_code],
                "gender": gender,
                "occupation": ML1M_OCCUPATIONS[occupation_code],
                "zip_code": zip_code,
            }
            builder.add_user(user_id, profile, where=where)

    label = files.display("ratings.dat")
    for number, where, (user_id, movie_id, rating, timestamp) in records("ratings.dat", "::", 4):
        builder.add_interaction(
            user_id, movie_id, parse_rating(rating, where), parse_timestamp(timestamp, where),
            file=label, line=number,
        )  # fmt: skip
    return builder.finish(label)
