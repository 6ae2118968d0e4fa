"""ProcessSandbox: the CodeSandbox that runs code in a pool of runner processes.

The host (a worker, or the API for direct mode and ExecuteNode) only writes a
request to a runner's pipe and awaits the answer, so its event loop keeps
serving whatever the code does. A runner enforces the run's CPU time and
memory itself (``child.py``); the host stops waiting at a wall-clock bound
past the CPU limit and kills the runner. A runner that dies, is killed, or
whose run is cancelled (node timeout, execution cancelled) is never reused:
a fresh one takes its place, and the run fails with ``code_runner_lost``,
which the node's retry settings (and the attempt's) may retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from nodedrop.engine.code import CodeOutput, CodeRun
from nodedrop.engine.errors import CODE_ERROR, CODE_RUNNER_LOST, CodeError, LimitExceededError
from nodedrop.sandbox.frames import PREFIX, encode_frame

__all__ = ["ProcessSandbox"]

# The host's wait past the run's CPU limit before it declares the runner lost:
# a loaded machine gives a runner less than one core.
_WALL_FACTOR = 10.0
_WALL_EXTRA_S = 5.0
# A runner's start-up (interpreter, QuickJS, its first context) on a loaded machine.
_READY_S = 30.0
_START_TRIES = 3
# Most bytes of an answer's header (status and message).
_MAX_HEADER = 64 * 1024


class _Runner:
    """One runner process, started by CPython's subprocess (whose fork runs no
    Python before exec: it closes the host's descriptors and starts a new
    session in C), with asyncio streams on its pipes."""

    __slots__ = ("popen", "read_transport", "reader", "writer")

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        reader: asyncio.StreamReader,
        read_transport: asyncio.BaseTransport,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.popen = popen
        self.reader = reader
        self.read_transport = read_transport
        self.writer = writer

    @classmethod
    async def start(cls, argv: Sequence[str]) -> _Runner:
        # Popen runs in a thread, which a cancellation cannot stop: a start
        # cancelled meanwhile (the sandbox closing, the run cancelled) waits
        # for the process it made and ends it, or it would outlive the sandbox.
        made = asyncio.ensure_future(asyncio.to_thread(_popen, argv))
        try:
            popen = await asyncio.shield(made)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await _end(await made)
            raise
        assert popen.stdin is not None and popen.stdout is not None
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            read_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), popen.stdout
            )
            write_transport, write_protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), popen.stdin
            )
        except BaseException:
            await _end(popen)
            raise
        writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
        return cls(popen, reader, read_transport, writer)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    async def call(self, header: bytes, body: bytes, max_body: int) -> tuple[bytes, bytes]:
        self.writer.write(encode_frame(header, body))
        await self.writer.drain()
        prefix = await self.reader.readexactly(PREFIX.size)
        header_len, body_len = PREFIX.unpack(prefix)
        if header_len > _MAX_HEADER or body_len > max_body:
            raise _Broken(f"runner answered {header_len} + {body_len} bytes")
        answer = await self.reader.readexactly(header_len)
        data = await self.reader.readexactly(body_len) if body_len else b""
        return answer, data

    async def ready(self) -> None:
        prefix = await self.reader.readexactly(PREFIX.size)
        await self.reader.readexactly(sum(PREFIX.unpack(prefix)))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        self.writer.close()
        self.read_transport.close()

    async def wait(self, timeout_s: float) -> None:
        """Waits up to ``timeout_s`` for the process to end (and reaps it)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.popen.wait, timeout_s)


def _popen(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        # Nothing of the host's: no environment (secrets, URLs), no working
        # directory of its own, no descriptor but its pipes, its own session.
        env={},
        cwd="/",
        close_fds=True,
        start_new_session=True,
    )


async def _end(popen: subprocess.Popen[bytes]) -> None:
    """Kills a runner that never became a ``_Runner`` and reaps it."""
    with contextlib.suppress(ProcessLookupError):
        popen.kill()
    for pipe in (popen.stdin, popen.stdout):
        if pipe is not None:
            pipe.close()
    await asyncio.shield(asyncio.to_thread(popen.wait))


