"""``open_store`` in `nodedrop dev`: memory only for the default address with
nothing listening there, once per process; a named Redis that fails is
``Unusable`` with the reason. (As a real `nodedrop dev` process, with a cluster
node, a refused login and a server that is not Redis:
tests/cli/test_dev_stores.py.)"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from nodedrop.store.errors import Unusable
from nodedrop.store.factory import open_store
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.ports import free_port
from tests.store.conftest import make_config


async def test_nothing_listening_on_the_default_address_is_memory_said_once() -> None:
    config = make_config()
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with capture_logs() as logs:
        first = await open_store(nowhere, config, dev=True, url_set=False)
        second = await open_store(nowhere, config, dev=True, url_set=False)
    assert isinstance(first, MemoryStore) and second is first
    said = [entry for entry in logs if "in-memory store" in entry["event"]]
    assert len(said) == 1 and said[0]["address"] == nowhere, logs


async def test_a_named_redis_nothing_answers_at_is_unusable() -> None:
    port = free_port()
    with pytest.raises(Unusable, match=f"Error 111 connecting to 127.0.0.1:{port}"):
        await open_store(f"redis://127.0.0.1:{port}/0", make_config(), dev=True, url_set=True)


async def test_a_named_redis_that_answers_is_used(redis_url: str) -> None:
    store = await open_store(redis_url, make_config(), dev=True, url_set=True)
    assert isinstance(store, RedisStore)
    await store.delete_all()
    await store.close()


async def test_outside_dev_nothing_listening_is_retried_later() -> None:
    # Not fatal for a service on its own (no crash loop while Redis restarts).
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    store = await open_store(nowhere, make_config(), dev=False, url_set=True)
    try:
        assert isinstance(store, RedisStore)
    finally:
        await store.close()
