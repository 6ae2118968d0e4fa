"""Escape and exhaustion attempts against every sandbox adapter.

Each attempt must be contained and end with the code the docs promise
(docs/workflows.md, "Code"); after each one the same sandbox must still run
code. The ones marked "tracker" come from QuickJS's and QuickJS-ng's issue
trackers (memory-safety bugs found by fuzzing): whatever they do to a runner,
it stays inside it.
"""

from __future__ import annotations

import pytest

from nodedrop.engine.code import CodeSandbox
from nodedrop.engine.errors import CodeError, LimitExceededError
from tests.sandbox.conftest import run_code

pytestmark = pytest.mark.asyncio(loop_scope="session")

ERROR = "code_error"
TIMEOUT = "code_timeout"
MEMORY = "code_memory_exceeded"
LIMIT = "limit_exceeded"
# A tracker case may be fixed in the QuickJS build (it then runs or fails as
# plain JavaScript) or still crash a runner (which is then replaced).
TRACKER = frozenset({"ok", ERROR, MEMORY, TIMEOUT, "code_runner_lost"})

# A probe that finds nothing throws "contained"; one that finds a host object returns it.
_HOST_NAMES = (
    "['require','process','Deno','Bun','fetch','XMLHttpRequest','WebSocket','setTimeout',"
    "'setInterval','setImmediate','std','os','WebAssembly','importScripts','module',"
    "'exports','__dirname','Buffer','global','print','scriptArgs']"
)

ATTEMPTS: dict[str, tuple[str, frozenset[str] | str, str]] = {
    # -- host objects and module loading
    "require": ("require('child_process').execSync('id')", ERROR, "require is not defined"),
    "dynamic-import": ("await import('os')", ERROR, ""),
    "static-import": ("import * as os from 'os'", ERROR, "SyntaxError"),
    "process-env": ("return [process.env]", ERROR, "process is not defined"),
    "deno": ("return [Deno.readTextFileSync('/etc/passwd')]", ERROR, "Deno is not defined"),
    "fetch": ("await fetch('http://127.0.0.1:6379/')", ERROR, "fetch is not defined"),
    "xhr": ("new XMLHttpRequest()", ERROR, "XMLHttpRequest is not defined"),
    "quickjs-std-os": ("std.open('/etc/passwd', 'r')", ERROR, "std is not defined"),
    "timers": ("setTimeout(() => {}, 10); return []", ERROR, "setTimeout is not defined"),
    "globalThis-probe": (
        f"const found = Object.getOwnPropertyNames(globalThis).filter(n => {_HOST_NAMES}"
        ".includes(n)); if (found.length) return [{found}]; throw new Error('contained')",
        ERROR,
        "contained",
    ),
    "constructor-constructor": (
        "const g = constructor.constructor('return this')(); "
        "if (g.process || g.require || g.std) return [{escaped: true}]; "
        "throw new Error('contained')",
        ERROR,
        "contained",
    ),
    "function-constructor-process": ("new Function('return process')()", ERROR, "process"),
    "eval-of-host-string": ("return [{v: eval($input.first().json.src)}]", ERROR, "process"),
    "this-at-top": ("return [this.process.env]", ERROR, ""),
    "import-meta": ("return [import.meta]", ERROR, "SyntaxError"),
    # -- CPU
    "infinite-loop": ("while (true) {}", TIMEOUT, "CPU time limit"),
    "loop-in-try-catch": ("try { while (true) {} } catch (e) {} return []", TIMEOUT, ""),
    "loop-with-finally": ("try { while (true) {} } finally { return [] }", TIMEOUT, ""),
    "await-loop": ("while (true) await null", TIMEOUT, ""),
    # Each promise waits on the next, so the chain holds its whole length: it
    # ends at the CPU limit or, on a fast enough machine, the memory limit
    # first (whose failing job's rejection the chain drops); never in a
    # "promise never settled".
    "promise-chain": (
        "const f = () => Promise.resolve().then(f); f(); await new Promise(() => {})",
        frozenset({TIMEOUT, MEMORY}),
        "",
    ),
    "microtask-loop": (
        "const f = () => queueMicrotask(f); f(); await new Promise(() => {})",
        TIMEOUT,
        "",
    ),
    "exponential-retry-recursion": (
        "function f() { try { return f() } catch (e) { return f() } } f()",
        TIMEOUT,
        "",
    ),
    "console-flood": ("while (true) console.log('x'.repeat(100))", TIMEOUT, ""),
    "getter-in-thrown-message": (
        "throw { get message() { while (true) {} } }",
        TIMEOUT,
        "",
    ),
    "proxy-trap-on-output": (
        "return [new Proxy({}, { ownKeys() { while (true) {} } })]",
        TIMEOUT,
        "",
    ),
    # -- memory
    "unbounded-recursion": ("function f() { return f() + 1 } f()", MEMORY, ""),
    "string-doubling": ("let s = 'x'; while (true) s += s", MEMORY, ""),
    "string-repeat": ("return [{s: 'x'.repeat(2 ** 30)}]", MEMORY, ""),
    "array-push": ("const a = []; while (true) a.push('x'.repeat(1000))", MEMORY, "memory limit"),
    "array-fill": ("new Array(1e9).fill(0)", MEMORY, ""),
    "array-buffer": ("new ArrayBuffer(2 ** 30)", MEMORY, ""),
    "object-keys": ("const o = {}; for (let i = 0; ; i++) o['k' + i] = i", MEMORY, ""),
    "map-growth": (
        "const m = new Map(); for (let i = 0; ; i++) m.set(i, 'x'.repeat(1000) + i)",
        MEMORY,
        "",
    ),
    "deep-output": (
        "let o = {}; for (let i = 0; i < 1e6; i++) o = {o}; return [o]",
        MEMORY,
        "",
    ),
    # -- output and blocking
    "huge-output": (
        "return Array.from({length: 20000}, (_, i) => ({i, s: 'x'.repeat(100)}))",
        LIMIT,
        "max_output_bytes",
    ),
    "toJSON-scalar-item": ("return [{ toJSON() { return 5 } }]", ERROR, "item 0 is not an object"),
    "atomics-wait": (
        "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)",
        ERROR,
        "",
    ),
    "webassembly": (
        "await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))",
        ERROR,
        "WebAssembly is not defined",
    ),
    "never-settles": ("await new Promise(() => {})", ERROR, "never settled"),
    # -- from the engine's issue trackers
    "tracker-typed-array-sort-resize": (
        "const ab = new ArrayBuffer(256, {maxByteLength: 2560}); const u8 = new Uint8Array(ab);"
        "for (let i = 0; i < 256; i++) u8[i] = i; u8[255] = 0; let n = 0;"
        "u8.sort((a, b) => { if (++n === 1734) ab.resize(10); return a - b }); return []",
        TRACKER,
        "",
    ),
    "tracker-typed-array-ctor-side-effect": (
        "const ab = new ArrayBuffer(64, {maxByteLength: 128}); const src = new Uint8Array(ab);"
        "const C = function () {}.bind(); Object.defineProperty(C, 'prototype', "
        "{ get() { ab.resize(0); return Uint8Array.prototype } });"
        "Reflect.construct(Uint8Array, [src], C); return []",
        TRACKER,
        "",
    ),
    "tracker-spread-under-oom": (
        "const a = new Int8Array(2483647 + 100000); const b = {...a}; return []",
        TRACKER,
        "",
    ),
    "tracker-65537-arguments": (
        "const f = Function.apply(null, Array.from({length: 65537}, (_, i) => 'a' + i)"
        ".concat(['return 1'])); return [{v: f()}]",
        TRACKER,
        "",
    ),
}


