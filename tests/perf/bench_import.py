"""Benchmark: importing MovieLens-100K and a MovieLens-1M-sized dataset, against ``bulk_create``.

Run as ``python -m tests.perf.bench_import``. It sets Django up on its own database: a SQLite
file under a fresh temporary folder (``var/`` is never touched), or, when ``DATABASE_URL``
names a PostgreSQL server, a database ``xrec_bench`` that it creates there and drops at the
end. It refuses to start if ``xrec_bench`` already exists, so it never drops a database it
did not create.

Figures, on the last line as one JSON object:

- ``ml100k_seconds``: ``dataset_import_files`` of the MovieLens-100K copy in the recbole wheel.
- ``ml1m_seconds``: ``dataset_import_files`` of synthetic GroupLens ML-1M files (1,000,209
  ratings, 6,040 users, 3,706 movies, seeded, skewed item popularity).
- ``fast_write_seconds`` / ``orm_write_seconds``: writing the same parsed ML-1M data with
  ``dataset_import`` and with the naive ``bulk_create`` route; ``write_speedup`` is their ratio.
- ``peak_rss_mb``: the process's peak resident memory over the whole run (the ORM baseline,
  which holds a million model instances, dominates it); ``import_peak_rss_mb``: the peak
  before the baseline starts, i.e. what our own import path needed.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from bisect import bisect_left
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from tests.perf.database import bench_django
from tests.perf.machine import describe_machine as describe_host

if TYPE_CHECKING:
    from recommendations.importers import ParsedDataset
    from recommendations.importers.base import Progress
    from recommendations.models import Dataset

SEED = 20_240_501
BENCH_DATABASE = "xrec_bench"
ML100K_GOAL_SECONDS = 10.0
ML1M_GOAL_SECONDS = 60.0
# Django caps this further on SQLite (999 parameters a statement), as a naive caller would get.
ORM_BATCH_SIZE = 10_000

# The shape of the real MovieLens-1M.
ML1M_RATINGS = 1_000_209
ML1M_USERS = 6_040
ML1M_MOVIES = 3_706
ML1M_MAX_MOVIE_ID = 3_952
ML1M_MIN_PER_USER = 20
ML1M_MAX_PER_USER = 2_314
ML1M_FIRST_TIMESTAMP = 956_703_932
ML1M_LAST_TIMESTAMP = 1_046_454_590
# Zipf-Mandelbrot popularity, weight (rank + 100) ** -1.2: a flat head and a long tail, near
# the real ML-1M (most rated movie ~3,400 ratings, median ~120) without replacement.
ZIPF_OFFSET = 100
ZIPF_EXPONENT = 1.2
# Share of each star rating in the real ML-1M.
ML1M_STAR_WEIGHTS = [0.056, 0.108, 0.261, 0.349, 0.226]
ML1M_AGES = [1, 18, 25, 35, 45, 50, 56]
ML1M_GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
# Latin-1 on purpose: GroupLens ships ML-1M in Latin-1 and the importer must decode it.
TITLE_WORDS = [
    "Night", "City", "Love", "Return", "Dark", "Last", "Story", "Man", "Woman", "Dead", "Blue", "Summer",
    "King", "Secret", "River", "House", "War", "Dream", "Café", "Amélie", "Niño", "Mädchen", "Garçon",
    "Été", "Señor", "Fräulein", "Hôtel", "Île", "Crème", "Noël",
]  # fmt: skip
ARTICLES = ["The", "A", "An", "La", "Le", "Les", "Die", "El"]


def log(message: str) -> None:
    print(f"[bench_import] {message}", flush=True)


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


# --- synthetic MovieLens-1M files ------------------------------------------------------------


def _user_counts(rng: random.Random) -> list[int]:
    """Ratings per user: at least 20, long-tailed (median near 100), summing to ML1M_RATINGS."""
    extra = [rng.lognormvariate(4.33, 1.14) for _ in range(ML1M_USERS)]
    budget = ML1M_RATINGS - ML1M_MIN_PER_USER * ML1M_USERS
    scale = budget / sum(extra)
    cap = ML1M_MAX_PER_USER - ML1M_MIN_PER_USER
    counts = [ML1M_MIN_PER_USER + min(cap, int(value * scale)) for value in extra]
    # Flooring and the cap leave a shortfall; hand it out one rating at a time.
    while (missing := ML1M_RATINGS - sum(counts)) > 0:
        open_users = [user for user, count in enumerate(counts) if count < ML1M_MAX_PER_USER]
        for user in rng.sample(open_users, min(missing, len(open_users))):
            counts[user] += 1
    return counts


def _title(rng: random.Random) -> str:
    words = " ".join(rng.choice(TITLE_WORDS) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.15:  # GroupLens moves articles to the end: "Usual Suspects, The"
        words = f"{words}, {rng.choice(ARTICLES)}"
    if rng.random() < 0.05:  # and gives foreign titles a second, parenthesised one
        words = f"{words} ({rng.choice(TITLE_WORDS)} {rng.choice(TITLE_WORDS)})"
    return f"{words} ({rng.randint(1919, 2000)})"


def write_ml1m_files(folder: Path, *, seed: int = SEED) -> None:
    """Write ``ratings.dat``, ``movies.dat`` and ``users.dat`` shaped like GroupLens ML-1M.

    Deterministic for a seed. Every (user, movie) pair is unique; movie popularity follows a
    Zipf-Mandelbrot law over a shuffled id order; every user rates at least 20 movies.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    movie_ids = sorted(rng.sample(range(1, ML1M_MAX_MOVIE_ID + 1), ML1M_MOVIES))
    by_popularity = movie_ids[:]
    rng.shuffle(by_popularity)
    cumulative = list(accumulate((rank + ZIPF_OFFSET) ** -ZIPF_EXPONENT for rank in range(1, ML1M_MOVIES + 1)))
    total_weight = cumulative[-1]

    lines: list[str] = []
    for user_id, count in enumerate(_user_counts(rng), 1):
        # Weighted sampling without replacement by rejection: cheap because even the
        # heaviest user leaves most of the popularity mass unrated.
        chosen: dict[int, None] = {}
        while len(chosen) < count:
            rank = bisect_left(cumulative, rng.random() * total_weight)
            chosen.setdefault(by_popularity[min(rank, ML1M_MOVIES - 1)])
        first = rng.randint(ML1M_FIRST_TIMESTAMP, ML1M_LAST_TIMESTAMP)
        last = min(ML1M_LAST_TIMESTAMP, first + int(rng.expovariate(1 / (90 * 86_400))))
        stars = rng.choices(range(1, 6), weights=ML1M_STAR_WEIGHTS, k=count)
        for movie_id, star in zip(chosen, stars, strict=True):
            lines.append(f"{user_id}::{movie_id}::{star}::{rng.randint(first, last)}\n")
    with (folder / "ratings.dat").open("w", encoding="latin-1", newline="") as out:
        out.writelines(lines)

    with (folder / "movies.dat").open("w", encoding="latin-1", newline="") as out:
        for movie_id in movie_ids:
            genres = "|".join(rng.sample(ML1M_GENRES, rng.choice([1, 1, 2, 2, 3])))
            out.write(f"{movie_id}::{_title(rng)}::{genres}\n")

    with (folder / "users.dat").open("w", encoding="latin-1", newline="") as out:
        for user_id in range(1, ML1M_USERS + 1):
            gender = "M" if rng.random() < 0.72 else "F"
            age, occupation, zip_code = rng.choice(ML1M_AGES), rng.randint(0, 20), f"{rng.randint(0, 99_999):05d}"
            out.write(f"{user_id}::{gender}::{age}::{occupation}::{zip_code}\n")


