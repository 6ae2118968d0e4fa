"""The service credential: how one nodedrop service proves itself to another.

A deployment shares one secret token between its services
(``NODEDROP_SERVICE_TOKEN``, or ``NODEDROP_SERVICE_TOKEN_FILE`` naming a
mounted secret). Clients send it as ``authorization: Bearer <token>`` on the
internal methods (the scheduler's and the worker's services, the API's
``AuthService.Authenticate``); servers accept it and, during a rotation, the
tokens in ``NODEDROP_SERVICE_TOKEN_PREVIOUS`` (or ``..._PREVIOUS_FILE``), so
a fleet can move from one token to the next without a moment where one
replica refuses another (docs/operations.md, "Service credentials").

With mutual TLS (``nodedrop.common.tls``) a client certificate issued by the
deployment's CA to one of the service names proves the same thing.

What the caller becomes is ``SERVICE_PRINCIPAL``: no tenant and no tenant
scopes, so it can call nothing a tenant can, and no tenant key can call
what it can.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodedrop.common.auth import SCOPE_SERVICE, Principal, parse_bearer
from nodedrop.common.errors import PermissionDenied, Unauthenticated
from nodedrop.common.settings import Env, SettingsError, env_str

__all__ = [
    "PREVIOUS_FILE_VAR",
    "PREVIOUS_VAR",
    "SERVICE_PRINCIPAL",
    "TOKEN_FILE_VAR",
    "TOKEN_VAR",
    "ServiceCredential",
    "ServiceVerifier",
]

TOKEN_VAR = "NODEDROP_SERVICE_TOKEN"
TOKEN_FILE_VAR = "NODEDROP_SERVICE_TOKEN_FILE"
PREVIOUS_VAR = "NODEDROP_SERVICE_TOKEN_PREVIOUS"
PREVIOUS_FILE_VAR = "NODEDROP_SERVICE_TOKEN_PREVIOUS_FILE"

# A guessable token is no credential; 16 characters of a random token is
# what `openssl rand -hex 8` gives, the least the docs suggest is 32.
MIN_TOKEN_CHARS = 16
# Tenant credentials' prefixes: a service token that looked like one would
# be refused as a tenant key, and could be mistaken for one in a log.
_TENANT_PREFIXES = ("ndk_", "ndt_")

SERVICE_PRINCIPAL = Principal(tenant_id="", scopes=frozenset({SCOPE_SERVICE}), key_id="service")


def _digest(token: str) -> bytes:
    # Compared as digests: equal lengths, so compare_digest's time does not
    # depend on the length of the token either.
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class ServiceCredential:
    """The token this process sends, and every token it accepts."""

    token: str | None
    # sha256 of the token and of each previous one; never the tokens themselves.
    accepted: tuple[bytes, ...] = field(repr=False, default=())

    @property
    def configured(self) -> bool:
        return self.token is not None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What a client adds to an internal call; empty without a token (mTLS alone)."""
        if self.token is None:
            return ()
        return (("authorization", f"Bearer {self.token}"),)

    def __repr__(self) -> str:
        return f"ServiceCredential(configured={self.configured}, accepted={len(self.accepted)})"

    @classmethod
    def from_env(cls, env: Env) -> ServiceCredential:
        token = _one_token(env, TOKEN_VAR, TOKEN_FILE_VAR)
        previous = _many_tokens(env, PREVIOUS_VAR, PREVIOUS_FILE_VAR)
        if token is None and previous:
            raise SettingsError(
                TOKEN_VAR, "", f"a token: {PREVIOUS_VAR} is only accepted alongside one"
            )
        tokens = ([] if token is None else [token]) + [p for p in previous if p != token]
        return cls(token=token, accepted=tuple(_digest(t) for t in tokens))

    @classmethod
    def of(cls, token: str, *previous: str) -> ServiceCredential:
        """A credential for one token (`nodedrop dev`, tests)."""
        for name, value in ((TOKEN_VAR, token), *((PREVIOUS_VAR, p) for p in previous)):
            _check_token(name, value)
        return cls(token=token, accepted=tuple(_digest(t) for t in (token, *previous)))


def _check_token(name: str, token: str) -> None:
    # The value is never echoed: it is a secret, even when it is a bad one.
    if len(token) < MIN_TOKEN_CHARS:
        raise SettingsError(name, "<hidden>", f"at least {MIN_TOKEN_CHARS} characters")
    if token.startswith(_TENANT_PREFIXES):
        raise SettingsError(name, "<hidden>", "a token that does not start with ndk_ or ndt_")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise SettingsError(name, "<hidden>", "no whitespace or control characters")


def _read_file(file_var: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SettingsError(file_var, path, f"a readable file ({exc.strerror})") from None


def _one_token(env: Env, var: str, file_var: str) -> str | None:
    value = env_str(env, var, "")
    path = env_str(env, file_var, "")
    if value and path:
        raise SettingsError(file_var, path, f"unset when {var} is set (one source only)")
    if path:
        value = _read_file(file_var, path).strip()
        if not value:
            raise SettingsError(file_var, path, "a file holding the token")
        _check_token(file_var, value)
        return value
    if not value:
        return None
    _check_token(var, value)
    return value


def _many_tokens(env: Env, var: str, file_var: str) -> list[str]:
    # Comma- or line-separated, so both an env list and a mounted file work.
    value = env_str(env, var, "")
    path = env_str(env, file_var, "")
    if value and path:
        raise SettingsError(file_var, path, f"unset when {var} is set (one source only)")
    name = var
    if path:
        value, name = _read_file(file_var, path), file_var
    tokens = [t.strip() for t in value.replace("\n", ",").split(",") if t.strip()]
    for t in tokens:
        _check_token(name, t)
    return tokens


class ServiceVerifier:
    """The server side: is the caller of an internal method a nodedrop service?

    ``service_names`` (mutual TLS only): common names of client certificates
    that count as services; the TLS layer already checked they were issued by
    the deployment's CA.
    """

    def __init__(
        self, accepted: Sequence[bytes], service_names: frozenset[str] = frozenset()
    ) -> None:
        self._accepted = tuple(accepted)
        self._names = service_names

    def verify(self, header: str | bytes | None, context: Any) -> Principal:
        if self._names and _peer_common_name(context) in self._names:
            return SERVICE_PRINCIPAL
        if header is None:
            raise Unauthenticated(
                "this method is for nodedrop services: missing service credential"
            )
        if isinstance(header, bytes):
            header = header.decode(errors="replace")
        credential = parse_bearer(header)
        digest = _digest(credential)
        matched = False
        # Every accepted token is compared, matched or not: the time taken
        # says nothing about which one (or whether a previous one) matched.
        for accepted in self._accepted:
            matched |= hmac.compare_digest(digest, accepted)
        if matched:
            return SERVICE_PRINCIPAL
        if credential.startswith(_TENANT_PREFIXES):
            raise PermissionDenied(
                "this method is for nodedrop services; API keys and tickets cannot call it"
            )
        raise Unauthenticated("invalid service credential")


def _peer_common_name(context: Any) -> str | None:
    auth = context.auth_context() or {}
    names = auth.get("x509_common_name") or ()
    for name in names:
        return name.decode() if isinstance(name, bytes) else str(name)
    return None
