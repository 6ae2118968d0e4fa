"""Names vulture reports as unused that a framework or protocol uses by name.

`make deadcode` scans this file with the code: each attribute read below marks
that name as used everywhere. List only names something outside our code calls
or reads (gRPC, protobuf, a library's interface); dead code is removed instead.
"""

# ruff: noqa: B018 - each line is a bare attribute read, on purpose
from typing import Any

_: Any = None

# structlog calls a logger's methods by level name (common/logging.py).
_.warn
_.fatal
# Async context managers receive the exception triple whether they use it or not.
_.exc_info
# prometheus-client calls describe() on a registered collector (common/metrics_fanin.py).
_.describe
# OpenTelemetry calls a Sampler's should_sample() and get_description() (common/telemetry.py).
_.should_sample
_.get_description
# sqlite3.Connection.row_factory, set for the driver (api/repository_sqlite.py).
_.row_factory
# The metric interface's keyword, kept by the no-op stand-in (events/hub.py).
_.amount
# protobuf message fields, assigned on generated messages.
_.failed_jobs
# http.server / socketserver call these on a handler or server class (tests' HTTP servers).
_.do_GET
_.do_POST
_.log_message
_.handle_error
_.client_address
_.daemon_threads
# grpc.aio client interceptor methods (tests/helpers/services.py).
_.intercept_unary_unary
_.intercept_unary_stream
# pytest reads a module's `pytestmark`; a test requests a fixture by parameter name.
_.pytestmark
_.maintenance
# The soak's faults are looked up by name: getattr(self, f"_{name}") (tests/soak/faults.py).
_._kill_worker
_._kill_scheduler
_._kill_api
_._kill_events
_._drain_worker
_._pg_restart
_._redis_pause
_._partition_reset
_._partition_silent
_._clock_skew
# arq and Celery read these from the benchmark drivers' settings (bench/peers/drivers).
_.functions
_.redis_settings
_.task_ignore_result
_.broker_connection_retry_on_startup
# uvicorn reads these off its Server and Config (gateway/server.py drives its steps).
_.lifespan
_.timeout_graceful_shutdown
# Servers import the bench's ASGI app by name (bench/http_servers.py: bench.http_load:echo_app).
_.echo_app
