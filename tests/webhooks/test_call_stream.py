"""The gateway's one stream of webhook calls to the API (CallStream against
WebhookServicer.HandleWebhooks on a real gRPC server): answers per call and
out of order, one call's crash kept to that call, the stream's failure given
to every waiting call and a new stream on the next one; and the API's route
lookups shared by the calls that arrive together."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest

from nodedrop.api.model import WebhookRoute
from nodedrop.api.webhook_servicer import WebhookServicer
from nodedrop.api.webhooks import Answer
from nodedrop.gateway.webhook import CallStream
from nodedrop.webhook.v1 import webhook_service_pb2 as pb
from nodedrop.webhook.v1 import webhook_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)

MAX_MESSAGE = 64 * 1024


class ScriptedServicer(WebhookServicer):
    """The real stream handling; each call's outcome is scripted by its path:
    ``sleep/<s>`` answers after s seconds, ``crash`` raises, ``hold`` waits
    until released."""

    def __init__(self) -> None:
        super().__init__(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            events=None,  # type: ignore[arg-type]
            rate=None,
            max_trigger_bytes=1024,
            default_mode="queue",
            max_message_bytes=MAX_MESSAGE,
        )
        self.release = asyncio.Event()
        self.held = 0
        self.three_held = asyncio.Event()

    async def _handle(self, request: pb.HandleWebhookRequest) -> tuple[Answer, str]:
        if request.path.startswith("sleep/"):
            await asyncio.sleep(float(request.path.removeprefix("sleep/")))
        elif request.path == "crash":
            raise RuntimeError("a bug in one call")
        elif request.path == "big":
            return Answer.json(200, {"big": "x" * MAX_MESSAGE}), "ex-big"
        elif request.path == "hold":
            self.held += 1
            if self.held == 3:
                self.three_held.set()
            await self.release.wait()
        return Answer.json(202, {"path": request.path}), f"ex-{request.path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(servicer: WebhookServicer, port: int) -> grpc.aio.Server:
    limits = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    server = grpc.aio.server(options=limits)
    webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


@pytest.fixture
async def api() -> AsyncIterator[tuple[ScriptedServicer, int, grpc.aio.Server]]:
    servicer = ScriptedServicer()
    port = _free_port()
    server = await _serve(servicer, port)
    try:
        yield servicer, port, server
    finally:
        servicer.release.set()
        await server.stop(0)


def _call(path: str) -> pb.HandleWebhookRequest:
    return pb.HandleWebhookRequest(tenant_id="t", path=path, method="POST")


async def test_each_call_is_answered_on_its_own_and_a_slow_one_holds_up_none(
    api: tuple[ScriptedServicer, int, grpc.aio.Server],
) -> None:
    _, port, _ = api
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = CallStream(channel, (), max_message_bytes=MAX_MESSAGE)
        slow = asyncio.ensure_future(calls.handle(_call("sleep/1.5"), 30))
        await asyncio.sleep(0.05)
        fast = await asyncio.gather(*(calls.handle(_call(f"sleep/0.0{i}"), 30) for i in range(9)))
        # The nine answered while the slow one, sent first, still ran.
        assert not slow.done()
        assert [orjson.loads(a.body)["path"] for a in fast] == [f"sleep/0.0{i}" for i in range(9)]
        assert [a.execution_id for a in fast] == [f"ex-sleep/0.0{i}" for i in range(9)]
        answer = await slow
        assert answer.status == 202 and answer.execution_id == "ex-sleep/1.5"
        calls.close()


async def test_a_crash_in_one_call_answers_500_for_it_alone(
    api: tuple[ScriptedServicer, int, grpc.aio.Server],
) -> None:
    _, port, _ = api
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = CallStream(channel, (), max_message_bytes=MAX_MESSAGE)
        crashed, fine = await asyncio.gather(
            calls.handle(_call("crash"), 30), calls.handle(_call("ok"), 30)
        )
        assert crashed.status == 500 and crashed.execution_id == ""
        assert orjson.loads(crashed.body)["error"] == {
            "code": "INTERNAL",
            "message": "internal error",
        }
        assert b"a bug" not in crashed.body
        assert fine.status == 202
        # The stream survived the crash.
        assert (await calls.handle(_call("after"), 30)).status == 202
        calls.close()


async def test_calls_larger_together_than_a_message_go_in_several(
    api: tuple[ScriptedServicer, int, grpc.aio.Server],
) -> None:
    _, port, _ = api
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = CallStream(channel, (), max_message_bytes=MAX_MESSAGE)
        body = b"y" * (MAX_MESSAGE // 8)
        answers = await asyncio.gather(
            *(
                calls.handle(
                    pb.HandleWebhookRequest(tenant_id="t", path=f"p{i}", method="POST", body=body),
                    30,
                )
                for i in range(40)
            )
        )
        assert [a.status for a in answers] == [202] * 40
        calls.close()


async def test_a_call_or_an_answer_too_large_for_a_message_fails_alone(
    api: tuple[ScriptedServicer, int, grpc.aio.Server],
) -> None:
    _, port, _ = api
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = CallStream(channel, (), max_message_bytes=MAX_MESSAGE)
        huge = pb.HandleWebhookRequest(tenant_id="t", path="p", body=b"z" * MAX_MESSAGE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await calls.handle(huge, 30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        big, fine = await asyncio.gather(
            calls.handle(_call("big"), 30), calls.handle(_call("ok"), 30)
        )
        assert big.status == 500 and big.execution_id == "ex-big"
        assert orjson.loads(big.body)["error"]["code"] == "RESOURCE_EXHAUSTED"
        assert fine.status == 202
        calls.close()


async def test_a_call_past_its_deadline_times_out_alone(
    api: tuple[ScriptedServicer, int, grpc.aio.Server],
) -> None:
    servicer, port, _ = api
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = CallStream(channel, (), max_message_bytes=MAX_MESSAGE)
        with pytest.raises(TimeoutError):
            await calls.handle(_call("hold"), 0.3)
        assert (await calls.handle(_call("ok"), 30)).status == 202
        # Its late answer is dropped, not given to another call.
        servicer.release.set()
        assert orjson.loads((await calls.handle(_call("next"), 30)).body)["path"] == "next"
        calls.close()


async def test_the_stream_failing_fails_the_waiting_calls_and_the_next_call_reopens_it(
    api: tuple[ScriptedServicer, int, grpc.aio.Server],
) -> None:
    servicer, port, server = api
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = CallStream(channel, (), max_message_bytes=MAX_MESSAGE)
        waiting = [asyncio.ensure_future(calls.handle(_call("hold"), 30)) for _ in range(3)]
        await servicer.three_held.wait()
        await server.stop(0)
        for call in waiting:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call
            assert failed.value.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.CANCELLED,
            )
        again = ScriptedServicer()
        restarted = await _serve(again, port)
        try:
            answer: Any = None
            for _ in range(100):
                try:
                    answer = await calls.handle(_call("back"), 5)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)  # the channel reconnects with backoff
            assert answer is not None and answer.status == 202
        finally:
            calls.close()
            again.release.set()
            await restarted.stop(0)


class CountingRoutes:
    def __init__(self, fail: bool = False) -> None:
        self.lookups = 0
        self.fail = fail

    async def find_route(self, tenant_id: str, path: str) -> WebhookRoute | None:
        self.lookups += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise ConnectionError("PostgreSQL went away")
        return None


def _servicer(repo: CountingRoutes) -> WebhookServicer:
    return WebhookServicer(
        repo,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        events=None,  # type: ignore[arg-type]
        rate=None,
        max_trigger_bytes=1024,
        default_mode="queue",
        max_message_bytes=MAX_MESSAGE,
    )


async def test_calls_arriving_together_share_one_route_lookup() -> None:
    repo = CountingRoutes()
    servicer = _servicer(repo)
    request = _call("nowhere")
    answers = await asyncio.gather(*(servicer._answer(request) for _ in range(50)))
    assert {a.status for a in answers} == {404}
    assert repo.lookups == 1


async def test_a_failed_route_lookup_is_not_kept() -> None:
    repo = CountingRoutes(fail=True)
    servicer = _servicer(repo)
    first = await asyncio.gather(*(servicer._answer(_call("x")) for _ in range(5)))
    assert {a.status for a in first} == {500} and repo.lookups == 1
    repo.fail = False
    assert (await servicer._answer(_call("x"))).status == 404
    assert repo.lookups == 2
