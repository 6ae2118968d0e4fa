"""``nodedrop apikeys create|list|revoke``: straight to PostgreSQL (DATABASE_URL),
so the very first key can be made before any key exists."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from nodedrop.common.settings import PostgresSettings, SettingsError, process_env

__all__ = ["register"]

_SCOPES = ("read", "execute", "admin")
# Granted only when asked for: it reaches every tenant's queue administration.
_ALL_SCOPES = (*_SCOPES, "operator")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("apikeys", help="manage API keys (direct to DATABASE_URL)")
    sub = parser.add_subparsers(title="apikeys commands", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", required=True, help="tenant id (created if new)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="append",
        choices=_ALL_SCOPES,
        help="repeatable; default: read, execute and admin (operator only when named)",
    )
    create.set_defaults(func=_create)
    listing = sub.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("--tenant", help="only this tenant")
    listing.set_defaults(func=_list)
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_revoke)


async def _repo() -> Any:
    from nodedrop.api import migrations  # noqa: PLC0415
    from nodedrop.api.repository_pg import PostgresRepository  # noqa: PLC0415

    settings = PostgresSettings.from_env(process_env())
    cache = settings.statement_cache_size
    await migrations.apply(settings.url, statement_cache_size=cache)
    return await PostgresRepository.connect(
        settings.url, min_size=1, max_size=2, statement_cache_size=cache
    )


def _guard(fn: Any, args: argparse.Namespace) -> int:
    from nodedrop.common.errors import NodedropError  # noqa: PLC0415

    try:
        return int(asyncio.run(fn(args)))
    except SettingsError as exc:
        print(f"nodedrop: {exc}", file=sys.stderr)
        return 2
    except (OSError, NodedropError) as exc:
        print(f"nodedrop apikeys: {exc}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace) -> int:
    async def run(a: argparse.Namespace) -> int:
        from nodedrop.api.model import Scope  # noqa: PLC0415
        from nodedrop.api.provisioning import create_key  # noqa: PLC0415

        repo = await _repo()
        try:
            scopes = [Scope(s) for s in (a.scope or _SCOPES)]
            key, record = await create_key(repo, a.tenant, a.name, scopes)
        finally:
            await repo.close()
        print(f"id:     {record.id}\ntenant: {record.tenant_id}\nscopes: {','.join(scopes)}")
        print(f"key:    {key.secret}\n(store it now: it is not shown again)")
        return 0

    return _guard(run, args)


def _list(args: argparse.Namespace) -> int:
    async def run(a: argparse.Namespace) -> int:
        repo = await _repo()
        try:
            keys = await repo.list_api_keys(a.tenant)
        finally:
            await repo.close()
        print(f"{'ID':14} {'TENANT':20} {'NAME':20} {'SCOPES':22} {'PREFIX':18} STATE")
        for k in keys:
            state = "revoked" if k.revoked_at else "active"
            scopes = ",".join(k.scopes)
            print(f"{k.id:14} {k.tenant_id:20} {k.name:20} {scopes:22} {k.prefix:18} {state}")
        return 0

    return _guard(run, args)


def _revoke(args: argparse.Namespace) -> int:
    async def run(a: argparse.Namespace) -> int:
        repo = await _repo()
        try:
            record = await repo.revoke_api_key(a.key_id, None)
        finally:
            await repo.close()
        if record is None:
            print(f"nodedrop apikeys: no key {a.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {record.id} (tenant {record.tenant_id})")
        return 0

    return _guard(run, args)