class _FairShare:
    """Who gets the next free runner. A tenant holds at most ``per_tenant``
    runners at once, so one tenant's flood of slow code always leaves a runner
    for the others; a runner that frees up goes to the waiting tenant that
    holds the fewest (first come first served among equals), so a tenant that
    arrives behind another's queue of runs does not wait for all of them."""

    __slots__ = ("_held", "_in_use", "_per_tenant", "_seq", "_size", "_waiting")

    def __init__(self, size: int, per_tenant: int) -> None:
        self._size = size
        self._per_tenant = per_tenant
        self._in_use = 0
        self._held: dict[str, int] = {}
        self._seq = 0
        # Per tenant, its waiting runs in arrival order: (seq, what each awaits).
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}

    async def acquire(self, tenant: str) -> None:
        self._seq += 1
        granted = asyncio.get_running_loop().create_future()
        entry = (self._seq, granted)
        self._waiting.setdefault(tenant, deque()).append(entry)
        self._grant()
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(tenant)  # granted, but the run was cancelled first
            else:
                queue = self._waiting[tenant]
                queue.remove(entry)
                if not queue:
                    del self._waiting[tenant]
            raise

    def release(self, tenant: str) -> None:
        self._in_use -= 1
        held = self._held[tenant] - 1
        if held:
            self._held[tenant] = held
        else:
            del self._held[tenant]
        self._grant()

    def _grant(self) -> None:
        while self._in_use < self._size:
            best: tuple[int, int, str] | None = None
            for tenant, queue in self._waiting.items():
                held = self._held.get(tenant, 0)
                if held < self._per_tenant and (best is None or (held, queue[0][0]) < best[:2]):
                    best = (held, queue[0][0], tenant)
            if best is None:
                return
            tenant = best[2]
            queue = self._waiting[tenant]
            _, granted = queue.popleft()
            if not queue:
                del self._waiting[tenant]
            self._in_use += 1
            self._held[tenant] = self._held.get(tenant, 0) + 1
            granted.set_result(None)


class _Broken(Exception):
    """The runner broke its side of the protocol: it is killed, never reused."""


