"""Tenants and keys made outside the RPCs: the CLI's first key, `nodedrop dev`."""

from __future__ import annotations

from collections.abc import Sequence

from nodedrop.api.keys import GeneratedKey, generate_key, hash_key, key_id_of
from nodedrop.api.model import ApiKeyRecord, Scope
from nodedrop.api.repository import ExecutionRepository

__all__ = ["DEV_TENANT", "create_key", "ensure_dev_key"]

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


async def ensure_dev_key(repo: ExecutionRepository, secret: str | None) -> str:
    """Registers `secret` for the development tenant (or makes a new key); returns the key."""
    await repo.ensure_tenant(DEV_TENANT, "development")
    if secret is None:
        key, _ = await create_key(repo, DEV_TENANT, "dev", ALL_SCOPES)
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
