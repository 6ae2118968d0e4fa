"""A runner process: runs code node runs, one at a time, in fresh QuickJS contexts.

Started by ProcessSandbox as ``python -I -m nodedrop.sandbox.child MEMORY``,
with an empty environment and no open files but its pipes. It reads framed
requests on stdin and writes framed answers on stdout (``frames.py``). Each
run gets a new context (nothing of one run, one tenant's, is seen by the
next), made while the runner waits for its request. QuickJS holds the run to
its memory limit (its allocator) and to its CPU time (an interrupt checked
by the interpreter, with the budget shared by every job the run queues);
the process limits below are a second wall behind them.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import quickjs

from nodedrop.engine.code import RUN_ONCE_FOR_EACH_ITEM
from nodedrop.engine.errors import CODE_ERROR, CODE_MEMORY_EXCEEDED, CODE_TIMEOUT
from nodedrop.engine.js_syntax import WRAPPER_LINES, wrap
from nodedrop.sandbox.frames import read_frame, write_frame

# The C stack QuickJS may use (deep recursion ends as a stack overflow).
_STACK = 1024 * 1024
# What the interpreter, its modules and a context take beyond a run's memory
# limit; RLIMIT_AS is that plus twice the limit (strings may be copied once).
_BASE_ADDRESS_SPACE = 512 * 1024 * 1024
_CLOCK_SLACK_S = 0.005
# Promise jobs run before the heap is first sampled, and the share of the
# memory limit a sampled heap must have reached for a drained, unsettled run
# to be called out of memory (samples are a quarter-octave apart, so the last
# one before the limit saw at least 4/5 of the heap).
_FIRST_SAMPLE = 1024
_HEAP_PEAK_SHARE = 0.5
_POSITION = re.compile(r"<input>:(\d+)(?::(\d+))?")
# Read before the process limits close the door on files.
PRELUDE = (Path(__file__).parent / "prelude.js").read_text()


def _confine(memory: int) -> None:
    """Process limits: no files written, no processes, no core, bounded memory."""
    limits = (
        (resource.RLIMIT_AS, _BASE_ADDRESS_SPACE + 2 * memory),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_NOFILE, 8),
    )
    for which, value in limits:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))


class _Context:
    __slots__ = ("ctx", "memory", "nd")

    def __init__(self, memory: int) -> None:
        self.memory = memory
        ctx = quickjs.Context()
        ctx.set_memory_limit(memory)
        ctx.set_max_stack_size(_STACK)
        self.ctx = ctx
        # The prelude's one function, held here only: no global names it.
        self.nd = ctx.eval(PRELUDE)


def _position(text: str) -> str:
    match = _POSITION.search(text)
    if match is None:
        return ""
    line = int(match.group(1)) - WRAPPER_LINES
    if line < 1:
        return ""
    return f" (line {line}" + (f", column {match.group(2)})" if match.group(2) else ")")


def _classify(name: str, message: str) -> str:
    if (
        name == "InternalError" and message in ("out of memory", "string too long")
    ) or name == "null":
        return CODE_MEMORY_EXCEEDED
    if name == "RangeError" and message in (
        "Maximum call stack size exceeded",
        "invalid string length",
        "invalid array length",
    ):
        return CODE_MEMORY_EXCEEDED
    return CODE_ERROR


def _exception(exc: Exception) -> tuple[str, str]:
    text = str(exc)
    first = text.split("\n", 1)[0]
    name, _, message = first.partition(": ")
    if isinstance(exc, quickjs.StackOverflow):
        return CODE_MEMORY_EXCEEDED, f"stack overflow: {first}"
    return _classify(name, message), first + _position(text)


def _memory_limit(header: dict[str, Any]) -> str:
    return f"{header['memory_bytes']:,} bytes, code_memory_bytes, NODEDROP_CODE_MEMORY_BYTES"


def _failed(code: str, message: str, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    if code == CODE_MEMORY_EXCEEDED:
        message += f"; the code went past its memory limit ({_memory_limit(header)})"
    return {"status": code, "message": message}, b""


def _run(context: _Context, header: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    ctx = context.ctx
    budget: float = header["cpu_ms"] / 1000.0
    started = time.process_time()

    def left() -> float:
        spent: float = time.process_time() - started
        return budget - spent

    def timeout() -> tuple[dict[str, Any], bytes]:
        return {
            "status": CODE_TIMEOUT,
            "message": f"the code ran past its CPU time limit of {header['cpu_ms']} ms "
            "(code_cpu_ms, NODEDROP_CODE_CPU_MS)",
        }, b""

    try:
        ctx.set_time_limit(max(left(), 0.001))
        fn = ctx.eval(wrap(header["source"], prologue=""))
        ctx.set_time_limit(max(left(), 0.001))
        nd = context.nd
        nd(
            fn,
            data.decode(),
            header["mode"] == RUN_ONCE_FOR_EACH_ITEM,
            header["max_log_lines"],
            header["max_log_bytes"],
        )
        # Promise jobs run one by one, the run's CPU budget spanning all of
        # them, until the code's promise settles: jobs it leaves behind are
        # dropped with the context, as a returned function's would be.
        result = nd()
        jobs, sample_at, heap_peak = 0, _FIRST_SAMPLE, 0
        while result == "":
            if left() <= 0:
                return timeout()
            ctx.set_time_limit(left())
            if not ctx.execute_pending_job():
                break
            ctx.set_time_limit(max(left(), 0.001))
            result = nd()
            jobs += 1
            if jobs == sample_at:
                # A job that runs out of memory rejects its promise, which a
                # chain nobody awaits drops, and the heap once freed no
                # longer shows it: so long chains sample what the allocator
                # holds as they grow (quarter-octave steps: a walk of the
                # heap costs about what the jobs since the last sample did).
                heap_peak = max(heap_peak, ctx.memory().get("malloc_size", 0))
                sample_at += max(sample_at // 4, 1)
    except (quickjs.JSException, quickjs.StackOverflow) as exc:
        code, message = _exception(exc)
        if left() <= 0 or message.startswith("InternalError: interrupted"):
            return timeout()
        return _failed(code, message, header)
    except MemoryError:
        return {
            "status": CODE_MEMORY_EXCEEDED,
            "message": "the code's data did not fit in the runner's memory",
        }, b""
    if not isinstance(result, str) or result == "":
        if left() <= _CLOCK_SLACK_S:
            # The CPU limit interrupted a promise job: QuickJS turns that into
            # the job's rejection, which a chain of promises nobody awaits
            # drops, leaving the queue empty and the run unsettled. (QuickJS
            # reads the clock on its own, so its interrupt may come a tick
            # before ours says the budget is gone.)
            return timeout()
        used = ctx.memory().get("memory_used_size", 0)
        if used > context.memory * 0.9 or heap_peak > context.memory * _HEAP_PEAK_SHARE:
            # A job that ran out of memory ends the job queue without a word.
            return _failed(CODE_MEMORY_EXCEEDED, "out of memory in a promise job", header)
        return {
            "status": CODE_ERROR,
            "message": "the code's promise never settled (no timer or I/O exists to settle it)",
        }, b""
    body = result.encode()
    if len(body) > header["max_output_bytes"] + header["max_log_bytes"] * 2 + 65536:
        return {
            "status": "limit_exceeded",
            "message": f"the code's output is over {header['max_output_bytes']:,} bytes of "
            "JSON (max_output_bytes)",
        }, b""
    if body.startswith(b'{"error"'):
        err = orjson.loads(body)["error"]
        code = _classify(err["name"], err["message"])
        if err["name"] == "null":
            return {
                "status": code,
                "message": f"the code went past its memory limit ({_memory_limit(header)}); "
                "a `throw null` reads the same",
            }, b""
        message = f"{err['name']}: {err['message']}{_position(err['stack'])}"
        if message.startswith("InternalError: interrupted"):
            return timeout()
        return _failed(code, message, header)
    return {"status": "ok"}, body


def main() -> None:
    memory = int(sys.argv[1])
    # A request is read in one system call where it fits the buffer; an answer
    # is written unbuffered, whole, with nothing left waiting in a buffer.
    stdin, stdout = os.fdopen(0, "rb"), os.fdopen(1, "wb", buffering=0)
    _confine(memory)
    context = _Context(memory)
    write_frame(stdout, b"ready", b"")  # confined, and its first context made
    while True:
        frame = read_frame(stdin)
        if frame is None:
            return  # the host closed the pipe: it is gone or done with this runner
        header_bytes, data = frame
        header = orjson.loads(header_bytes)
        if header["memory_bytes"] != context.memory:
            # The old context goes first: freeing one after making another
            # leaves the new one's promise jobs dropped (the binding's state).
            del context
            context = _Context(header["memory_bytes"])
        answer, body = _run(context, header, data)
        write_frame(stdout, orjson.dumps(answer), body)
        # The next run's context, made while nobody waits for it.
        memory = context.memory
        del context
        context = _Context(memory)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        main()
    os._exit(0)
