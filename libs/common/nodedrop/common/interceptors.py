"""Server interceptors: request logging, error mapping, authentication.

Each one wraps the handler's behaviour in an async context manager ("scope")
that runs around the call, whatever its shape: unary, server-streaming (async
generator or ``context.write`` style), client-streaming, bidirectional. The
shape is preserved, since grpc.aio dispatches on it.

Order on the server (outermost first): logging, errors, auth. Auth failures
are domain errors, so they go through the same mapping as everything else.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc

from nodedrop.common.auth import Authenticator, parse_bearer, reset_principal, set_principal
from nodedrop.common.errors import NodedropError, Unauthenticated, internal_status, to_rpc_status
from nodedrop.common.logging import get_logger

__all__ = [
    "DEFAULT_PUBLIC_METHODS",
    "AuthInterceptor",
    "ErrorInterceptor",
    "LoggingInterceptor",
]

log = get_logger("nodedrop.rpc")

# grpc ships no type information: contexts and handlers are Any to mypy.
Context: TypeAlias = Any
Scope = Callable[[str, Context], contextlib.AbstractAsyncContextManager[None]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

# Full method names, or service prefixes ending in "/", callable without credentials.
DEFAULT_PUBLIC_METHODS: frozenset[str] = frozenset(
    {
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/grpc.reflection.v1.ServerReflection/",
        "/nodedrop.auth.v1.AuthService/Authenticate",
        "/nodedrop.execution.v1.ExecutionService/GetSystemHealth",
    }
)


def _wrap(handler: grpc.RpcMethodHandler, method: str, scope: Scope) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method, scope),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, method, scope),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream(handler.unary_stream, method, scope),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        _wrap_stream(handler.stream_stream, method, scope),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _wrap_unary(behaviour: Any, method: str, scope: Scope) -> Any:
    async def unary(request: Any, context: Context) -> Any:
        async with scope(method, context):
            result = behaviour(request, context)
            if inspect.isawaitable(result):
                result = await result
            return result

    return unary


def _wrap_stream(behaviour: Any, method: str, scope: Scope) -> Any:
    if inspect.isasyncgenfunction(behaviour):

        async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
            async with scope(method, context):
                responses: AsyncIterator[Any] = behaviour(request, context)
                try:
                    async for response in responses:
                        yield response
                finally:
                    # Close the inner generator inside the scope, so its
                    # cleanup runs with the principal and logging still set.
                    await responses.aclose()  # type: ignore[attr-defined]

        return generator

    # ``context.write`` style (the health service's Watch) or a plain
    # function (generated base classes answering UNIMPLEMENTED).
    async def writer(request: Any, context: Context) -> None:
        async with scope(method, context):
            result = behaviour(request, context)
            if inspect.isawaitable(result):
                await result
            elif isinstance(result, Iterable):
                for response in result:
                    await context.write(response)

    return writer


class _ScopeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def _scope(self, method: str, context: Context) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def _applies(self, method: str) -> bool:
        return True

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not self._applies(method):
            return handler
        return _wrap(handler, method, self._scope)


def _status_name(context: Context) -> str:
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    # Codes set through abort() come back as plain ints in some versions.
    for candidate in grpc.StatusCode:
        if candidate.value[0] == code:
            return str(candidate.name)
    return str(code)


class LoggingInterceptor(_ScopeInterceptor):
    """One line per RPC: method, final status, duration."""

    @contextlib.asynccontextmanager
    async def _scope(self, method: str, context: Context) -> AsyncIterator[None]:
        started = time.perf_counter()
        status = "UNKNOWN"
        try:
            yield
            status = _status_name(context)
        except BaseException:
            status = _status_name(context)
            if status == "OK":
                # Not aborted through the error interceptor: the peer went
                # away (CancelledError) or the handler crashed outright.
                status = "CANCELLED"
            raise
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            log.info("rpc", method=method, status=status, duration_ms=duration_ms)


class ErrorInterceptor(_ScopeInterceptor):
    """The one place where exceptions become gRPC statuses."""

    @contextlib.asynccontextmanager
    async def _scope(self, method: str, context: Context) -> AsyncIterator[None]:
        try:
            yield
        except grpc.aio.AbortError:
            # The handler already chose its status with context.abort().
            raise
        except NodedropError as exc:
            status = to_rpc_status(exc)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception:
            code = context.code()
            if code is not None and code not in (grpc.StatusCode.OK, 0):
                # A handler that set its status and then raised (the generated
                # base classes do this for UNIMPLEMENTED) keeps that status.
                details = context.details() or ""
                if isinstance(details, bytes):
                    details = details.decode()
                await context.abort(code, details)
            log.exception("unhandled error in rpc", method=method)
            status = internal_status()
            await context.abort(status.code, status.details)


class AuthInterceptor(_ScopeInterceptor):
    """Resolves ``authorization: Bearer <credential>`` to the call's principal."""

    def __init__(
        self,
        authenticator: Authenticator,
        public_methods: Iterable[str] = DEFAULT_PUBLIC_METHODS,
    ) -> None:
        self._authenticator = authenticator
        self._public = tuple(public_methods)

    def _applies(self, method: str) -> bool:
        return not any(
            method.startswith(p) if p.endswith("/") else method == p for p in self._public
        )

    @contextlib.asynccontextmanager
    async def _scope(self, method: str, context: Context) -> AsyncIterator[None]:
        header = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
                break
        if header is None:
            raise Unauthenticated("missing authorization metadata ('Bearer <api key>')")
        credential = parse_bearer(header)
        principal = await self._authenticator.authenticate(credential)
        token = set_principal(principal, credential)
        try:
            yield
        finally:
            reset_principal(token)
