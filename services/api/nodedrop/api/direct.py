"""Direct mode: the API process takes the held job and runs it on its in-process
runtime (see nodedrop.runtime.held): its writes, heartbeat, cancellation and
end follow a worker's rules, from the same code."""

from __future__ import annotations

from collections.abc import Mapping

from nodedrop.api.model import ExecutionRecord
from nodedrop.common import tracing
from nodedrop.common.errors import Unavailable
from nodedrop.common.logging import get_logger
from nodedrop.contract import from_json
from nodedrop.engine import EngineConfig
from nodedrop.runtime.engine_runner import EngineRunner
from nodedrop.runtime.held import FailureHook, HeldOptions, HeldRunner
from nodedrop.runtime.ports import Store
from nodedrop.store import ExecutionStatus, JobSpec
from nodedrop.store import Unavailable as StoreUnavailable
from nodedrop.store.config import StoreConfig

__all__ = ["DirectRunner"]

log = get_logger("nodedrop.api.direct")


class DirectRunner:
    """Runs direct-mode executions as background work of this process."""

    def __init__(
        self,
        store: Store,
        store_config: StoreConfig,
        *,
        engine: EngineConfig | None = None,
        options: HeldOptions | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        opts = options or HeldOptions()
        self._held = HeldRunner(
            store, store_config, EngineRunner(engine), options=opts, on_failure=on_failure
        )

    @property
    def running(self) -> int:
        return self._held.running

    def start(self, record: ExecutionRecord, completed_outputs: Mapping[str, str]) -> None:
        # The stored definition was checked when it was stored; its settings carry
        # the engine's defaults for what it leaves out.
        settings = from_json(record.definition_json).settings
        self._held.start(
            JobSpec(
                execution_id=record.id,
                tenant_id=record.tenant_id,
                workflow_id=record.workflow_id or "",
                workflow_json=record.definition_json,
                trigger_json=record.trigger_data_json,
                priority=record.priority,
                max_attempts=settings.max_attempts,
                backoff_s=settings.backoff_s,
                timeout_s=settings.timeout_s,
                completed_outputs=dict(completed_outputs),
                # Called within the submitting request: the run joins its trace.
                traceparent=tracing.current_traceparent(),
            )
        )

    async def cancel(
        self, execution_id: str, tenant_id: str, reason: str
    ) -> ExecutionStatus | None:
        try:
            return await self._held.cancel(execution_id, tenant_id, reason)
        except StoreUnavailable as exc:
            # The cause names the store's host: for the logs, not for the caller.
            log.warning("cancel: the queue store is unavailable", error=str(exc))
            raise Unavailable("the queue store is unavailable; retry the cancel") from exc

    async def stop(self, grace_s: float = 5.0) -> None:
        await self._held.stop(grace_s, "the API process is stopping")
