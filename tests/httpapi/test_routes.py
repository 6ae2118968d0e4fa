"""The HTTP/JSON API through real processes: plain routes, keys and scopes,
error mapping, limits, and the event stream resumed by sequence."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest
from google.rpc import error_details_pb2

from tests.helpers.system import until
from tests.httpapi.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EX = "/nodedrop.execution.v1.ExecutionService"


def _sse(text: str) -> list[dict[str, str]]:
    """The events of an SSE body; comment lines (keep-alives) are left out."""
    frames = []
    for block in text.strip().split("\n\n"):
        frame: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name:
                frame[name] = value
        if frame:
            frames.append(frame)
    return frames


async def test_execute_then_get_then_follow_events_resuming_by_sequence(stack: Stack) -> None:
    workflow_id = await stack.create_workflow()
    async with stack.client(stack.key) as http:
        reply = await http.post(f"/api/workflows/{workflow_id}/execute", json=[{"n": 21}])
        assert reply.status_code == 202, reply.text
        execution_id = reply.json()["executionId"]
        assert reply.json()["status"] == "EXECUTION_STATUS_QUEUED"

        stream = await http.get(f"/api/executions/{execution_id}/events")
        assert stream.status_code == 200, stream.text
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = _sse(stream.text)
        assert frames[-1]["event"] == "end"
        events = frames[:-1]
        sequences = [int(f["id"]) for f in events]
        assert sequences == sorted(sequences) and len(sequences) >= 4
        assert events[-1]["event"] == "execution_completed"
        assert orjson.loads(events[0]["data"])["executionId"] == execution_id

        # Resume: the header a browser's EventSource sends on reconnecting.
        middle = sequences[1]
        resumed = await http.get(
            f"/api/executions/{execution_id}/events", headers={"Last-Event-ID": str(middle)}
        )
        assert [int(f["id"]) for f in _sse(resumed.text)[:-1]] == sequences[2:]
        by_query = await http.get(
            f"/api/executions/{execution_id}/events", params={"after_sequence": middle}
        )
        assert [int(f["id"]) for f in _sse(by_query.text)[:-1]] == sequences[2:]

        got = await http.get(f"/api/executions/{execution_id}", params={"include_outputs": "true"})
        assert got.status_code == 200, got.text
        assert got.json()["execution"]["id"] == execution_id

        async def listed() -> list[str]:
            reply = await http.get(
                "/api/executions", params={"workflow_id": workflow_id, "statuses": "completed"}
            )
            assert reply.status_code == 200, reply.text
            return [e["id"] for e in reply.json()["executions"]]

        # The history records the end shortly after the stream delivered it.
        assert await until("the completed execution listed", listed, 10) == [execution_id]

        # ?wait=: the finished execution with its outputs, in one call.
        waited = await http.post(
            f"/api/workflows/{workflow_id}/execute", params={"wait": "20"}, json=[{"n": 4}]
        )
        assert waited.status_code == 200, waited.text
        execution = waited.json()["execution"]
        assert execution["status"] == "EXECUTION_STATUS_COMPLETED"
        assert "8" in orjson.dumps(execution).decode()

        # Idempotency-Key maps to the idempotency key: the same execution again.
        first = await http.post(
            f"/api/workflows/{workflow_id}/execute", json={}, headers={"Idempotency-Key": "k-1"}
        )
        again = await http.post(
            f"/api/workflows/{workflow_id}/execute", json={}, headers={"Idempotency-Key": "k-1"}
        )
        assert first.json()["executionId"] == again.json()["executionId"]
        assert again.json()["deduplicated"] is True


async def test_keys_scopes_and_error_mapping(stack: Stack) -> None:
    workflow_id = await stack.create_workflow()
    async with stack.client() as anonymous:
        reply = await anonymous.post(f"/api/workflows/{workflow_id}/execute", json={})
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] == "unauthenticated"
        reply = await anonymous.post(f"{EX}/ListExecutions", json={})
        assert reply.status_code == 401

    async with stack.client(stack.reader) as reader:
        reply = await reader.post(f"/api/workflows/{workflow_id}/execute", json={})
        assert reply.status_code == 403, reply.text
        assert reply.json()["code"] == "permission_denied"
        assert (await reader.get("/api/executions")).status_code == 200

    async with stack.client(stack.key) as http:
        unknown = "0190a1b2-0000-7000-8000-000000000000"
        reply = await http.get(f"/api/executions/{unknown}")
        assert reply.status_code == 404, reply.text
        assert reply.json()["code"] == "not_found"

        # Field violations from grpc-status-details-bin, in the body.
        reply = await http.post(f"{EX}/ListExecutions", json={"pageSize": -3})
        assert reply.status_code == 400, reply.text
        body = reply.json()
        assert body["code"] == "invalid_argument"
        [detail] = body["details"]
        assert detail["type"] == "google.rpc.BadRequest"
        violations = detail["debug"]["fieldViolations"]
        assert [v["field"] for v in violations] == ["page_size"]
        value = detail["value"] + "=" * (-len(detail["value"]) % 4)
        decoded = error_details_pb2.BadRequest.FromString(base64.b64decode(value))
        assert decoded.field_violations[0].field == "page_size"

        reply = await http.post(
            f"/api/workflows/{workflow_id}/execute",
            content=b'{"a": 1,\n "b": }',
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code == 400
        assert "line 2 column 7" in reply.json()["message"], reply.text

        reply = await http.post(f"{EX}/GetExecution", json={"noSuchField": 1})
        assert reply.status_code == 400
        assert "noSuchField" in reply.json()["message"]

        reply = await http.get("/api/executions", params={"statuses": "sleeping"})
        assert reply.status_code == 400
        assert "completed" in reply.json()["message"]

        reply = await http.post(f"/api/workflows/{workflow_id}/execute", content=b"x" * 70_000)
        assert reply.status_code == 413
        assert reply.json()["code"] == "resource_exhausted"

        reply = await http.post(f"{EX}/GetExecution", content=b"{}")
        assert reply.status_code == 415

        assert (await http.get("/api/nothing")).status_code == 404
        assert (await http.get(f"{EX}/NoSuchMethod")).status_code == 404
        reply = await http.delete(f"/api/executions/{unknown}")
        assert reply.status_code == 405 and reply.headers["allow"] == "GET"
        assert (await http.get(f"{EX}/GetExecution")).status_code == 405

        # Internal services are not exposed, whatever the key.
        for internal in (
            "/nodedrop.queue.v1.SchedulerService/EnqueueExecution",
            "/nodedrop.queue.v1.WorkerService/GetWorkerStatus",
            "/nodedrop.auth.v1.AuthService/Authenticate",
        ):
            reply = await http.post(internal, json={})
            assert reply.status_code == 404, internal
            assert reply.json()["code"] == "unimplemented"


async def test_health_needs_no_key_and_names_no_tenant(stack: Stack) -> None:
    async with stack.client() as anonymous:
        reply = await anonymous.get("/api/health")
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"healthy", "waiting", "active", "delayed", "failed"}
    # A wrong key is not even looked at: the answer is the same for everyone.
    async with stack.client("ndk_wrong") as wrong:
        assert (await wrong.get("/api/health")).json().keys() == reply.json().keys()


def _envelope(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _unenvelope(body: bytes) -> list[tuple[int, object]]:
    out = []
    while body:
        flags, length = struct.unpack_from(">BI", body)
        out.append((flags, orjson.loads(body[5 : 5 + length])))
        body = body[5 + length :]
    return out


async def test_connect_server_streaming(stack: Stack) -> None:
    workflow_id = await stack.create_workflow()
    async with stack.client(stack.key) as http:
        reply = await http.post(f"/api/workflows/{workflow_id}/execute", json=[{"n": 1}])
        execution_id = reply.json()["executionId"]
        streamed = await http.post(
            "/nodedrop.event.v1.EventService/StreamExecutionEvents",
            content=_envelope(0, orjson.dumps({"executionId": execution_id})),
            headers={"Content-Type": "application/connect+json"},
        )
        assert streamed.status_code == 200, streamed.text
        messages = _unenvelope(streamed.content)
        assert messages[-1] == (2, {})
        types = [e["type"] for _, m in messages[:-1] for e in m["events"]]  # type: ignore[index]
        assert types[0] == "EVENT_TYPE_EXECUTION_QUEUED"
        assert types[-1] == "EVENT_TYPE_EXECUTION_COMPLETED"

        # An error at once is the HTTP status; the key is checked by the events service.
        refused = await http.post(
            "/nodedrop.event.v1.EventService/StreamExecutionEvents",
            content=_envelope(0, orjson.dumps({"executionId": execution_id})),
            headers={"Content-Type": "application/connect+json", "Authorization": "Bearer nope"},
        )
        assert refused.status_code == 401, refused.text


async def test_a_quiet_event_stream_sends_keep_alive_comments(stack: Stack) -> None:
    waiting = {
        "name": "waits",
        "nodes": [
            {"id": "start", "type": "manual_trigger", "parametersJson": "{}"},
            {"id": "pause", "type": "wait", "parametersJson": '{"seconds": 1.0}'},
        ],
        "connections": [
            {"source": "start", "sourceOutput": "main", "target": "pause", "targetInput": "main"}
        ],
    }
    workflow_id = await stack.create_workflow(waiting)
    async with stack.client(stack.key) as http:
        reply = await http.post(f"/api/workflows/{workflow_id}/execute", json={})
        execution_id = reply.json()["executionId"]
        stream = await http.get(f"/api/executions/{execution_id}/events")
    assert stream.status_code == 200, stream.text
    # NODEDROP_HTTP_SSE_KEEPALIVE is 0.2 s in this stack; the wait lasts 1 s.
    assert stream.text.count(": keep-alive\n\n") >= 2, stream.text
    assert _sse(stream.text)[-1]["event"] == "end"
