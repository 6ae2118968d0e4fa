"""The API's Authenticator: API keys and tickets checked against the key table.

Successful lookups are cached for a few seconds (a revoked key keeps working
at most that long) so a busy client costs one database read per key per TTL,
not one per call; an API key that matched its hash is remembered as long as
its key's entry, so its next calls cost one dictionary lookup.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from nodedrop.api.keys import hash_key, key_id_of, parse_ticket, ticket_mac_ok
from nodedrop.api.model import ApiKeyRecord
from nodedrop.api.repository import ExecutionRepository
from nodedrop.common.auth import SCOPE_READ, Principal
from nodedrop.common.errors import Unauthenticated

__all__ = ["Identity", "KeyAuthenticator"]


@dataclass(frozen=True, slots=True)
class Identity:
    principal: Principal
    # Unix time the credential stops being valid; None for API keys.
    expires_at: int | None


class KeyAuthenticator:
    def __init__(
        self, repository: ExecutionRepository, *, ttl_s: float = 5.0, max_entries: int = 10_000
    ) -> None:
        self._repo = repository
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # key id -> (valid until, record, its principal built once).
        self._cache: OrderedDict[str, tuple[float, ApiKeyRecord, Principal]] = OrderedDict()
        # API key that matched its hash -> (valid until, as its key's entry; key
        # id; principal): a busy client's next calls skip the parse and sha256.
        self._verified: dict[str, tuple[float, str, Principal]] = {}

    async def authenticate(self, credential: str) -> Principal:
        hit = self._verified.get(credential)
        if hit is not None and hit[0] > time.monotonic():
            return hit[2]
        return (await self.identify(credential)).principal

    async def identify(self, credential: str) -> Identity:
        if credential.startswith("ndt_"):
            return await self._ticket(credential)
        key_id = key_id_of(credential)
        if key_id is None:
            raise Unauthenticated("invalid API key")
        found = await self._lookup(key_id)
        if found is None or not hmac.compare_digest(found[0].key_hash, hash_key(credential)):
            raise Unauthenticated("invalid API key")
        if len(self._verified) >= self._max_entries:
            del self._verified[next(iter(self._verified))]
        self._verified[credential] = (self._cache[key_id][0], key_id, found[1])
        return Identity(found[1], None)

    async def _ticket(self, credential: str) -> Identity:
        ticket = parse_ticket(credential)
        if ticket is None:
            raise Unauthenticated("invalid ticket")
        if ticket.expires_at <= time.time():
            raise Unauthenticated("ticket expired")
        found = await self._lookup(ticket.key_id)
        if found is None or not ticket_mac_ok(ticket, found[0].key_hash):
            raise Unauthenticated("invalid ticket")
        # Read and subscribe only, whatever the issuing key may do.
        key = found[1]
        principal = Principal(key.tenant_id, frozenset({SCOPE_READ}), key.key_id, ticket=True)
        return Identity(principal, ticket.expires_at)

    async def _lookup(self, key_id: str) -> tuple[ApiKeyRecord, Principal] | None:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        record = await self._repo.get_api_key(key_id)
        if record is None or record.revoked_at is not None:
            self._cache.pop(key_id, None)
            return None
        principal = _principal(record)
        self._cache[key_id] = (now + self._ttl_s, record, principal)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return record, principal

    def forget(self, key_id: str) -> None:
        """Drop a cached key at once (this replica revoked it)."""
        self._cache.pop(key_id, None)
        for credential in [c for c, v in self._verified.items() if v[1] == key_id]:
            del self._verified[credential]


def _principal(record: ApiKeyRecord) -> Principal:
    return Principal(
        tenant_id=record.tenant_id,
        scopes=frozenset(str(s) for s in record.scopes),
        key_id=record.id,
    )
