"""The HTTP API's settings, and its answers when the upstream is down (in process)."""

from __future__ import annotations

import grpc
import httpx
import pytest

from nodedrop.common.settings import SettingsError
from nodedrop.gateway.httpapi import HttpApiSettings, create_http_api
from tests.helpers.ports import free_port


def test_settings_defaults_values_and_refusals() -> None:
    defaults = HttpApiSettings.from_env({})
    assert (
        defaults.max_body_bytes,
        defaults.call_timeout_s,
        defaults.max_wait_s,
        defaults.sse_keepalive_s,
    ) == (1 << 20, 30.0, 60.0, 15.0)
    chosen = HttpApiSettings.from_env(
        {
            "NODEDROP_HTTP_MAX_BODY_BYTES": "4096",
            "NODEDROP_HTTP_CALL_TIMEOUT": "500ms",
            "NODEDROP_HTTP_MAX_WAIT": "2m",
            "NODEDROP_HTTP_SSE_KEEPALIVE": "250ms",
        }
    )
    assert (chosen.max_body_bytes, chosen.call_timeout_s, chosen.max_wait_s) == (4096, 0.5, 120.0)
    assert chosen.sse_keepalive_s == 0.25
    for name, value in (
        ("NODEDROP_HTTP_MAX_BODY_BYTES", "12"),
        ("NODEDROP_HTTP_CALL_TIMEOUT", "soon"),
        ("NODEDROP_HTTP_MAX_WAIT", "-1"),
        ("NODEDROP_HTTP_SSE_KEEPALIVE", "0"),
    ):
        with pytest.raises(SettingsError, match=name):
            HttpApiSettings.from_env({name: value})


async def test_upstream_down_is_503_json_and_stream_errors_keep_their_status() -> None:
    # Nothing listens there: every call fails UNAVAILABLE.
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    settings = HttpApiSettings.from_env({"NODEDROP_HTTP_CALL_TIMEOUT": "2s"})
    app = create_http_api(channel, channel, settings=settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
            reply = await http.get("/api/health")
            assert reply.status_code == 503
            assert reply.json()["code"] == "unavailable"
            reply = await http.get("/api/executions/abc/events", headers={"Last-Event-ID": "x"})
            assert reply.status_code == 400
            assert "Last-Event-ID" in reply.json()["message"]
            reply = await http.post(
                "/api/workflows/w/execute", params={"wait": "1e9"}, content=b"{}"
            )
            assert reply.status_code == 400
            assert reply.json()["message"].startswith("wait:")
    finally:
        await channel.close()


async def test_an_unexpected_failure_is_a_json_500_without_traceback() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    app = create_http_api(channel, channel, settings=HttpApiSettings.from_env({}))
    # A call on a closed channel raises grpc's UsageError, not an RPC status.
    await channel.close()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edge"
    ) as http:
        reply = await http.post(
            "/nodedrop.execution.v1.ExecutionService/GetExecution",
            json={"executionId": "x"},
            headers={"Authorization": "Bearer k"},
        )
    assert reply.status_code == 500
    assert reply.json() == {"code": "internal", "message": "internal error"}


async def test_mounted_under_a_prefix_the_routes_are_relative_to_it() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    app = create_http_api(channel, channel, settings=HttpApiSettings.from_env({}))
    transport = httpx.ASGITransport(app=app, root_path="/edge")
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            reply = await http.get("/edge/api/openapi.json")
            assert reply.status_code == 200
            assert "/api/health" in reply.json()["paths"]
    finally:
        await channel.close()
