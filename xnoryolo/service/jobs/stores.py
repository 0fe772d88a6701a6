"""The job store a `jobs.store` setting names: "sqlite" (the embedded default, in the data dir)
or a PostgreSQL URL, shared by the API and any number of `xnoryolo worker` processes."""

from __future__ import annotations

from .layout import DataLayout
from .store import JobStore


def is_shared(spec: str) -> bool:
    """Whether the store is a database server that several processes share."""
    return spec.startswith(("postgresql://", "postgres://"))


def open_store(spec: str, layout: DataLayout) -> JobStore:
    if is_shared(spec):
        from .pg_store import PostgresJobStore  # psycopg is only needed for a shared store

        return PostgresJobStore(spec)
    from .sqlite_store import SqliteJobStore

    return SqliteJobStore(layout.db)
