"""A benchmark's own PostgreSQL database: created at the start, dropped at the end, never
one it did not create."""

from __future__ import annotations

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
