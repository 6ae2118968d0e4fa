"""http_request against real local servers: a capped body, one deadline for the
whole request, and no credentials or body sent to another origin on a redirect.

Loopback is reached through an allow-list entry per server, as in
tests/engine/test_http.py; without one the SSRF guard refuses it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nodedrop.engine import EngineConfig, ExecutionStatus, HttpPolicy, parse_workflow
from nodedrop.engine.local import run_local

_MIB = 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bytes of /big written before the client hung up (or all of them).
    big_sent = 0
    other_port = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # clients hang up on /big and /drip on purpose


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/big":
            # No Content-Length: the cap must hold while reading.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            chunk = b"x" * 65536
            self.server.big_sent = 0
            for _ in range(200 * 16):  # 200 MiB
                self.wfile.write(chunk)
                self.server.big_sent += len(chunk)
        elif self.path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(200 * _MIB))
            self.end_headers()
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path == "/same-origin":
            self._json(307, {}, {"Location": "/headers"})
        elif self.path == "/other-origin":
            target = f"http://localhost:{self.server.other_port}/headers"
            self._json(307 if self.command == "POST" else 302, {}, {"Location": target})
        elif self.path == "/headers":
            self._json(
                200,
                {
                    "authorization": self.headers.get("Authorization"),
                    "cookie": self.headers.get("Cookie"),
                    "x_trace": self.headers.get("X-Trace"),
                    "body": body.decode(),
                    "method": self.command,
                },
            )
        else:
            self._json(404, {})

    do_GET = _route
    do_POST = _route


def _serve() -> tuple[_Server, threading.Thread]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[_Server, _Server]]:
    a, ta = _serve()
    b, tb = _serve()
    a.other_port = b.server_address[1]
    try:
        yield a, b
    finally:
        for httpd, thread in ((a, ta), (b, tb)):
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)


def _config(*servers: _Server, max_response_bytes: int = 10 * _MIB) -> EngineConfig:
    allow = tuple(f"127.0.0.1:{s.server_address[1]}" for s in servers)
    return EngineConfig(http=HttpPolicy(allow=allow, max_response_bytes=max_response_bytes))


def _wf(params: dict[str, Any], **node: Any) -> Any:
    return parse_workflow(
        {
            "nodes": [
                {"id": "t", "type": "manual_trigger"},
                {"id": "h", "type": "http_request", "parameters": params, **node},
            ],
            "connections": [{"from": "t", "to": "h"}],
        }
    )


def _port(s: _Server) -> int:
    return int(s.server_address[1])


async def test_response_body_is_capped_while_it_streams(servers: tuple[_Server, _Server]) -> None:
    a, _ = servers
    started = time.perf_counter()
    run = await run_local(_wf({"url": f"http://127.0.0.1:{_port(a)}/big"}), {}, config=_config(a))
    assert run.result.status is ExecutionStatus.FAILED
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded", error
    assert "max_response_bytes" in error.message
    # The read stopped at the cap: the server could not push the 200 MiB.
    await asyncio.sleep(0.2)
    assert a.big_sent < 100 * _MIB, a.big_sent
    assert time.perf_counter() - started < 10


async def test_declared_length_over_the_cap_is_refused_before_reading(
    servers: tuple[_Server, _Server],
) -> None:
    a, _ = servers
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{_port(a)}/big-declared"}),
        {},
        config=_config(a, max_response_bytes=_MIB),
    )
    error = run.result.error
    assert error is not None and error.code == "limit_exceeded", error
    assert "declares" in error.message


async def test_one_deadline_bounds_a_slow_drip(servers: tuple[_Server, _Server]) -> None:
    a, _ = servers
    started = time.perf_counter()
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{_port(a)}/drip", "timeout_s": 1}), {}, config=_config(a)
    )
    took = time.perf_counter() - started
    error = run.result.error
    assert error is not None and error.code == "http_timeout", error
    # One byte per 0.2 s never trips a per-read timeout; the total one holds.
    assert took < 2.0, took


async def test_credentials_stay_on_the_same_origin(servers: tuple[_Server, _Server]) -> None:
    a, b = servers
    headers = {"Authorization": "Bearer secret", "Cookie": "session=1", "X-Trace": "t"}
    same = await run_local(
        _wf({"url": f"http://127.0.0.1:{_port(a)}/same-origin", "headers": headers}),
        {},
        config=_config(a, b),
    )
    assert same.result.ok, same.result.error
    body = same.result.outputs["h"][0]["body"]
    assert body["authorization"] == "Bearer secret" and body["cookie"] == "session=1"

    config = EngineConfig(http=HttpPolicy(allow=(f"127.0.0.1:{_port(a)}", f"127.0.0.1:{_port(b)}")))
    other = await run_local(
        _wf({"url": f"http://127.0.0.1:{_port(a)}/other-origin", "headers": headers}),
        {},
        config=config,
    )
    assert other.result.ok, other.result.error
    body = other.result.outputs["h"][0]["body"]
    assert body["authorization"] is None and body["cookie"] is None
    assert body["x_trace"] == "t"


async def test_body_is_not_resent_to_another_origin(servers: tuple[_Server, _Server]) -> None:
    a, b = servers
    run = await run_local(
        _wf(
            {
                "method": "POST",
                "url": f"http://127.0.0.1:{_port(a)}/other-origin",
                "body": {"card": "4111"},
            }
        ),
        {},
        config=_config(a, b),
    )
    error = run.result.error
    assert error is not None and error.code == "redirect_refused", error
