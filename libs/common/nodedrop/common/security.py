"""A process's peer security: the service credential and mutual TLS, together.

Every service's settings carry one ``SecuritySettings``: ``GrpcServer``
takes its verifier and server credentials from it, and the service's own
channels (``open_channel``) and internal calls their TLS and token.

Closed by default: a service run as its own process refuses to start
without either (``require_service_identity``), and a server with neither
refuses every call to an internal method.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.service_auth import (
    TOKEN_FILE_VAR,
    TOKEN_VAR,
    ServiceCredential,
    ServiceVerifier,
)
from nodedrop.common.settings import Env, SettingsError
from nodedrop.common.tls import CA_VAR, CERT_VAR, KEY_VAR, TlsSettings

__all__ = [
    "NO_SECURITY",
    "MissingServiceIdentity",
    "SecuritySettings",
    "require_service_identity",
]


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    credential: ServiceCredential
    tls: TlsSettings | None

    @property
    def configured(self) -> bool:
        """Whether this process can prove it is a service, and check that others are."""
        return self.credential.configured or self.tls is not None

    def verifier(self) -> ServiceVerifier:
        names = self.tls.service_names if self.tls is not None else frozenset()
        return ServiceVerifier(self.credential.accepted, names)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of an internal call this process makes."""
        return self.credential.metadata()

    @classmethod
    def from_env(cls, env: Env) -> SecuritySettings:
        return cls(credential=ServiceCredential.from_env(env), tls=TlsSettings.from_env(env))


NO_SECURITY = SecuritySettings(ServiceCredential(None), None)


class MissingServiceIdentity(SettingsError):
    """A service would start with nothing to tell other services from strangers."""

    def __init__(self, service: str) -> None:
        ValueError.__init__(
            self,
            f"the {service} service needs a service credential: set {TOKEN_VAR} "
            f"(or {TOKEN_FILE_VAR}), or {CERT_VAR}, {KEY_VAR} and {CA_VAR} for mutual TLS",
        )
        self.name = TOKEN_VAR
        self.value = ""
        self.expected = "a service token"


def require_service_identity(security: SecuritySettings, service: str) -> None:
    if not security.configured:
        raise MissingServiceIdentity(service)
