"""Shared library of every nodedrop service: settings, logging, telemetry,
gRPC server/client bootstrap, error mapping, the PostgreSQL pool, the retry back-off.

Import from the modules (``nodedrop.common.settings``, ...): this package
exports nothing itself, so importing one piece does not load them all.
"""
