"""http_request against a real local server, and the refusal of non-public addresses."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nodedrop.engine import (
    CancelToken,
    EngineConfig,
    ExecutionStatus,
    HttpPolicy,
    parse_workflow,
)
from nodedrop.engine.local import run_local


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/json"):
            payload = {"path": self.path, "host": self.headers.get("Host"), "n": 3, "f": 1.5}
            self._send(200, json.dumps(payload).encode(), "application/json")
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, b"late", "text/plain")
        elif self.path == "/text":
            self._send(200, b"hello", "text/plain")
        elif self.path == "/missing":
            self._send(404, b"nope", "text/plain")
        elif self.path == "/redirect-ok":
            self._send(302, b"", "text/plain", {"Location": "/json?from=redirect"})
        elif self.path == "/redirect-loopback":
            self._send(302, b"", "text/plain", {"Location": "http://127.0.0.1:1/secret"})
        else:
            self._send(500, b"?", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"null")
        payload = {"received": body, "ctype": self.headers.get("Content-Type")}
        self._send(201, json.dumps(payload).encode(), "application/json")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A cancelled request closes its connection while /slow still writes.
        return None


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


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


def _allowing(port: int) -> EngineConfig:
    return EngineConfig(http=HttpPolicy(allow=(f"127.0.0.1:{port}",)))


async def test_get_json_with_template_and_query(server: int) -> None:
    wf = _wf(
        {
            "url": f"http://127.0.0.1:{server}/json/{{{{ json.id }}}}",
            "query": {"q": "{{ json.id }}"},
        }
    )
    run = await run_local(wf, [{"id": 7}], config=_allowing(server))
    assert run.result.status is ExecutionStatus.COMPLETED, run.result.error
    (item,) = run.result.outputs["h"]
    assert item["status"] == 200
    assert item["body"] == {"path": "/json/7?q=7", "host": f"127.0.0.1:{server}", "n": 3, "f": 1.5}
    assert item["headers"]["content-type"] == "application/json"


async def test_post_json_body(server: int) -> None:
    wf = _wf(
        {
            "method": "POST",
            "url": f"http://127.0.0.1:{server}/echo",
            "body": {"order": "{{ json.id }}", "note": "id {{ json.id }}"},
        }
    )
    run = await run_local(wf, [{"id": 7}], config=_allowing(server))
    (item,) = run.result.outputs["h"]
    assert item["status"] == 201
    assert item["body"] == {"received": {"order": 7, "note": "id 7"}, "ctype": "application/json"}


async def test_text_body_and_allowed_redirect(server: int) -> None:
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{server}/text"}), {}, config=_allowing(server)
    )
    assert run.result.outputs["h"][0]["body"] == "hello"
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{server}/redirect-ok"}), {}, config=_allowing(server)
    )
    assert run.result.outputs["h"][0]["body"]["path"] == "/json?from=redirect"


async def test_http_error_fails_unless_ignored(server: int) -> None:
    url = f"http://127.0.0.1:{server}/missing"
    run = await run_local(_wf({"url": url}), {}, config=_allowing(server))
    assert run.result.status is ExecutionStatus.FAILED
    assert run.result.error is not None and run.result.error.code == "http_status"
    assert not run.result.error.retryable
    run = await run_local(
        _wf({"url": url, "ignore_http_errors": True}), {}, config=_allowing(server)
    )
    assert run.result.outputs["h"][0]["status"] == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/json",
        "http://[::ffff:127.0.0.1]:{port}/json",
        "http://0x7f000001:{port}/json",
        "http://2130706433:{port}/json",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/json",
        "http://10.0.0.1/",
        "http://[::1]:{port}/",
    ],
)
async def test_refuses_non_public_addresses(server: int, url: str) -> None:
    run = await run_local(_wf({"url": url.format(port=server)}), {})
    assert run.result.status is ExecutionStatus.FAILED
    assert run.result.error is not None
    assert run.result.error.code == "address_refused", run.result.error
    assert not run.result.error.retryable


async def test_refuses_redirect_to_loopback(server: int) -> None:
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{server}/redirect-loopback"}), {}, config=_allowing(server)
    )
    assert run.result.status is ExecutionStatus.FAILED
    assert run.result.error is not None and run.result.error.code == "address_refused"
    assert "127.0.0.1" in run.result.error.message


async def test_refuses_non_http_scheme() -> None:
    run = await run_local(_wf({"url": "file:///etc/passwd"}), {})
    assert run.result.error is not None and run.result.error.code == "invalid_url"


async def test_cancel_interrupts_http_request(server: int) -> None:
    token = CancelToken()
    asyncio.get_running_loop().call_later(0.1, token.cancel)
    started = time.perf_counter()
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{server}/slow"}), {}, config=_allowing(server), cancel=token
    )
    assert run.result.status is ExecutionStatus.CANCELLED
    assert time.perf_counter() - started < 1.0


async def test_node_timeout_interrupts_http_request(server: int) -> None:
    started = time.perf_counter()
    run = await run_local(
        _wf({"url": f"http://127.0.0.1:{server}/slow"}, timeout_s=0.1), {}, config=_allowing(server)
    )
    assert run.result.status is ExecutionStatus.TIMED_OUT
    assert run.result.error is not None and run.result.error.code == "node_timeout"
    assert time.perf_counter() - started < 1.0
