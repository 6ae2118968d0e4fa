"""A private redis-server on a free port, for tests that stop or restart Redis.

Never touch the shared instance that way: other test runs use it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.helpers.ports import free_port, port_open

__all__ = ["PrivateRedis", "private_redis"]


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen[bytes]
    directory: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def private_redis(
    timeout_s: float = 10.0, *, extra_args: tuple[str, ...] = ()
) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="nd-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = PrivateRedis(port, process, directory)
    try:
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", port, 0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
