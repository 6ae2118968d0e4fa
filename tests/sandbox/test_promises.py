"""Promise chains that never end: they run out of CPU time (or, when every link
is kept, of memory), never read as a promise that merely never settled."""

from __future__ import annotations

import pytest

from nodedrop.engine.code import CodeSandbox
from nodedrop.engine.errors import CodeError
from nodedrop.engine.limits import DEFAULT_LIMITS
from tests.sandbox.conftest import run_code

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Each link's promise is resolved with the next one, so every link stays
# reachable from the newest: about 600 bytes a link in QuickJS. 200 ms of CPU
# makes a few tens of thousands of links, far under 64 MiB.
AWAITED_CHAIN = "function f(){return Promise.resolve().then(f)} await f()"
# Nobody keeps the chain: it runs in constant memory until the CPU limit.
DROPPED_CHAIN = "function f(){return Promise.resolve().then(f)} f(); await new Promise(() => {})"
MICROTASKS = "const f = () => queueMicrotask(f); f(); await new Promise(() => {})"


async def _code(sandbox: CodeSandbox, source: str, **limits: int) -> tuple[str, str]:
    with pytest.raises(CodeError) as err:
        await run_code(sandbox, source, **limits)
    return err.value.code, err.value.message


@pytest.mark.parametrize("source", [AWAITED_CHAIN, DROPPED_CHAIN, MICROTASKS])
async def test_a_chain_that_never_ends_runs_out_of_cpu_time(
    sandbox: CodeSandbox, source: str
) -> None:
    code, message = await _code(sandbox, source, cpu_ms=200, memory_bytes=64 * 1024 * 1024)
    assert code == "code_timeout", message
    assert "CPU time limit of 200 ms" in message


async def test_at_the_default_limits_the_awaited_chain_ends_at_a_limit(
    sandbox: CodeSandbox,
) -> None:
    code, message = await _code(
        sandbox,
        AWAITED_CHAIN,
        cpu_ms=DEFAULT_LIMITS.code_cpu_ms,
        memory_bytes=DEFAULT_LIMITS.code_memory_bytes,
    )
    assert code in ("code_timeout", "code_memory_exceeded"), message


async def test_a_promise_nothing_can_settle_is_still_told_apart(sandbox: CodeSandbox) -> None:
    code, message = await _code(sandbox, "await new Promise(() => {})", cpu_ms=2000)
    assert code == "code_error"
    assert "never settled" in message
