"""The redaction step and the log line bound, in process."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import orjson
import pytest
import structlog

from nodedrop.common import logging as nodedrop_logging
from nodedrop.common.errors import InvalidArgument, to_rpc_status
from nodedrop.common.logging import configure_logging, get_logger
from nodedrop.common.redaction import Redactor, is_secret_name, known_secrets
from nodedrop.common.settings import LogSettings, PostgresSettings, SettingsError

KEY = "ndk_0123456789ab_" + "A" * 43
TICKET = "ndt_0123456789ab_1900000000_" + "f" * 64


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://app:pw@db:5432/nd", "postgresql://app:***@db:5432/nd"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "connect failed for rediss://u:p%40ss@h/0 now",
            "connect failed for rediss://u:***@h/0 now",
        ),
        ("host=db password=hunter22 user=app", "host=db password=*** user=app"),
        (f"Bearer {KEY}", "Bearer ndk_0123456789ab_***"),
        (f"?ticket={TICKET}", "?ticket=ndt_0123456789ab_***"),
        ("ndk_short", "ndk_***"),
        ("NODEDROP_SERVICE_TOKEN=abc123 next", "NODEDROP_SERVICE_TOKEN=*** next"),
        ("{'AWS_SECRET_ACCESS_KEY': 'xyz'}", "{'AWS_SECRET_ACCESS_KEY': '***'}"),
        ("plain text with key_id=abc", "plain text with key_id=abc"),
    ],
)
def test_patterns(text: str, shown: str) -> None:
    assert Redactor().text(text) == shown


def test_known_secrets_are_masked_in_any_form() -> None:
    env = {
        "DATABASE_URL": "postgresql://app:Sup3rSecret@db/nd",
        "NODEDROP_SERVICE_TOKEN": "tok-0123456789",
        "LOG_LEVEL": "info",
    }
    secrets = known_secrets(env)
    assert set(secrets) == {"Sup3rSecret", "tok-0123456789"}
    redactor = Redactor(secrets)
    assert redactor.text("login as app with Sup3rSecret failed") == "login as app with *** failed"
    assert redactor.value({"env": env, "n": 3}) == {
        "env": {
            "DATABASE_URL": "postgresql://app:***@db/nd",
            "NODEDROP_SERVICE_TOKEN": "***",
            "LOG_LEVEL": "info",
        },
        "n": 3,
    }


def test_secret_names() -> None:
    assert is_secret_name("NODEDROP_SERVICE_TOKEN") and is_secret_name("DB_PASSWORD")
    assert is_secret_name("password") and is_secret_name("api_key")
    assert not is_secret_name("api_key_id") and not is_secret_name("redis_key")


def test_nesting_is_bounded() -> None:
    value: object = "leaf"
    for _ in range(500):
        value = [value]
    depth, cur = 0, Redactor(max_depth=8).value(value)
    while isinstance(cur, list):
        depth, cur = depth + 1, cur[0]
    assert depth == 8 and cur == "<nested too deep>"


def test_settings_errors_mask_passwords() -> None:
    with pytest.raises(SettingsError) as info:
        PostgresSettings.from_env({"DATABASE_URL": "postgresql://u:Sup3rSecret@h:x/db"})
    assert "Sup3rSecret" not in str(info.value) and "u:***@h:x" in str(info.value)


def test_client_messages_are_redacted() -> None:
    status = to_rpc_status(InvalidArgument.field("url", "cannot reach http://u:Sup3rSecret@h/"))
    assert "Sup3rSecret" not in status.details
    details = status.trailing_metadata[0][1]
    assert isinstance(details, bytes) and b"Sup3rSecret" not in details


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(nodedrop_logging, "_configured", None)
    configure_logging(
        LogSettings(level="info", format="json", max_line_bytes=2048, secrets=("Sup3rSecret",))
    )
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    # configure_logging also routes warnings and uncaught exceptions to the log.
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__
    threading.excepthook = threading.__excepthook__


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]


def _fail(dsn: str, credential: str) -> None:
    raise RuntimeError("lookup failed")


@pytest.mark.usefixtures("json_logs")
def test_tracebacks_have_no_locals_and_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        _fail("postgresql://u:Sup3rSecret@h/x", KEY)
    except RuntimeError:
        get_logger("t").exception("auth failed", header=f"Bearer {KEY}")
    [line] = _lines(capsys)
    text = orjson.dumps(line).decode()
    assert "Sup3rSecret" not in text and KEY not in text
    frames = line["exception"][0]["frames"]  # type: ignore[index]
    assert frames and all("locals" not in f for f in frames)
    assert line["header"] == "Bearer ndk_0123456789ab_***"


@pytest.mark.usefixtures("json_logs")
def test_long_lines_are_cut_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    get_logger("t").info("big", execution_id="ex-1", payload="x" * 100_000)
    get_logger("t").info("many", **{f"f{i}": "y" * 100 for i in range(100)})
    big, many = _lines(capsys)
    for line in (big, many):
        assert len(orjson.dumps(line)) <= 2048
        truncated = line["truncated"]
        assert isinstance(truncated, int) and truncated > 2048
    assert big["event"] == "big" and big["execution_id"] == "ex-1"
    assert int(str(big["truncated"])) >= 100_000


@pytest.mark.usefixtures("json_logs")
def test_stdlib_records_take_the_same_path(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("asyncpg").warning("lost %s", "postgresql://u:Sup3rSecret@h/x")
    logging.getLogger("grpc").error("z" * 10_000)
    lost, big = _lines(capsys)
    assert lost["event"] == "lost postgresql://u:***@h/x" and lost["logger"] == "asyncpg"
    assert int(str(big["truncated"])) > 10_000
