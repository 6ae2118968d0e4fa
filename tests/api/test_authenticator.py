"""KeyAuthenticator: API keys checked against the key table, cached briefly."""

from __future__ import annotations

import pytest

from nodedrop.api.authenticator import KeyAuthenticator
from nodedrop.api.keys import generate_key
from nodedrop.api.model import Scope
from nodedrop.api.provisioning import create_key
from nodedrop.api.repository_sqlite import SqliteRepository
from nodedrop.common.errors import Unauthenticated


async def test_a_remembered_key_still_refuses_other_secrets_and_forgets_on_revoke(
    sqlite_repo: SqliteRepository,
) -> None:
    auth = KeyAuthenticator(sqlite_repo, ttl_s=60.0)
    key, record = await create_key(sqlite_repo, "tenant-a", "ci", [Scope.EXECUTE])
    for _ in range(2):
        assert (await auth.authenticate(key.secret)).tenant_id == "tenant-a"
    # Same key id, another secret: refused though the key id is cached.
    forged = f"ndk_{key.key_id}_{generate_key().secret.rsplit('_', 1)[1]}"
    with pytest.raises(Unauthenticated):
        await auth.authenticate(forged)
    await sqlite_repo.revoke_api_key(record.id, record.tenant_id)
    # Within the TTL a revoked key keeps working on this replica, unless this
    # replica revoked it.
    assert (await auth.authenticate(key.secret)).tenant_id == "tenant-a"
    auth.forget(record.id)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(key.secret)


async def test_a_revoked_key_is_refused_once_its_entry_expires(
    sqlite_repo: SqliteRepository,
) -> None:
    auth = KeyAuthenticator(sqlite_repo, ttl_s=0.0)
    key, record = await create_key(sqlite_repo, "tenant-a", "ci", [Scope.EXECUTE])
    assert (await auth.authenticate(key.secret)).tenant_id == "tenant-a"
    await sqlite_repo.revoke_api_key(record.id, record.tenant_id)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(key.secret)
