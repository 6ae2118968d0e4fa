"""Secrets out of text: the one redaction step every log line and client message goes through.

What is masked:

- the password of a URL (``scheme://user:pass@host`` becomes ``scheme://user:***@host``)
  and ``password=...`` pairs of key/value connection strings;
- API keys and tickets (``ndk_<id>_<secret>`` keeps its public id: ``ndk_<id>_***``);
- the value of any setting whose name says it is secret (``*TOKEN*``, ``*SECRET*``,
  ``*PASSWORD*``, ``*KEY*``, ``*CREDENTIAL*``), whether it appears as a mapping
  entry or as ``NAME=value`` / ``'NAME': 'value'`` text;
- any literal secret value the process was given (``Redactor(known=...)``:
  the values of such settings and the passwords inside its URLs), wherever
  it appears, since a library may print it in a form no pattern foresees.

Redaction may mask more than a secret (a ``host:port/path@x`` looks like a
URL password); it must never mask less.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "Redactor", "is_secret_name", "known_secrets"]

MASK = "***"

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTHORIZATION", re.I)
# Lower-case field names that always hold a credential (``api_key_id`` does not).
_SECRET_FIELDS = frozenset(
    {"password", "passwd", "secret", "token", "credential", "api_key", "authorization", "ticket"}
)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):[^\s@'\"]*@")
_PAIR_PASSWORD = re.compile(r"((?:password|passwd|pwd)\s*[=:]\s*['\"]?)[^'\"\s,&;)}]+", re.I)
_TOKEN = re.compile(
    r"(nd[kt]_[0-9a-f]{12}_)[A-Za-z0-9_\-]+|nd[kt]_(?![0-9a-f]{12}_)[A-Za-z0-9_\-]+"
)
_NAMED_VALUE = re.compile(
    r"([A-Za-z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL)[A-Za-z0-9_]*['\"]?\s*[=:]\s*['\"]?)"
    r"(?!\*\*\*)[^'\"\s,}]+"
)
# Shorter values are too common to mask everywhere (``1``, ``true``).
_MIN_KNOWN_LEN = 6


def is_secret_name(name: str) -> bool:
    """A variable or field name whose value must never be shown."""
    if name.lower() in _SECRET_FIELDS:
        return True
    # Upper-case names are settings (``NODEDROP_SERVICE_TOKEN``); lower-case
    # field names like ``key_id`` or ``redis_key`` are not secrets.
    return name.isupper() and _SECRET_NAME.search(name) is not None


def _url_password(value: str) -> str | None:
    if "://" not in value or "@" not in value:
        return None
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return None
    return unquote(password) if password else None


def known_secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """The literal secrets an environment holds: values of secret-named
    variables and passwords of URLs, longest first."""
    found: set[str] = set()
    for name, raw in env.items():
        value = raw.strip()
        if is_secret_name(name) and len(value) >= _MIN_KNOWN_LEN:
            found.add(value)
        password = _url_password(value)
        if password is not None and len(password) >= _MIN_KNOWN_LEN:
            found.add(password)
    return tuple(sorted(found, key=len, reverse=True))


class Redactor:
    def __init__(self, known: Iterable[str] = (), *, max_depth: int = 32) -> None:
        self._known = tuple(s for s in known if len(s) >= _MIN_KNOWN_LEN)
        self._max_depth = max_depth

    def text(self, text: str) -> str:
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MASK)
        # Every pattern needs one of these; plain substring tests are far
        # cheaper than any regex, and most log text has none of them.
        if ":" not in text and "=" not in text and "ndk_" not in text and "ndt_" not in text:
            return text
        text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
        text = _PAIR_PASSWORD.sub(rf"\1{MASK}", text)
        text = _TOKEN.sub(_mask_token, text)
        return _NAMED_VALUE.sub(rf"\1{MASK}", text)

    def value(self, value: Any, depth: int = 0) -> Any:
        """A copy of ``value`` with every string redacted; nesting beyond
        ``max_depth`` is replaced by a marker rather than walked."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth >= self._max_depth:
            return "<nested too deep>"
        if isinstance(value, Mapping):
            return {
                key: MASK
                if isinstance(key, str) and is_secret_name(key)
                else self.value(v, depth + 1)
                for key, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v, depth + 1) for v in value]
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        return self.text(repr(value) if isinstance(value, BaseException) else str(value))


def _mask_token(match: re.Match[str]) -> str:
    prefix = match.group(1)
    return f"{prefix}{MASK}" if prefix else f"{match.group(0)[:4]}{MASK}"
