"""The HTTP/JSON API served for tests, as a real process.

``running_http_api(env)`` serves ``nodedrop.gateway.httpapi`` under uvicorn
in a subprocess against the API and events service named in ``env``, and
yields its base URL. This is the one place tests start it: once the gateway
mounts the app, point this at ``start_service("gateway", ...)`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping

import httpx

from tests.helpers.services import start_service

__all__ = ["running_http_api"]


@contextlib.asynccontextmanager
async def running_http_api(
    env: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    async with start_service(
        argv=["-m", "tests.helpers.http_api"], env={**env, **(extra or {})}, wait=False
    ) as process:
        base = f"http://{process.target}"
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if process.process.returncode is not None:
                    raise RuntimeError(f"HTTP API exited:\n{process.output()}")
                try:
                    if (await client.get(f"{base}/api/openapi.json")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"HTTP API not serving:\n{process.output()}")
                await asyncio.sleep(0.1)
        yield base


async def _serve() -> None:
    import uvicorn  # noqa: PLC0415 - the server process only

    from nodedrop.common.client import open_channel  # noqa: PLC0415
    from nodedrop.common.settings import Addresses, process_env  # noqa: PLC0415
    from nodedrop.gateway.httpapi import HttpApiSettings, create_http_api  # noqa: PLC0415

    env = process_env()
    addresses = Addresses.from_env(env)
    api = open_channel(addresses.api)
    events = open_channel(addresses.events)
    app = create_http_api(api, events, settings=HttpApiSettings.from_env(env))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(os.environ["NODEDROP_TEST_PORT"]),
        http="httptools",
        log_level="warning",
        lifespan="on",
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await api.close()
        await events.close()


if __name__ == "__main__":
    from nodedrop.common.server import run_loop

    run_loop(_serve())
