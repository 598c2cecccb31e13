"""A benchmark's own PostgreSQL database: created at the start, dropped at the end, never
one it did not create."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def create_bench_database(url: str, name: str) -> str:
    """Create database ``name`` on the PostgreSQL server of ``url``; return a URL naming it.

    Refuses (SystemExit) when it already exists: a benchmark only drops what it created.
    """
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"DATABASE_URL: this benchmark runs on SQLite (unset it) or PostgreSQL, not {parts.scheme!r}")
    with psycopg.connect(url, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            raise SystemExit(
                f"database {name!r} already exists on {parts.hostname or 'the server'}; "
                "drop it yourself or choose another server (this benchmark drops only what it created)"
            )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_bench_database(url: str, name: str) -> None:
    """Close Django's connections and drop database ``name`` from the server of ``url``."""
    import psycopg
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def bench_django(name: str, database: str, log: Callable[[str], None]) -> Iterator[Path]:
    """Django set up and migrated for benchmark ``name`` in a fresh temporary folder (the
    ``XREC_VAR_DIR``: SQLite file, cache, secret key, broker folder), on SQLite there or, when
    ``DATABASE_URL`` names a PostgreSQL server, on a new database ``database`` there. Yields the
    folder; afterwards drops the database it created and removes the folder."""
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f"xrec-bench-{name}-")).resolve()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrec_site.settings")
    # Before django.setup(): the settings read these.
    os.environ["XREC_VAR_DIR"] = str(work / "var")
    server_url = os.environ.get("DATABASE_URL") or None
    created = False
    try:
        if server_url:
            os.environ["DATABASE_URL"] = create_bench_database(server_url, database)
            created = True
            log(f"created database {database!r} on the server of DATABASE_URL")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield work
    finally:
        if created and server_url:
            drop_bench_database(server_url, database)
            log(f"dropped database {database!r}")
        shutil.rmtree(work, ignore_errors=True)
        log(f"total {time.perf_counter() - started:.1f} s; removed {work}")
