"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket

__all__ = ["free_port", "port_open"]


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; a race is possible
    but rare enough on loopback, and a bind failure is reported clearly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
