"""Tenants and keys made outside the RPCs: the CLI's first key, `nodedrop dev`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from nodedrop.api.keys import GeneratedKey, generate_key, hash_key, key_id_of
from nodedrop.api.model import ApiKeyRecord, Scope
from nodedrop.api.repository import ExecutionRepository

__all__ = ["DEV_TENANT", "create_key", "dev_key_file", "ensure_dev_key"]

DEV_TENANT = "dev"
ALL_SCOPES = (Scope.READ, Scope.EXECUTE, Scope.ADMIN)


async def create_key(
    repo: ExecutionRepository, tenant_id: str, name: str, scopes: Sequence[Scope]
) -> tuple[GeneratedKey, ApiKeyRecord]:
    await repo.ensure_tenant(tenant_id, tenant_id)
    key = generate_key()
    record = await repo.insert_api_key(
        key.key_id, tenant_id, name=name, key_hash=key.key_hash, scopes=scopes, prefix=key.prefix
    )
    return key, record


def dev_key_file(sqlite_path: str) -> Path:
    """Where `nodedrop dev` remembers its key: beside its embedded store's file."""
    return Path(sqlite_path).with_suffix(".key")


async def ensure_dev_key(
    repo: ExecutionRepository, secret: str | None, remembered: Path | None = None
) -> str:
    """Registers `secret` for the development tenant and returns it.

    Without one, the key kept in `remembered` is used again (registered anew if
    the store was reset); only when there is none, or it no longer fits the
    store, is a new key made and written there: a restart keeps the key the
    user exported.
    """
    await repo.ensure_tenant(DEV_TENANT, "development")
    if secret is None and remembered is not None:
        kept = _read_key(remembered)
        if kept is not None and not await _revoked(repo, kept):
            with contextlib.suppress(ValueError):
                return await ensure_dev_key(repo, kept)
    if secret is None:
        key, _ = await create_key(repo, DEV_TENANT, "dev", ALL_SCOPES)
        if remembered is not None:
            _write_key(remembered, key.secret)
        return key.secret
    key_id = key_id_of(secret)
    if key_id is None:
        raise ValueError("NODEDROP_API_KEY must look like ndk_<12 hex>_<43 base64url characters>")
    existing = await repo.get_api_key(key_id)
    if existing is None:
        await repo.insert_api_key(
            key_id,
            DEV_TENANT,
            name="dev",
            key_hash=hash_key(secret),
            scopes=ALL_SCOPES,
            prefix=secret[:16],
        )
    elif existing.key_hash != hash_key(secret):
        raise ValueError(f"NODEDROP_API_KEY: key id {key_id} exists with another secret")
    return secret


async def _revoked(repo: ExecutionRepository, secret: str) -> bool:
    key_id = key_id_of(secret)
    record = await repo.get_api_key(key_id) if key_id is not None else None
    return record is not None and record.revoked_at is not None


def _read_key(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def _write_key(path: Path, secret: str) -> None:
    # Readable by its owner only: it is a credential of the development tenant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
