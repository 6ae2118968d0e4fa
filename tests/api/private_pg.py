"""A private PostgreSQL (initdb + pg_ctl as the postgres user, a free port, a
temporary directory) for tests that stop and restart the server; the shared
instance is never touched that way."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from tests.helpers.ports import free_port

__all__ = ["PrivatePostgres", "private_postgres"]


def _as_postgres(*argv: str, timeout_s: float = 60.0) -> None:
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*runner, *argv], check=True, timeout=timeout_s, capture_output=True)


@dataclass
class PrivatePostgres:
    port: int
    data_dir: str

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=off"
        _as_postgres("pg_ctl", "-D", self.data_dir, "-o", options, "-w", "-l",
                     os.path.join(self.data_dir, "log"), "start")  # fmt: skip

    def stop(self) -> None:
        _as_postgres("pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        raise RuntimeError("initdb/pg_ctl are not installed")
    root = tempfile.mkdtemp(prefix="nd-pg-")
    os.chmod(root, 0o755)
    data = os.path.join(root, "data")
    os.mkdir(data)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    _as_postgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    server = PrivatePostgres(free_port(), data)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
