"""The HTTP/JSON API served for tests: the gateway as a real process.

``running_http_api(env)`` starts ``nodedrop gateway`` against the API and
events service named in ``env`` and yields its base URL; the HTTP API is
mounted there under ``/api/`` and the Connect paths. This is the one place
tests start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping

import httpx

from tests.helpers.services import start_service

__all__ = ["running_http_api"]


@contextlib.asynccontextmanager
async def running_http_api(
    env: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    async with start_service("gateway", env={**env, **(extra or {})}, wait=False) as process:
        base = f"http://{process.target}"
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if process.process.returncode is not None:
                    raise RuntimeError(f"gateway exited:\n{process.output()}")
                try:
                    if (await client.get(f"{base}/api/openapi.json")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gateway not serving:\n{process.output()}")
                await asyncio.sleep(0.1)
        yield base
