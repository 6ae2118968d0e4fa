"""What the Redis adapter relies on below redis-py's client API, pinned.

The adapter's hot paths (``_pipe``, ``_command``) take a connection from the
pool and write hiredis-packed commands on it, and its connection class packs
with hiredis too: the per-command Python of redis-py's client cost a worker
more than Redis spends on a script.  That is redis-py's connection API, not
its documented client API, so each behaviour the adapter depends on is pinned
here; an upgrade of redis (pinned in pyproject.toml) must keep them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from nodedrop.store.redis_store import RedisStore, _FastConnection

ROOT = Path(__file__).resolve().parents[2]


def _pack(*args: Any) -> bytes:
    packed: bytes = hiredis.pack_command(args)
    return packed


def test_the_installed_redis_py_is_the_pinned_one() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(r"redis\[", d)]
    assert pin.endswith(f"=={redis.__version__}"), (pin, redis.__version__)


def _single(store: RedisStore) -> aioredis.Redis:
    client = store.client
    if not isinstance(client, aioredis.Redis):
        # TEST_REDIS=cluster: these pin the single-node adapter's own connection path.
        pytest.skip("the single-node adapter's pooled connection")
    return client


async def test_a_pooled_connection_sends_packed_commands_and_reads_replies(
    redis_store: RedisStore,
) -> None:
    pool = _single(redis_store).connection_pool
    key = f"{redis_store.config.keys.prefix}:contract"
    # get_connection() takes no command name (it did before redis-py 5.3).
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await conn.send_packed_command(_pack("SET", key, b"\xff\x00") + _pack("GET", key))
        assert await conn.read_response() == "OK"
        # disable_decoding leaves a reply as bytes on a decoding client.
        assert await conn.read_response(disable_decoding=True) == b"\xff\x00"
        # An error reply is raised, and the connection stays in step.
        await conn.send_packed_command(_pack("INCR", key))
        with pytest.raises(ResponseError):
            await conn.read_response()
        await conn.send_packed_command(_pack("PING"))
        assert await conn.read_response() == "PONG"
    finally:
        await pool.release(conn)
    # Released, it is the one the pool hands out next.
    again = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert again is conn
    finally:
        await pool.release(again)
    await redis_store.client.delete(key)


async def test_the_connection_class_packs_every_command_and_pipeline(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _single(redis_store).connection_pool.connection_class is _FastConnection
    packed: list[tuple[object, ...]] = []
    original = _FastConnection.pack_command

    def spy(self: _FastConnection, *args: object) -> list[bytes]:
        packed.append(args)
        return original(self, *args)

    monkeypatch.setattr(_FastConnection, "pack_command", spy)
    key = f"{redis_store.config.keys.prefix}:contract-stream"
    await redis_store.client.xadd(key, {"f": "v"})
    # A two-word command name arrives as one string and is split.
    groups = await redis_store.client.xinfo_groups(key)
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.xlen(key)
    pipe.type(key)
    assert await pipe.execute() == [1, "stream"]
    assert groups == []
    names = [a[0] for a in packed]
    assert names[:1] == ["XADD"] and "XINFO GROUPS" in names
    assert names[-2:] == ["XLEN", "TYPE"]
    await redis_store.client.delete(key)


async def test_a_reply_callback_replaced_for_xreadgroup_gives_the_raw_reply(
    redis_store: RedisStore,
) -> None:
    key = f"{redis_store.config.keys.prefix}:contract-group"
    await redis_store.client.xgroup_create(key, "g", id="0", mkstream=True)
    entry_id = await redis_store.client.xadd(key, {"a": "1", "b": "2"})
    reply = await redis_store.client.xreadgroup("g", "c", {key: ">"}, count=10)
    # Lists as the server sent them (RESP2), not the dicts of the default callback.
    assert reply == [[key, [[entry_id, ["a", "1", "b", "2"]]]]]
    await redis_store.client.delete(key)
