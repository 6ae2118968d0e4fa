"""`nodedrop dev` keeps its development key across restarts (beside its store's
file) instead of adding a new one at every start."""

from __future__ import annotations

import stat
from pathlib import Path

from nodedrop.api.provisioning import DEV_TENANT, dev_key_file, ensure_dev_key
from nodedrop.api.repository_sqlite import SqliteRepository


async def _start(db: str, remembered: Path) -> tuple[str, int]:
    """One start of the dev API: the key it prints, and how many keys the tenant has."""
    repo = await SqliteRepository.open(db)
    try:
        key = await ensure_dev_key(repo, None, remembered)
        return key, len(await repo.list_api_keys(DEV_TENANT))
    finally:
        await repo.close()


async def test_the_key_is_reused_across_restarts(tmp_path: Path) -> None:
    db = str(tmp_path / "nodedrop-dev.sqlite3")
    remembered = dev_key_file(db)
    assert remembered == tmp_path / "nodedrop-dev.key"
    first, count = await _start(db, remembered)
    assert count == 1
    assert stat.S_IMODE(remembered.stat().st_mode) == 0o600
    for _ in range(3):
        again, count = await _start(db, remembered)
        assert (again, count) == (first, 1)


async def test_a_reset_store_registers_the_kept_key_again(tmp_path: Path) -> None:
    remembered = tmp_path / "dev.key"
    first, _ = await _start(str(tmp_path / "a.sqlite3"), remembered)
    # A new, empty store (the file was deleted): the user's exported key still works.
    again, count = await _start(str(tmp_path / "b.sqlite3"), remembered)
    assert (again, count) == (first, 1)


async def test_a_revoked_or_unreadable_kept_key_is_replaced(tmp_path: Path) -> None:
    db = str(tmp_path / "dev.sqlite3")
    remembered = tmp_path / "dev.key"
    first, _ = await _start(db, remembered)
    repo = await SqliteRepository.open(db)
    try:
        (record,) = await repo.list_api_keys(DEV_TENANT)
        await repo.revoke_api_key(record.id, None)
    finally:
        await repo.close()
    second, _ = await _start(db, remembered)
    assert second != first
    assert remembered.read_text().strip() == second
    remembered.write_text("not a key\n")
    third, _ = await _start(db, remembered)
    assert third not in (first, second) and remembered.read_text().strip() == third
