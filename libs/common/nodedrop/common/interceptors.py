"""The server's one interceptor: trace context, latency metric, request
logging, error mapping and authentication around every RPC.

One interceptor instead of a chain of five: each interceptor costs every call
an await of its continuation, and a scope built per call (new handler
tuples, asynccontextmanager generators) was a large share of the API's CPU
per ExecuteWorkflow (docs/benchmarks.md, API). The wrapped handler of each
method is built once and reused; what runs per call is one function per shape, in this order
(outermost first):

- the server span (OpenTelemetry's interceptor) when spans are exported;
  otherwise only the caller's ``traceparent`` metadata is made current, so
  the spans and job entries started below still join the caller's trace;
- ``nodedrop_request_duration_seconds`` (not for ``grpc.*``: probes would
  swamp real calls, and Health.Watch never ends; client-streaming and bidi
  calls are not part of the contracts);
- one ``rpc`` log line with the method, final status and duration;
- exceptions become gRPC statuses here and only here;
- ``authorization: Bearer <credential>`` resolved to the call's principal
  (except for public methods): on internal methods by the service verifier
  (the service credential or a service's client certificate), on the others
  by the service's authenticator (tenant keys). Which one a method gets is
  decided once per method, so the check costs tenant calls nothing. Auth
  failures are domain errors, so they go through the same mapping as
  everything else.

The shape of each handler is preserved (unary, server-streaming as an async
generator or ``context.write`` style, client-streaming, bidirectional),
since grpc.aio dispatches on it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import Token
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from opentelemetry import context as otel_context

from nodedrop.common.auth import Authenticator, parse_bearer, reset_principal, set_principal
from nodedrop.common.errors import NodedropError, Unauthenticated, internal_status, to_rpc_status
from nodedrop.common.logging import get_logger
from nodedrop.common.metrics import Metrics, get_metrics
from nodedrop.common.service_auth import ServiceVerifier
from nodedrop.common.telemetry import spans_exported
from nodedrop.common.tracing import TRACEPARENT, context_from_traceparent, server_interceptor

__all__ = ["DEFAULT_INTERNAL_METHODS", "DEFAULT_PUBLIC_METHODS", "ServerCallInterceptor"]

log = get_logger("nodedrop.rpc")

# grpc ships no type information: contexts and handlers are Any to mypy.
Context: TypeAlias = Any
Handler: TypeAlias = Any
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

# Full method names, or service prefixes ending in "/", callable without credentials.
DEFAULT_PUBLIC_METHODS: frozenset[str] = frozenset(
    {
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/grpc.reflection.v1.ServerReflection/",
        "/nodedrop.execution.v1.ExecutionService/GetSystemHealth",
    }
)

# Methods only nodedrop services may call (same notation): the queue, the
# workers and the API's start of a schedule's run act for any tenant the
# caller names, Authenticate answers whether a credential is valid, and the
# gateway hands webhook calls for any tenant.
DEFAULT_INTERNAL_METHODS: frozenset[str] = frozenset(
    {
        "/nodedrop.queue.v1.SchedulerService/",
        "/nodedrop.queue.v1.WorkerService/",
        "/nodedrop.queue.v1.ScheduleRunService/",
        "/nodedrop.auth.v1.AuthService/Authenticate",
        "/nodedrop.webhook.v1.WebhookService/",
    }
)


@dataclass(frozen=True, slots=True)
class _Rules:
    """What the interceptor does for one method, decided once."""

    method: str
    authenticate: bool
    # Authenticated as a nodedrop service rather than a tenant.
    internal: bool
    # Application methods: traced, and timed when their shape is.
    application: bool
    timed: bool


# What _enter set, undone by _leave in reverse.
_Entered: TypeAlias = tuple[Token[Any] | None, object | None]


class ServerCallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        authenticator: Authenticator | None,
        public_methods: Iterable[str] = DEFAULT_PUBLIC_METHODS,
        *,
        verifier: ServiceVerifier | None = None,
        internal_methods: Iterable[str] = DEFAULT_INTERNAL_METHODS,
        metrics: Metrics | None = None,
    ) -> None:
        """Without a ``verifier``, every call to an internal method is refused."""
        self._authenticator = authenticator
        self._verifier = verifier
        self._public = tuple(public_methods)
        self._internal = tuple(internal_methods)
        self._histogram = (metrics if metrics is not None else get_metrics()).request_duration
        # (method, code) -> labelled child: labels() costs more than observe().
        self._observers: dict[tuple[str, str], Any] = {}
        # method -> (the handler grpc found, its wrapped form).
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        self._tracing = server_interceptor()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            wrapped = cached[1]
        else:
            wrapped = self._wrap(handler, method)
            self._wrapped[method] = (handler, wrapped)
        if not spans_exported():
            return wrapped

        async def found(_details: grpc.HandlerCallDetails) -> Handler:
            return wrapped

        # Outermost: the server span covers the latency, log line and auth.
        return await self._tracing.intercept_service(found, handler_call_details)

    # -- per call -----------------------------------------------------------

    async def _enter(self, rules: _Rules, context: Context) -> _Entered:
        header: str | bytes | None = None
        traceparent: str | bytes | None = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                header = value
            elif key == TRACEPARENT:
                traceparent = value
        trace_token = None
        if traceparent and rules.application and not spans_exported():
            if isinstance(traceparent, bytes):
                traceparent = traceparent.decode()
            trace_token = otel_context.attach(context_from_traceparent(traceparent))
        if not rules.authenticate:
            return None, trace_token
        if rules.internal:
            try:
                if self._verifier is None:
                    raise Unauthenticated("this server accepts no service credential")
                principal = self._verifier.verify(header, context)
            except BaseException:
                _leave((None, trace_token))
                raise
            # The token stays out of the contextvar: nothing downstream forwards it.
            return set_principal(principal, ""), trace_token
        try:
            if header is None:
                raise Unauthenticated("missing authorization metadata ('Bearer <api key>')")
            if isinstance(header, bytes):
                header = header.decode()
            assert self._authenticator is not None
            credential = parse_bearer(header)
            principal = await self._authenticator.authenticate(credential)
        except BaseException:
            _leave((None, trace_token))
            raise
        return set_principal(principal, credential), trace_token

    def _finish(self, rules: _Rules, context: Context, started: float, failed: bool) -> None:
        elapsed = time.perf_counter() - started
        code = context.code()
        name = None if code is None else _code_name(code)
        if rules.timed:
            # No status set: a normal return is OK; an exception that was not
            # an abort reaches the client as UNKNOWN.
            label = name or ("UNKNOWN" if failed else "OK")
            key = (rules.method, label)
            observer = self._observers.get(key)
            if observer is None:
                observer = self._observers[key] = self._histogram.labels(
                    method=rules.method, code=label
                )
            observer.observe(elapsed)
        status = name or "OK"
        if failed and status == "OK":
            # Not aborted through the error mapping: the peer went away
            # (CancelledError) or the handler crashed outright.
            status = "CANCELLED"
        log.info("rpc", method=rules.method, status=status, duration_ms=round(elapsed * 1000, 3))

    # -- wrapping, once per method -------------------------------------------

    def _rules(self, method: str, timed_shape: bool) -> _Rules:
        public = _matches(method, self._public)
        internal = not public and _matches(method, self._internal)
        application = not method.startswith("/grpc.")
        return _Rules(
            method=method,
            authenticate=internal or (self._authenticator is not None and not public),
            internal=internal,
            application=application,
            timed=application and timed_shape,
        )

    def _wrap(self, handler: Handler, method: str) -> Handler:
        shapes = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler, False, True),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler, True, True),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler, False, False),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler, True, False),
        )
        for behaviour, make, streams, timed_shape in shapes:
            if behaviour is None:
                continue
            rules = self._rules(method, timed_shape)
            if streams and inspect.isasyncgenfunction(behaviour):
                wrapped = self._generator(behaviour, rules)
            else:
                wrapped = self._call(behaviour, rules, writes=streams)
            return make(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _call(self, behaviour: Handler, rules: _Rules, *, writes: bool) -> Handler:
        """A handler that returns its response, or, with ``writes``, streams by
        ``context.write`` (the health service's Watch) or returns an iterable
        (a plain function); the generated base classes' UNIMPLEMENTED answers
        come through here too."""
        enter, finish = self._enter, self._finish
        needs_entry = rules.authenticate or rules.application

        async def call(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                entered = await enter(rules, context) if needs_entry else None
                try:
                    result = behaviour(request, context)
                    if inspect.isawaitable(result):
                        result = await result
                    elif writes and isinstance(result, Iterable):
                        for response in result:
                            await context.write(response)
                        result = None
                finally:
                    if entered is not None:
                        _leave(entered)
                failed = False
                return result
            except Exception as exc:
                await _abort(exc, rules.method, context)
                raise
            finally:
                finish(rules, context, started, failed)

        return call

    def _generator(self, behaviour: Handler, rules: _Rules) -> Handler:
        enter, finish = self._enter, self._finish

        async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            failed = True
            try:
                entered = await enter(rules, context)
                try:
                    responses: AsyncIterator[Any] = behaviour(request, context)
                    try:
                        async for response in responses:
                            yield response
                    finally:
                        # Closed with the principal still set, so its cleanup
                        # runs as the caller.
                        await responses.aclose()  # type: ignore[attr-defined]
                finally:
                    _leave(entered)
                failed = False
            except Exception as exc:
                await _abort(exc, rules.method, context)
                raise
            finally:
                finish(rules, context, started, failed)

        return generator


def _matches(method: str, patterns: tuple[str, ...]) -> bool:
    return any(method.startswith(p) if p.endswith("/") else method == p for p in patterns)


def _leave(entered: _Entered) -> None:
    principal_token, trace_token = entered
    if principal_token is not None:
        reset_principal(principal_token)
    if trace_token is not None:
        otel_context.detach(trace_token)  # type: ignore[arg-type]


async def _abort(exc: Exception, method: str, context: Context) -> None:
    """Ends the call with the status ``exc`` stands for (raises AbortError);
    returns only for an AbortError, whose status the handler already chose."""
    if isinstance(exc, grpc.aio.AbortError):
        return
    if isinstance(exc, NodedropError):
        status = to_rpc_status(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    code = context.code()
    if code is not None and code not in (grpc.StatusCode.OK, 0):
        # A handler that set its status and then raised (the generated base
        # classes do this for UNIMPLEMENTED) keeps that status.
        details = context.details() or ""
        if isinstance(details, bytes):
            details = details.decode()
        await context.abort(code, details)
    log.exception("unhandled error in rpc", method=method)
    status = internal_status()
    await context.abort(status.code, status.details)


def _code_name(code: Any) -> str:
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    # Codes set through abort() come back as plain ints in some versions.
    for candidate in grpc.StatusCode:
        if candidate.value[0] == code:
            return str(candidate.name)
    return str(code)