async def test_there_are_at_least_thirty_attempts() -> None:
    assert len(ATTEMPTS) >= 30


@pytest.mark.parametrize("name", sorted(ATTEMPTS))
async def test_attempt_is_contained(sandbox: CodeSandbox, name: str) -> None:
    source, expected, words = ATTEMPTS[name]
    got = "ok"
    message = ""
    try:
        await run_code(
            sandbox,
            source,
            items=[{"src": "process.env"}],
            max_output_bytes=1_000_000,
            # A memory bomb gets CPU time to reach its limit on a loaded machine.
            cpu_ms=5000 if expected == MEMORY else 500,
        )
    except (CodeError, LimitExceededError) as exc:
        got, message = exc.code, exc.message
    allowed = expected if isinstance(expected, frozenset) else frozenset({expected})
    assert got in allowed, f"{name}: {got}: {message}"
    assert words in message, message
    # The sandbox still runs code, on a clean context.
    after = await run_code(sandbox, "return [{clean: typeof globalThis.polluted}]")
    assert after.items == [{"clean": "undefined"}]


async def test_prototype_pollution_stays_in_its_run(sandbox: CodeSandbox) -> None:
    polluter = await run_code(
        sandbox,
        "Object.prototype.polluted = 'yes'; Array.prototype.map = null; "
        "JSON.stringify = () => '{}'; globalThis.__nd = null; return [{}]",
    )
    # The runner's own references were taken before the code ran.
    assert polluter.items == [{}]
    for _ in range(3):  # whichever runner serves the next runs
        other = await run_code(
            sandbox,
            "return [{p: ({}).polluted === undefined, m: typeof [].map, "
            "s: JSON.stringify({a: 1})}]",
        )
        assert other.items == [{"p": True, "m": "function", "s": '{"a":1}'}]


async def test_proto_keys_come_back_as_plain_data(sandbox: CodeSandbox) -> None:
    out = await run_code(sandbox, 'return [JSON.parse(\'{"__proto__": {"admin": true}}\')]')
    assert out.items == [{"__proto__": {"admin": True}}]
    assert "admin" not in dir({})
