"""The composition root of the ``nodedrop`` command: the one part of the CLI
that imports services, to start them (``nodedrop api`` ... ``nodedrop dev``)
and to administer the API's database (``migrate``, ``apikeys``).

Its modules are command groups, discovered like those of
``nodedrop.cli.commands``; no other module of the CLI imports them. Every
command outside it is a client: it talks to the services over gRPC and
imports libraries only. Service modules are imported inside the functions
here, so a command loads only the services it runs.
"""
