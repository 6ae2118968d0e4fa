"""Where the client finds the services and what it sends them.

The same variables as every other part of the system: NODEDROP_API_ADDR
(default 127.0.0.1:50051), NODEDROP_EVENTS_ADDR (127.0.0.1:50053),
NODEDROP_API_KEY, and NODEDROP_TLS_CERT, NODEDROP_TLS_KEY, NODEDROP_TLS_CA for
mutual TLS. Read once, when a client is made without explicit values.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import (
    DEFAULT_API_ADDR,
    DEFAULT_EVENTS_ADDR,
    Env,
    env_addr,
    env_str,
    process_env,
)
from nodedrop.common.tls import TlsSettings

__all__ = ["ClientConfig"]


@dataclass(frozen=True, slots=True)
class ClientConfig:
    api_address: str = DEFAULT_API_ADDR
    events_address: str = DEFAULT_EVENTS_ADDR
    api_key: str = ""
    tls: TlsSettings | None = None

    @classmethod
    def from_env(cls, env: Env | None = None) -> ClientConfig:
        """Raises ``nodedrop.common.settings.SettingsError`` naming a bad variable."""
        env = process_env() if env is None else env
        return cls(
            api_address=env_addr(env, "NODEDROP_API_ADDR", DEFAULT_API_ADDR).target,
            events_address=env_addr(env, "NODEDROP_EVENTS_ADDR", DEFAULT_EVENTS_ADDR).target,
            api_key=env_str(env, "NODEDROP_API_KEY", ""),
            tls=TlsSettings.from_env(env),
        )
