"""Versioned schema migrations, applied by `nodedrop migrate` and at API start.

Each file `sql/migrations/NNNN_name.sql` is one version, applied once in its
own transaction and recorded in `schema_migrations`. One runner at a time
(two replicas starting at once): a runner holds a transaction-scoped advisory
lock on a second connection for its whole run (``advisory_xact_lock``, which
says why not a session lock); the second waits, then finds every version
applied and does nothing. A runner that dies releases the lock with its
connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from nodedrop.api.repository_pg import advisory_xact_lock

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Migration",
    "MigrationError",
    "applied_versions",
    "apply",
    "available",
]

# An arbitrary constant shared by every nodedrop process: the lock's identity.
MIGRATION_LOCK_KEY = 0x6E6F6465_6D696772 & 0x7FFFFFFFFFFFFFFF
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """A migration file is malformed or failed to apply."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> tuple[Migration, ...]:
    """Every migration shipped with the package, in version order."""
    folder = resources.files("nodedrop.api").joinpath("sql").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file name {entry.name!r} is not NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return tuple(found)


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {int(r["version"]) for r in rows}


async def apply(dsn: str, *, statement_cache_size: int = 100) -> list[int]:
    """Apply every pending migration to the database at `dsn`.

    Returns the versions applied by this call (empty when up to date).
    ``statement_cache_size`` is NODEDROP_PG_STATEMENT_CACHE_SIZE (0 behind a
    transaction-pooling PgBouncer).
    """
    guard = await asyncpg.connect(dsn, statement_cache_size=statement_cache_size)
    try:
        conn = await asyncpg.connect(dsn, statement_cache_size=statement_cache_size)
        try:
            # The lock's transaction cannot be the migrations' own: each
            # version commits on its own, while the lock lasts the whole run.
            async with advisory_xact_lock(guard, MIGRATION_LOCK_KEY, wait=True):
                return await _apply_locked(conn)
        finally:
            await conn.close()
    finally:
        await guard.close()


async def _apply_locked(conn: asyncpg.Connection) -> list[int]:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = await applied_versions(conn)
    applied: list[int] = []
    for migration in available():
        if migration.version in done:
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
        except asyncpg.PostgresError as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        applied.append(migration.version)
    return applied
