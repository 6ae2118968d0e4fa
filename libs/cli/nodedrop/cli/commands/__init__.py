"""Command groups of the ``nodedrop`` CLI.

Every module here that defines ``register(subparsers)`` is discovered by
``nodedrop.cli.main``. ``register`` adds its sub-commands and sets
``func`` on each parser: a callable taking the parsed arguments and
returning the exit status.
"""
