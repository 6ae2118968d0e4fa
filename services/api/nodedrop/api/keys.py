"""API key and browser ticket formats.

A key reads ``ndk_<id>_<secret>``: ``id`` (12 hex characters) is the key's
public identity and primary key, ``secret`` 32 random bytes in base64url.
Only sha256(whole key) is stored, so a database leak yields no usable keys;
lookup is by id, then the hashes are compared in constant time.

A ticket reads ``ndt_<id>_<expiry>_<mac>``: an HMAC-SHA256 over the key id
and expiry keyed with the issuing key's stored hash. Any API replica can
check it without shared state, and revoking the key revokes its tickets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "GeneratedKey",
    "ParsedTicket",
    "generate_key",
    "hash_key",
    "key_id_of",
    "make_ticket",
    "parse_ticket",
    "ticket_mac_ok",
]

_KEY_RE = re.compile(r"^ndk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TICKET_RE = re.compile(r"^ndt_([0-9a-f]{12})_(\d{1,12})_([0-9a-f]{64})$")
_PREFIX_CHARS = 12


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    key_id: str
    secret: str
    key_hash: bytes
    # Shown in listings to tell keys apart; reveals nothing of the secret.
    prefix: str


@dataclass(frozen=True, slots=True)
class ParsedTicket:
    key_id: str
    expires_at: int
    mac: str


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def generate_key() -> GeneratedKey:
    key_id = secrets.token_hex(6)
    body = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    secret = f"ndk_{key_id}_{body}"
    return GeneratedKey(key_id, secret, hash_key(secret), secret[: 4 + _PREFIX_CHARS])


def key_id_of(secret: str) -> str | None:
    """The id part of a well-formed key, None for anything else."""
    match = _KEY_RE.match(secret)
    return match[1] if match else None


def _mac(key_hash: bytes, key_id: str, expires_at: int) -> str:
    return hmac.new(key_hash, f"{key_id}.{expires_at}".encode(), hashlib.sha256).hexdigest()


def make_ticket(key_id: str, key_hash: bytes, expires_at: int) -> str:
    return f"ndt_{key_id}_{expires_at}_{_mac(key_hash, key_id, expires_at)}"


def parse_ticket(text: str) -> ParsedTicket | None:
    match = _TICKET_RE.match(text)
    return ParsedTicket(match[1], int(match[2]), match[3]) if match else None


def ticket_mac_ok(ticket: ParsedTicket, key_hash: bytes) -> bool:
    return hmac.compare_digest(ticket.mac, _mac(key_hash, ticket.key_id, ticket.expires_at))
