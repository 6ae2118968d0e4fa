"""A private PgBouncer in transaction pooling mode, on a free port, in front of
the test PostgreSQL (Debian's `pgbouncer` package; .ci/run installs it).

Every database of the server is reachable through it under its own name, so a
DSN of the shared fixtures (``pg_dsn``) becomes one through PgBouncer with
``PgBouncer.dsn_for``. Few server connections per database
(``default_pool_size``): clients share them, as they do in production behind a
transaction pooler, which is what breaks session state.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from tests.helpers.ports import free_port, port_open

__all__ = ["PgBouncer", "jit_off", "pgbouncer_binary", "private_pgbouncer"]

# Where Debian puts it: /usr/sbin is not on every user's PATH.
_CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is not None:
        return found
    return next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


@dataclass
class PgBouncer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    def dsn_for(self, dsn: str) -> str:
        """``dsn`` (a database of the server behind) through this PgBouncer."""
        parts = urlsplit(dsn)
        user = parts.username or "postgres"
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


async def jit_off(dsn: str) -> None:
    """JIT off for the database of ``dsn`` (a direct DSN, not through PgBouncer),
    as docs/operations.md says to run behind a transaction pooler: asyncpg turns
    JIT off around its type introspection with session settings, which land on
    other server connections there."""
    conn = await asyncpg.connect(dsn)
    try:
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{database}" SET jit = off')
    finally:
        await conn.close()


def _unprivileged_user() -> str:
    """PostgreSQL's system user where the server runs here, else nobody."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no unprivileged user (postgres, nobody) to run pgbouncer as")


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@contextlib.contextmanager
def private_pgbouncer(
    server_dsn: str, *, pool_size: int = 4, timeout_s: float = 15.0
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the server of ``server_dsn``."""
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    server = urlsplit(server_dsn)
    user = unquote(server.username or "postgres")
    password = unquote(server.password or "")
    directory = Path(tempfile.mkdtemp(prefix="nd-pgbouncer-"))
    port = free_port()
    # Clients are trusted (loopback, a test); the auth file still names the
    # user, and its password (if any) is what PgBouncer logs in with.
    (directory / "users.txt").write_text(f"{_quote(user)} {_quote(password)}\n")
    (directory / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {directory / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 500",
                "server_reset_query =",
                # asyncpg's startup packet carries no such options, psql's may.
                "ignore_startup_parameters = extra_float_digits,options",
                f"logfile = {directory / 'pgbouncer.log'}",
                "",
            ]
        )
    )
    argv = [binary]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; it drops to this user itself.
        os.chmod(directory, 0o755)
        for name in ("users.txt", "pgbouncer.ini"):
            os.chmod(directory / name, 0o644)
        user_name = _unprivileged_user()
        shutil.chown(directory, user_name)
        argv += ["-u", user_name]
    argv.append(str(directory / "pgbouncer.ini"))
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bouncer = PgBouncer(port, process, directory)
    try:
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", port, 0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                bouncer.stop()
                error = bouncer.log()
                raise RuntimeError(f"pgbouncer did not start on port {port}:\n{error}")
            time.sleep(0.05)
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(directory, ignore_errors=True)
