"""Which addresses http_request may reach.

Every address a host name resolves to is checked, after DNS, on every redirect
hop, and the request then goes to the checked address (not to a second DNS
answer), so DNS rebinding cannot slip a private address past the check.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata endpoints are refused even though some are link-local anyway, so the
# refusal does not depend on how the standard library classifies them.
_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class AllowRule:
    """An allow-list entry: an address or network, or a host name, optionally with a port."""

    network: IPNetwork | None
    host: str | None
    port: int | None

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        text = text.strip()
        port: int | None = None
        body = text
        if body.startswith("["):
            end = body.index("]")
            rest = body[end + 1 :]
            body = body[1:end]
            if rest.startswith(":"):
                port = int(rest[1:])
        elif body.count(":") == 1:
            body, p = body.split(":")
            port = int(p)
        try:
            return cls(ipaddress.ip_network(body, strict=False), None, port)
        except ValueError:
            if not body:
                raise ValueError(f"empty allow-list entry {text!r}") from None
            return cls(None, body.lower().rstrip("."), port)

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address in self.network
        return host.lower().rstrip(".") == self.host


@dataclass(frozen=True)
class HttpPolicy:
    allow: tuple[str, ...] = ()
    max_redirects: int = 10
    default_timeout_s: float = 30.0
    max_response_bytes: int = 10 * 1024 * 1024
    _rules: tuple[AllowRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules", tuple(AllowRule.parse(a) for a in self.allow))

    def is_allowed(self, host: str, address: IPAddress, port: int) -> bool:
        return any(r.matches(host, address, port) for r in self._rules)


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and int(address) >> 32 == 0 and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address))  # IPv4-compatible ::a.b.c.d
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"embeds {embedded}, which {inner}" if inner else None
    if any(address in n for n in _METADATA):
        return "is a cloud metadata address"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_private:
        return "is a private address"
    if address.is_multicast:
        return "is a multicast address"
    if address.is_unspecified or address.is_reserved:
        return "is a reserved address"
    if not address.is_global:
        return "is not a public address"
    return None


def parse_literal_address(host: str) -> IPAddress | None:
    """A host written as an address, in any form the C resolver accepts
    (dotted, decimal ``2130706433``, hex ``0x7f000001``, octal, short forms)."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(h))
    except OSError:
        return None
