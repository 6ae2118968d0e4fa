"""The code node's sandbox: QuickJS in runner processes (docs/workflows.md, "Code").

``ProcessSandbox`` is the engine's CodeSandbox port for the processes that run
workflows (the worker, the API, ``nodedrop run --local``); ``child`` is the
runner process's program.
"""

from nodedrop.sandbox.pool import ProcessSandbox

__all__ = ["ProcessSandbox"]