# --- the naive baseline ----------------------------------------------------------------------


def orm_write(*, parsed: ParsedDataset, name: str) -> Dataset:
    """Write ``parsed`` the way one would without ``recommendations.shared.bulk``: model instances
    and ``bulk_create``, in one transaction, mapping external ids to pks by querying back."""
    from django.db import transaction

    from recommendations.models import Dataset, DatasetUser, Interaction, Item

    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=name,
            import_format=parsed.format,
            domain=parsed.domain,
            n_users=len(parsed.users),
            n_items=len(parsed.items),
            n_interactions=len(parsed.interactions),
        )
        Item.objects.bulk_create(
            [
                Item(dataset=dataset, external_id=external_id, title=title, attributes=attributes)
                for external_id, (title, attributes) in parsed.items.items()
            ],
            batch_size=ORM_BATCH_SIZE,
        )
        DatasetUser.objects.bulk_create(
            [
                DatasetUser(dataset=dataset, external_id=external_id, profile=profile)
                for external_id, profile in parsed.users.items()
            ],
            batch_size=ORM_BATCH_SIZE,
        )
        item_ids = dict(Item.objects.filter(dataset=dataset).values_list("external_id", "pk"))
        user_ids = dict(DatasetUser.objects.filter(dataset=dataset).values_list("external_id", "pk"))
        Interaction.objects.bulk_create(
            [
                Interaction(
                    dataset=dataset, user_id=user_ids[user], item_id=item_ids[item], rating=rating, timestamp=timestamp
                )
                for user, item, rating, timestamp in parsed.interactions
            ],
            batch_size=ORM_BATCH_SIZE,
        )
    return dataset


