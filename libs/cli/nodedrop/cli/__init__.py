"""The ``nodedrop`` command line: services, dev mode, and client commands."""