class ProcessSandbox:
    """At most ``runners`` runs at once, each in a runner process of its own,
    and at most ``per_tenant`` of them for one tenant (by default all but one
    runner, so that another tenant always finds one)."""

    def __init__(
        self,
        runners: int,
        memory_bytes: int,
        *,
        per_tenant: int | None = None,
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
    ) -> None:
        if runners < 1:
            raise ValueError("a sandbox needs at least one runner")
        if per_tenant is not None and per_tenant < 1:
            raise ValueError("a tenant needs at least one runner")
        self._size = runners
        self._memory = memory_bytes
        self._argv = (python, "-I", *extra_args, "-m", "nodedrop.sandbox.child")
        # Oldest first: the runner idle longest has made its next context already.
        self._idle: deque[_Runner] = deque()
        # The default leaves one runner to the other tenants (none with one runner).
        self._share = _FairShare(runners, min(runners, per_tenant or max(1, runners - 1)))
        self._live: set[_Runner] = set()
        self._starting: set[asyncio.Task[None]] = set()
        # Killed runners not yet reaped: close() waits for them, never cancels.
        self._reaping: set[asyncio.Task[None]] = set()
        self.runners_lost = 0

    @property
    def pids(self) -> list[int]:
        """The live runners' process ids (tests and operators look at them)."""
        return [r.pid for r in self._live]

    async def start(self) -> None:
        """Starts every runner now, so that the first runs pay no start-up."""
        while len(self._live) < self._size:
            self._idle.append(await self._spawn())

    async def _spawn(self) -> _Runner:
        # A runner that dies before it is ready has run no user code: start another.
        for attempt in range(1, _START_TRIES + 1):
            try:
                return await self._spawn_once()
            except CodeError:
                if attempt == _START_TRIES:
                    raise
        raise AssertionError("unreachable")

    async def _spawn_once(self) -> _Runner:
        runner = await _Runner.start((*self._argv, str(self._memory)))
        self._live.add(runner)
        try:
            async with asyncio.timeout(_READY_S):
                await runner.ready()
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            await runner.wait(1.0)
            reason = _reason(runner, exc)
            runner.kill()
            await runner.wait(1.0)
            self._live.discard(runner)
            raise CodeError(
                f"a code runner did not start ({reason})", code=CODE_RUNNER_LOST
            ) from None
        except BaseException:
            # Cancelled while it started: it is nobody's, so it goes now.
            runner.kill()
            self._live.discard(runner)
            await asyncio.shield(runner.wait(5.0))
            raise
        return runner

    def _replace(self, runner: _Runner) -> None:
        """Kills ``runner`` and starts its successor in the background."""
        runner.kill()
        self._live.discard(runner)
        self.runners_lost += 1
        loop = asyncio.get_running_loop()
        reaped = loop.create_task(runner.wait(5.0))
        self._reaping.add(reaped)
        reaped.add_done_callback(self._reaping.discard)
        task = loop.create_task(self._respawn(reaped))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _respawn(self, reaped: asyncio.Task[None]) -> None:
        await asyncio.shield(reaped)
        if len(self._live) >= self._size:
            return  # a run already started one in its place
        with contextlib.suppress(OSError, CodeError):
            self._idle.append(await self._spawn())

    async def run(self, run: CodeRun) -> CodeOutput:
        header = orjson.dumps(
            {
                "source": run.source,
                "mode": run.mode,
                "cpu_ms": run.cpu_ms,
                "memory_bytes": run.memory_bytes,
                "max_output_bytes": run.max_output_bytes,
                "max_log_lines": run.max_log_lines,
                "max_log_bytes": run.max_log_bytes,
            }
        )
        max_body = run.max_output_bytes + 2 * run.max_log_bytes + 65536
        wall_s = run.cpu_ms / 1000.0 * _WALL_FACTOR + _WALL_EXTRA_S
        await self._share.acquire(run.tenant)
        try:
            runner = self._idle.popleft() if self._idle else await self._spawn()
            try:
                async with asyncio.timeout(wall_s):
                    answer, body = await runner.call(header, run.data_json, max_body)
            except TimeoutError:
                self._replace(runner)
                raise CodeError(
                    f"the code's runner did not answer within {wall_s:g}s of wall-clock time "
                    "and was replaced",
                    code=CODE_RUNNER_LOST,
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError, _Broken, struct.error) as exc:
                # Its exit status says why (a signal: a crash or the kernel).
                await runner.wait(1.0)
                self._replace(runner)
                raise CodeError(
                    f"the code's runner died ({_reason(runner, exc)}) and was replaced",
                    code=CODE_RUNNER_LOST,
                ) from None
            except BaseException:
                # Cancelled (node timeout, execution cancelled or ended): the
                # runner may still be running the code, so it goes.
                self._replace(runner)
                raise
            self._idle.append(runner)
        finally:
            self._share.release(run.tenant)
        return _output(orjson.loads(answer), body)

    async def close(self) -> None:
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        # A start under way ends the process it made before it returns.
        await asyncio.gather(*starting, *self._reaping, return_exceptions=True)
        runners = list(self._live)
        self._idle.clear()
        self._live.clear()
        for runner in runners:
            runner.kill()
        for runner in runners:
            await runner.wait(5.0)


def _reason(runner: _Runner, exc: BaseException) -> str:
    code = runner.returncode
    if code is not None and code < 0:
        return f"signal {-code}"
    if code is not None:
        return f"exit status {code}"
    return type(exc).__name__


_WRAPPER_KEYS = frozenset(("json", "binary", "pairedItem"))


def _items(returned: list[Any], index: list[int] | None) -> list[dict[str, Any]]:
    """The items of what the code returned (as JSON): an object, or
    ``{json: {...}}`` with at most n8n's other item keys beside it."""
    items = []
    for k, value in enumerate(returned):
        if type(value) is not dict:
            raise CodeError(
                f"{_where(k, index)} is not an object (an item is {{...}} or {{json: {{...}}}})",
                code=CODE_ERROR,
            )
        if "json" in value and value.keys() <= _WRAPPER_KEYS:
            inner = value["json"]
            if type(inner) is not dict:
                raise CodeError(f"{_where(k, index)}.json is not an object", code=CODE_ERROR)
            items.append(inner)
        else:
            items.append(value)
    return items


def _where(k: int, index: list[int] | None) -> str:
    return f"item {k}" if index is None else f"the item returned for item {index[k]}"


def _output(answer: dict[str, str], body: bytes) -> CodeOutput:
    status = answer["status"]
    if status == "ok":
        result = orjson.loads(body)
        items = _items(result["items"], result.get("index"))
        logs = result["logs"]
        if result["dropped"]:
            logs.append({"level": "info", "line": f"({result['dropped']} more lines dropped)"})
        return CodeOutput(items, logs)
    if status == "limit_exceeded":
        raise LimitExceededError(answer["message"])
    raise CodeError(answer["message"], code=status)
