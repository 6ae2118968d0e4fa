"""Client side of gRPC: channels and calls that always carry a deadline.

Stubs are built per use-site object from a channel it owns or is given, never
as module globals, so each service's lifecycle closes what it opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from nodedrop.common.auth import bearer_metadata
from nodedrop.common.errors import from_rpc_error
from nodedrop.common.server import grpc_options
from nodedrop.common.settings import Address
from nodedrop.common.tls import TlsSettings
from nodedrop.common.tracing import client_interceptors

__all__ = ["DEFAULT_TIMEOUT_S", "call", "open_channel"]

DEFAULT_TIMEOUT_S = 10.0
_DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

ResponseT = TypeVar("ResponseT")


def open_channel(
    target: Address | str,
    *,
    max_message_bytes: int = _DEFAULT_MAX_MESSAGE_BYTES,
    tls: TlsSettings | None = None,
) -> grpc.aio.Channel:
    """A channel with mutual TLS when ``tls`` is given (NODEDROP_TLS_*), else
    a plain one (traffic stays inside the deployment's network).

    Every call carries the caller's trace context, so the callee's server
    span joins the caller's trace (api -> scheduler, gateway -> events).
    """
    address = target.target if isinstance(target, Address) else target
    options: list[tuple[str, Any]] = list(grpc_options(max_message_bytes))
    if tls is None:
        return grpc.aio.insecure_channel(
            address, options=options, interceptors=client_interceptors()
        )
    return grpc.aio.secure_channel(
        address,
        tls.channel_credentials(),
        options=options + tls.channel_options(),
        interceptors=client_interceptors(),
    )


async def call(
    method: Callable[..., Awaitable[ResponseT]],
    request: Any,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    credential: str | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> ResponseT:
    """Calls a unary stub method with a deadline; failures become domain errors.

    A status with a domain meaning (NOT_FOUND, INVALID_ARGUMENT with its field
    violations, UNAVAILABLE, ...) is raised as that ``NodedropError``; any other
    (INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED) stays an ``AioRpcError``.
    """
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive: every call needs a deadline")
    all_metadata = tuple(metadata)
    if credential is not None:
        all_metadata += bearer_metadata(credential)
    try:
        return await method(request, timeout=timeout_s, metadata=all_metadata or None)
    except grpc.aio.AioRpcError as exc:
        error = from_rpc_error(exc.code(), exc.details(), _metadata(exc.trailing_metadata()))
        if error is None:
            raise
        raise error from exc


def _metadata(raw: Any) -> list[tuple[str, str | bytes]]:
    if raw is None:
        return []
    return [(str(k), v) for k, v in raw]
