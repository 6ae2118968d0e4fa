"""``nodedrop migrate``: apply the API's PostgreSQL migrations (DATABASE_URL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from nodedrop.common.settings import PostgresSettings, SettingsError, process_env

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nodedrop.api import migrations  # noqa: PLC0415

    try:
        settings = PostgresSettings.from_env(process_env())
    except SettingsError as exc:
        print(f"nodedrop: {exc}", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(
            migrations.apply(settings.url, statement_cache_size=settings.statement_cache_size)
        )
    except (OSError, migrations.MigrationError) as exc:
        print(f"nodedrop migrate: {exc}", file=sys.stderr)
        return 1
    if applied:
        print("applied migrations: " + ", ".join(f"{v:04d}" for v in applied))
    else:
        print("database is up to date")
    return 0
