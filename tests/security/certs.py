"""A throwaway CA and certificates for the mutual TLS tests, made with the
openssl command line."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certs", "Pair", "make_certs"]


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path

    def env(self, ca: Path) -> dict[str, str]:
        return {
            "NODEDROP_TLS_CERT": str(self.cert),
            "NODEDROP_TLS_KEY": str(self.key),
            "NODEDROP_TLS_CA": str(ca),
        }


@dataclass(frozen=True)
class Certs:
    ca: Path
    scheduler: Pair
    api: Pair
    # Issued by the CA to someone who is not a service (a CLI user).
    alice: Pair
    # A service's name, but issued by another CA.
    impostor: Pair


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(directory: Path, name: str, common_name: str, ca: tuple[Path, Path]) -> Pair:
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    ext = directory / f"{name}.ext"
    # Both uses: a service is the server of its port and the client of others.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "basicConstraints=CA:FALSE\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return Pair(cert, key)


def make_certs(directory: Path) -> Certs:
    ca = _ca(directory, "ca")
    other = _ca(directory, "other-ca")
    return Certs(
        ca=ca[0],
        scheduler=_leaf(directory, "scheduler", "nodedrop-scheduler", ca),
        api=_leaf(directory, "api", "nodedrop-api", ca),
        alice=_leaf(directory, "alice", "alice", ca),
        impostor=_leaf(directory, "impostor", "nodedrop-api", other),
    )
