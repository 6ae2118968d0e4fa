"""Mutual TLS for every gRPC server and channel.

With ``NODEDROP_TLS_CERT``, ``NODEDROP_TLS_KEY`` and ``NODEDROP_TLS_CA`` set
(paths to PEM files), every server listens with TLS and requires a client
certificate issued by the CA, and every channel presents the process's own
certificate and checks the server's against the CA. A client without a
certificate does not get past the handshake.

A verified client certificate whose common name is one of
``NODEDROP_TLS_SERVICE_NAMES`` counts as a nodedrop service on the internal
methods, as the service token does (``nodedrop.common.service_auth``);
other certificates (a CLI user's, say) only open the connection, and their
calls still need an API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc

from nodedrop.common.settings import Env, SettingsError, env_str

__all__ = [
    "CA_VAR",
    "CERT_VAR",
    "DEFAULT_SERVICE_NAMES",
    "KEY_VAR",
    "SERVER_NAME_VAR",
    "SERVICE_NAMES_VAR",
    "TlsSettings",
]

CERT_VAR = "NODEDROP_TLS_CERT"
KEY_VAR = "NODEDROP_TLS_KEY"
CA_VAR = "NODEDROP_TLS_CA"
SERVICE_NAMES_VAR = "NODEDROP_TLS_SERVICE_NAMES"
SERVER_NAME_VAR = "NODEDROP_TLS_SERVER_NAME"

DEFAULT_SERVICE_NAMES = (
    "nodedrop-api,nodedrop-scheduler,nodedrop-worker,nodedrop-events,nodedrop-gateway"
)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The PEM contents, read once at start; ``key`` never shows in a repr."""

    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    ca: bytes = field(repr=False)
    service_names: frozenset[str]
    # The name checked in servers' certificates instead of the dialled host.
    server_name: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> TlsSettings | None:
        paths = {var: env_str(env, var, "") for var in (CERT_VAR, KEY_VAR, CA_VAR)}
        given = [var for var, path in paths.items() if path]
        if not given:
            return None
        missing = [var for var, path in paths.items() if not path]
        if missing:
            raise SettingsError(
                missing[0],
                "",
                f"a PEM file path: {', '.join(given)} set, mutual TLS needs all three",
            )
        names = frozenset(
            n.strip()
            for n in env_str(env, SERVICE_NAMES_VAR, DEFAULT_SERVICE_NAMES).split(",")
            if n.strip()
        )
        return cls(
            cert=_pem(CERT_VAR, paths[CERT_VAR], b"CERTIFICATE"),
            key=_pem(KEY_VAR, paths[KEY_VAR], b"PRIVATE KEY"),
            ca=_pem(CA_VAR, paths[CA_VAR], b"CERTIFICATE"),
            service_names=names,
            server_name=env_str(env, SERVER_NAME_VAR, "") or None,
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel_options(self) -> list[tuple[str, str]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]

    def __repr__(self) -> str:
        return f"TlsSettings(service_names={sorted(self.service_names)})"


def _pem(var: str, path: str, kind: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(var, path, f"a readable PEM file ({exc.strerror})") from None
    # "PRIVATE KEY" also matches "RSA PRIVATE KEY" and "EC PRIVATE KEY".
    if b"-----BEGIN " not in data or kind not in data:
        raise SettingsError(var, path, f"a PEM file holding a {kind.decode().lower()}")
    return data
