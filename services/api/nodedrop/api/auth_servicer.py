"""AuthService: authenticate credentials, issue tickets, manage API keys."""

from __future__ import annotations

import time

from nodedrop.api.authenticator import KeyAuthenticator
from nodedrop.api.checks import Violations, reject_nul
from nodedrop.api.convert import SCOPE_FROM_PROTO, api_key
from nodedrop.api.errors import StoreUnavailableError
from nodedrop.api.keys import generate_key, make_ticket
from nodedrop.api.model import Scope
from nodedrop.api.repository import ExecutionRepository
from nodedrop.auth.v1 import auth_service_pb2 as pb
from nodedrop.auth.v1 import auth_service_pb2_grpc
from nodedrop.common.auth import SCOPE_ADMIN, SCOPE_OPERATOR, SCOPE_READ, require_scope
from nodedrop.common.errors import NotFound, PermissionDenied, Unauthenticated, Unavailable

__all__ = ["DEFAULT_TICKET_TTL_S", "MAX_TICKET_TTL_S", "AuthServicer"]

DEFAULT_TICKET_TTL_S = 60
MAX_TICKET_TTL_S = 3600
_SCOPE_TO_PROTO = {str(k): v for v, k in SCOPE_FROM_PROTO.items()}


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        repository: ExecutionRepository,
        authenticator: KeyAuthenticator,
        *,
        ticket_ttl_s: int = DEFAULT_TICKET_TTL_S,
        max_ticket_ttl_s: int = MAX_TICKET_TTL_S,
    ) -> None:
        self._repo = repository
        self._auth = authenticator
        self._ticket_ttl_s = ticket_ttl_s
        self._max_ticket_ttl_s = max(max_ticket_ttl_s, ticket_ttl_s)

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: object
    ) -> pb.AuthenticateResponse:
        if not request.credential:
            raise Unauthenticated("credential is empty")
        try:
            identity = await self._auth.identify(request.credential)
        except StoreUnavailableError as exc:
            raise Unavailable(f"the key store is unavailable: {exc.message}") from exc
        principal = identity.principal
        response = pb.AuthenticateResponse(
            tenant_id=principal.tenant_id,
            scopes=sorted(_SCOPE_TO_PROTO[s] for s in principal.scopes if s in _SCOPE_TO_PROTO),
            key_id=principal.key_id,
        )
        if identity.expires_at is not None:
            response.expire_time.seconds = identity.expires_at
        return response

    async def IssueTicket(
        self, request: pb.IssueTicketRequest, context: object
    ) -> pb.IssueTicketResponse:
        principal = require_scope(SCOPE_READ)
        if principal.ticket:
            # A ticket renews only through the key that issued it.
            raise PermissionDenied("a ticket cannot issue tickets; use an API key")
        v = Violations()
        ttl = self._ticket_ttl_s
        if request.HasField("ttl"):
            seconds = request.ttl.seconds + request.ttl.nanos / 1e9
            if seconds < 0 or seconds > self._max_ticket_ttl_s:
                v.add("ttl", f"must be 0..{self._max_ticket_ttl_s} seconds")
            elif seconds > 0:
                ttl = max(1, int(seconds))
        v.raise_if_any()
        record = await self._repo.get_api_key(principal.key_id)
        if record is None or record.revoked_at is not None:
            raise Unauthenticated("the key was revoked")
        expires_at = int(time.time()) + ttl
        response = pb.IssueTicketResponse(
            ticket=make_ticket(record.id, record.key_hash, expires_at)
        )
        response.expire_time.seconds = expires_at
        return response

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: object
    ) -> pb.CreateApiKeyResponse:
        principal = require_scope(SCOPE_ADMIN)
        reject_nul(request)
        v = Violations()
        name = request.name.strip()
        if not name:
            v.add("name", "required")
        elif len(name) > 200:
            v.add("name", "at most 200 characters")
        scopes: list[Scope] = []
        if not request.scopes:
            v.add("scopes", "at least one scope")
        for i, s in enumerate(request.scopes):
            if s not in SCOPE_FROM_PROTO:
                v.add(f"scopes[{i}]", f"unknown scope {s}")
            elif SCOPE_FROM_PROTO[s] not in scopes:
                scopes.append(SCOPE_FROM_PROTO[s])
        v.raise_if_any()
        if Scope.OPERATOR in scopes and not principal.has_scope(SCOPE_OPERATOR):
            # Operator reaches every tenant: a tenant's admin cannot grant it.
            raise PermissionDenied("only a key with the 'operator' scope can grant it")
        key = generate_key()
        record = await self._repo.insert_api_key(
            key.key_id,
            principal.tenant_id,
            name=name,
            key_hash=key.key_hash,
            scopes=scopes,
            prefix=key.prefix,
        )
        return pb.CreateApiKeyResponse(secret=key.secret, api_key=api_key(record))

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: object
    ) -> pb.ListApiKeysResponse:
        principal = require_scope(SCOPE_ADMIN)
        records = await self._repo.list_api_keys(principal.tenant_id)
        return pb.ListApiKeysResponse(api_keys=[api_key(r) for r in records])

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: object
    ) -> pb.RevokeApiKeyResponse:
        principal = require_scope(SCOPE_ADMIN)
        v = Violations()
        if not request.api_key_id:
            v.add("api_key_id", "required")
        v.raise_if_any()
        record = await self._repo.revoke_api_key(request.api_key_id, principal.tenant_id)
        if record is None:
            raise NotFound(f"API key {request.api_key_id!r} not found")
        self._auth.forget(record.id)
        return pb.RevokeApiKeyResponse(api_key=api_key(record))
