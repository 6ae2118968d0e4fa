"""Shared library of every nodedrop service: settings, logging, telemetry,
gRPC server/client bootstrap, error mapping, Redis and PostgreSQL pools.

Import from the modules (``nodedrop.common.settings``, ...): this package
exports nothing itself, so importing one piece does not load them all.
"""
