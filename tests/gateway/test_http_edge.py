"""The gateway's ASGI edge: methods, mounted sub-apps, 1012 on shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from nodedrop.gateway.app import GatewayService
from nodedrop.gateway.settings import GatewaySettings

from .conftest import KEY_A, GatewayStack


async def test_unknown_method_is_405_and_a_post_gets_an_answer(gw: GatewayStack) -> None:
    async with httpx.AsyncClient(base_url=gw.http, timeout=5) as client:
        refused = await client.post("/api/example", content=b"{}")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET"
        assert refused.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
        assert (await client.post("/nope")).status_code == 404


async def test_a_mounted_sub_app_gets_every_path_under_its_prefix() -> None:
    seen: list[str] = []

    async def sub_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"sub"})

    env = {
        "NODEDROP_GATEWAY_ADDR": "127.0.0.1:0",
        "NODEDROP_API_ADDR": "127.0.0.1:1",
        "NODEDROP_EVENTS_ADDR": "127.0.0.1:1",
    }
    gateway = GatewayService(GatewaySettings.from_env(env), sub_apps={"/sub/": sub_app})
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as client:
            answer = await client.post("/sub/a/b?x=1", content=b"hi")
            assert (answer.status_code, answer.text) == (299, "sub")
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await gateway.stop(1.0)
    assert seen == ["/sub/a/b"]


async def test_stop_closes_websockets_with_1012(gw: GatewayStack) -> None:
    async with connect(gw.url, additional_headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
        await ws.send('{"type": "ping", "id": "1"}')
        await asyncio.wait_for(ws.recv(), 5)
        stopping = asyncio.create_task(gw.gateway.stop(2.0))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        await stopping
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1012


async def test_a_body_cut_short_starts_nothing(gw: GatewayStack) -> None:
    calls: list[object] = []

    class Forwarder:
        async def production(self, request: Any) -> Any:
            calls.append(await request.body(1 << 20))
            raise AssertionError("unreachable: the body never completes")

        def close(self) -> None:
            """Nothing to close: this double opened no stream to the API."""

    gw.gateway._webhooks = Forwarder()  # type: ignore[assignment]
    port = int(gw.http.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b'POST /webhook/tenant-a/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":'
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.3)
    assert calls == []
    async with httpx.AsyncClient(base_url=gw.http, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200