# --- database set-up -------------------------------------------------------------------------


def describe_machine() -> str:
    from django.db import connection

    version = ".".join(map(str, connection.get_database_version()))
    return f"{describe_host()}, {connection.vendor} {version}"


# --- the benchmark ---------------------------------------------------------------------------


def _phase_logger(label: str) -> Progress:
    started, last = time.perf_counter(), ""

    def report(phase: str, done: int, total: int) -> None:
        nonlocal last
        if phase != last:
            last = phase
            log(f"  {label} +{time.perf_counter() - started:.1f}s: {phase}")

    return report


def measure(work: Path) -> dict[str, float]:
    from recommendations import importers
    from recommendations.models import Interaction
    from recommendations.services import dataset_import, dataset_import_files

    figures: dict[str, float] = {}

    log("importing MovieLens-100K from the recbole wheel")
    started = time.perf_counter()
    result = dataset_import_files(format="movielens-100k", path=None, name="ml100k", progress=_phase_logger("ml100k"))
    figures["ml100k_seconds"] = time.perf_counter() - started
    dataset = result.dataset
    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == (943, 1_682, 100_000), dataset.__dict__
    log(f"ml100k: {figures['ml100k_seconds']:.2f} s")

    folder = work / "ml-1m"
    log(f"writing synthetic MovieLens-1M files to {folder}")
    generated = time.perf_counter()
    write_ml1m_files(folder)
    sizes = ", ".join(f"{path.name} {path.stat().st_size / 1024**2:.1f} MB" for path in sorted(folder.iterdir()))
    log(f"generated in {time.perf_counter() - generated:.1f} s ({sizes})")

    log("importing the ML-1M files")
    started = time.perf_counter()
    result = dataset_import_files(format="movielens-1m", path=folder, name="ml1m", progress=_phase_logger("ml1m"))
    figures["ml1m_seconds"] = time.perf_counter() - started
    dataset = result.dataset
    expected = (ML1M_USERS, ML1M_MOVIES, ML1M_RATINGS)
    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == expected, dataset.__dict__
    assert not result.warnings, result.warnings
    log(f"ml1m: {figures['ml1m_seconds']:.2f} s")

    log("parsing the ML-1M files once for the write comparison")
    parsed = importers.read("movielens-1m", folder)

    log("writing with dataset_import (ours)")
    started = time.perf_counter()
    fast = dataset_import(parsed=parsed, name="ml1m-fast")
    figures["fast_write_seconds"] = time.perf_counter() - started
    log(f"fast write: {figures['fast_write_seconds']:.2f} s")
    figures["import_peak_rss_mb"] = peak_rss_mb()

    # Written after ours, into tables one dataset bigger; every new key lands at the right
    # edge of the indexes, so the extra rows cost the baseline next to nothing.
    log(f"writing with bulk_create(batch_size={ORM_BATCH_SIZE:,}) (baseline)")
    started = time.perf_counter()
    orm = orm_write(parsed=parsed, name="ml1m-orm")
    figures["orm_write_seconds"] = time.perf_counter() - started
    log(f"orm write: {figures['orm_write_seconds']:.2f} s")

    for written in (fast, orm):
        count = Interaction.objects.filter(dataset=written).count()
        assert count == ML1M_RATINGS, f"{written.name}: {count} interactions"
    figures["write_speedup"] = figures["orm_write_seconds"] / figures["fast_write_seconds"]
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def main() -> None:
    with bench_django("import", BENCH_DATABASE, log) as work:
        machine = describe_machine()
        log(f"machine: {machine}; temporary folder {work}")
        figures = measure(work)

    for label, key, goal in (
        ("ML-100K", "ml100k_seconds", ML100K_GOAL_SECONDS),
        ("ML-1M-sized", "ml1m_seconds", ML1M_GOAL_SECONDS),
    ):
        verdict = "met" if figures[key] < goal else "NOT met"
        log(f"goal {label} under {goal:.0f} s: {verdict} ({figures[key]:.2f} s)")
    order = ["ml100k_seconds", "ml1m_seconds", "fast_write_seconds", "orm_write_seconds", "write_speedup"]
    order += ["peak_rss_mb", "import_peak_rss_mb"]
    rounded = {key: round(figures[key], 2) for key in order}
    print(json.dumps({"bench": "import", "figures": rounded, "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
