"""The one mapping between the nodedrop.workflow.v1 messages and workflow definitions.

A library of its own, not part of the engine: the engine is the domain and knows
no wire format, so it runs the same embedded anywhere (`nodedrop run --local`,
a worker, the API in direct mode). The API, the scheduler and the CLI all speak
protobuf and need the very same mapping; a library is what all three may import
(no library imports a service, and the CLI imports no service).
"""

from nodedrop.contract.workflow import (
    Definition,
    check,
    document_of,
    from_json,
    problems_to_proto,
    settings_of,
    to_proto,
)

__all__ = [
    "Definition",
    "check",
    "document_of",
    "from_json",
    "problems_to_proto",
    "settings_of",
    "to_proto",
]
