"""Who is calling: the principal of the current RPC, and how it is resolved.

The server's auth interceptor reads ``authorization: Bearer <credential>``,
asks the service's ``Authenticator`` for a ``Principal`` and sets it in a
contextvar for the handler. The API authenticates against its own key table;
the events service and the gateway use ``RemoteAuthenticator``, which asks the
API's AuthService and caches answers briefly.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Protocol

import grpc

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.errors import PermissionDenied, Unauthenticated, Unavailable
from nodedrop.common.settings import DEFAULT_AUTH_CACHE_TTL_S

__all__ = [
    "DEFAULT_AUTH_CACHE_TTL_S",
    "SCOPE_ADMIN",
    "SCOPE_EXECUTE",
    "SCOPE_OPERATOR",
    "SCOPE_READ",
    "SCOPE_SERVICE",
    "Authenticator",
    "Principal",
    "RemoteAuthenticator",
    "bearer_metadata",
    "current_credential",
    "current_principal",
    "parse_bearer",
    "require_scope",
    "reset_principal",
    "set_principal",
]

SCOPE_READ = "read"
SCOPE_EXECUTE = "execute"
SCOPE_ADMIN = "admin"
# The deployment's own operators: the queue administration of every tenant.
SCOPE_OPERATOR = "operator"
# A nodedrop service (nodedrop.common.service_auth), never a key's scope.
SCOPE_SERVICE = "service"

_SCOPE_NAMES = {
    auth_service_pb2.SCOPE_READ: SCOPE_READ,
    auth_service_pb2.SCOPE_EXECUTE: SCOPE_EXECUTE,
    auth_service_pb2.SCOPE_ADMIN: SCOPE_ADMIN,
    auth_service_pb2.SCOPE_OPERATOR: SCOPE_OPERATOR,
}
# What admin implies; not operator, which reaches beyond the key's tenant.
_TENANT_SCOPES = frozenset({SCOPE_READ, SCOPE_EXECUTE, SCOPE_ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    scopes: frozenset[str]
    key_id: str
    # A browser ticket: it reads and subscribes for its tenant and nothing
    # else, whatever the scopes of the key that issued it.
    ticket: bool = False

    def has_scope(self, scope: str) -> bool:
        if self.ticket:
            return scope == SCOPE_READ
        # Admin implies every other scope of its tenant.
        return scope in self.scopes or (SCOPE_ADMIN in self.scopes and scope in _TENANT_SCOPES)


@dataclass(frozen=True, slots=True)
class _Caller:
    principal: Principal
    # Kept so a service can pass the caller's credential downstream unchanged.
    credential: str


_caller: ContextVar[_Caller | None] = ContextVar("nodedrop_caller", default=None)


def current_principal() -> Principal:
    caller = _caller.get()
    if caller is None:
        raise Unauthenticated("missing credentials")
    return caller.principal


def current_credential() -> str | None:
    caller = _caller.get()
    return None if caller is None else caller.credential


def set_principal(principal: Principal, credential: str) -> Token[_Caller | None]:
    return _caller.set(_Caller(principal, credential))


def reset_principal(token: Token[_Caller | None]) -> None:
    _caller.reset(token)


def require_scope(scope: str) -> Principal:
    principal = current_principal()
    if not principal.has_scope(scope):
        raise PermissionDenied(f"this call needs the {scope!r} scope")
    return principal


def parse_bearer(value: str) -> str:
    scheme, _, credential = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <api key>'")
    return credential.strip()


def bearer_metadata(credential: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {credential}"),)


class Authenticator(Protocol):
    async def authenticate(self, credential: str) -> Principal:
        """The principal for a credential; raises Unauthenticated when it is not valid."""
        ...


class RemoteAuthenticator:
    """Authenticates through the API's AuthService, with a short TTL cache.

    Only successes are cached: a revoked key stays usable for at most ``ttl_s``,
    and a key created a moment ago is never refused from a stale entry.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S,
        max_entries: int = 10_000,
        timeout_s: float = 2.0,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        """``metadata``: this service's credential; Authenticate is an internal method."""
        self._stub = auth_service_pb2_grpc.AuthServiceStub(channel)
        self._metadata = tuple(metadata) or None
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._timeout_s = timeout_s
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        # One outstanding call per credential, so a burst of subscribers with
        # the same key costs the API one request.
        self._pending: dict[str, asyncio.Future[Principal]] = {}

    async def authenticate(self, credential: str) -> Principal:
        now = time.monotonic()
        hit = self._cache.get(credential)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(credential)
            return hit[1]
        pending = self._pending.get(credential)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._pending[credential] = future
        try:
            principal, expires_at = await self._call(credential)
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; consume it so asyncio does not warn.
            future.exception()
            raise
        else:
            future.set_result(principal)
            self._remember(credential, principal, expires_at)
            return principal
        finally:
            del self._pending[credential]

    async def _call(self, credential: str) -> tuple[Principal, float | None]:
        try:
            response = await self._stub.Authenticate(
                auth_service_pb2.AuthenticateRequest(credential=credential),
                timeout=self._timeout_s,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated(exc.details() or "invalid credentials") from None
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                # The API refused this service, not the caller's credential:
                # a misconfigured deployment, reported as an outage.
                raise Unavailable("the credential service refused this service") from exc
            raise Unavailable("the credential service is unavailable") from exc
        scopes = frozenset(_SCOPE_NAMES[s] for s in response.scopes if s in _SCOPE_NAMES)
        if not response.tenant_id:
            raise Unauthenticated("invalid credentials")
        # Only tickets expire (AuthenticateResponse.expire_time).
        ticket = response.HasField("expire_time")
        principal = Principal(
            tenant_id=response.tenant_id,
            scopes=frozenset({SCOPE_READ}) if ticket else scopes,
            key_id=response.key_id,
            ticket=ticket,
        )
        expires_at = None
        if ticket:
            # A ticket must not outlive its expiry through the cache.
            expire = response.expire_time
            remaining = expire.seconds + expire.nanos / 1e9 - time.time()
            expires_at = time.monotonic() + remaining
        return principal, expires_at

    def _remember(self, credential: str, principal: Principal, expires_at: float | None) -> None:
        deadline = time.monotonic() + self._ttl_s
        if expires_at is not None:
            deadline = min(deadline, expires_at)
        self._cache[credential] = (deadline, principal)
        self._cache.move_to_end(credential)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
