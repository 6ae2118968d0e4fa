"""Every Redis key name of the queue, in one place.

Layout (prefix ``nd`` by default, ``{p07}`` standing for one partition)::

    nd:{p07}:jobs            stream, group "workers": one entry per attempt (default lane)
    nd:{p07}:jobs:<lane>     stream per extra priority lane
    nd:{p07}:delayed         zset exec id -> due time (ms): retries, delayed runs
    nd:{p07}:failed          zset exec id -> fail time (ms): the dead-letter queue
    nd:{p07}:stats           hash: completed / failed counters of the partition
    nd:{p07}:events          stream (MAXLEN ~): every event of the partition, live tail
    nd:{p07}:exec:<id>       hash: execution context
    nd:{p07}:exec:<id>:out   hash: node id -> outputs JSON ({"port": [items]})
    nd:{p07}:exec:<id>:ev    stream: the execution's events, entry id = "<sequence>-0"
    nd:{p07}:adm:<tenant>    set of exec ids: the tenant's jobs in the streams (admitted)
    nd:{p07}:park:<tenant>   zset exec id -> lane rank * 1e13 + ms: the tenant's parked jobs
    nd:{p07}:parked          set: tenants with parked jobs in the partition
    nd:{global}:schedules    hash: schedule id -> schedule JSON
    nd:{global}:partitions   string: the partition count the deployment was created with
    nd:{p07}:cancel          shard channel (SPUBLISH): cancel nudges of the partition
    nd:<key>                 string with a TTL: a cached blob (the API's finished
                             results under api:result:{<exec id>}:...)

Every key of an execution shares its partition's hash tag, so a Lua script that
touches an execution, its partition's streams and sets stays in one slot and
the layout runs unchanged on Redis Cluster.  Scripts derive an execution's
keys from the partition base (``nd:{p07}:``) and the id; they never touch
another partition.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

DEFAULT_PREFIX = "nd"
DEFAULT_PARTITIONS = 16
JOBS_GROUP = "workers"
# A tenant's admitted executions in a partition: ``<base>adm:<tenant>`` (a set).
# Earlier versions kept them in a sorted set, ``in:<tenant>``, which is no longer read.
ADMITTED = "adm:"
# Lane 0 keeps the plain "jobs" name of ARCHITECTURE.md; other lanes get a suffix.
DEFAULT_LANE = 0


def _base(prefix: str, p: int) -> str:
    return f"{prefix}:{{p{p:02d}}}:"


def partition_of(execution_id: str, partitions: int) -> int:
    """Stable partition of an execution: crc32 is identical in every process and language."""
    return zlib.crc32(execution_id.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX
    partitions: int = DEFAULT_PARTITIONS
    # Partition bases, formatted once: key names are built on the hot path.
    _bases: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 1024:
            raise ValueError(f"partitions must be within 1..1024, got {self.partitions}")
        if not self.prefix or any(c in self.prefix for c in "{} "):
            raise ValueError(f"invalid key prefix {self.prefix!r}")
        bases = tuple(_base(self.prefix, p) for p in range(self.partitions))
        object.__setattr__(self, "_bases", bases)

    def partition(self, execution_id: str) -> int:
        return partition_of(execution_id, self.partitions)

    def base(self, p: int) -> str:
        """Prefix of every key of partition ``p``; Lua scripts append names to it."""
        return self._bases[p]

    def jobs(self, p: int, lane: int = DEFAULT_LANE) -> str:
        if lane == DEFAULT_LANE:
            return f"{self.base(p)}jobs"
        return f"{self.base(p)}jobs:{lane}"

    def delayed(self, p: int) -> str:
        return f"{self.base(p)}delayed"

    def failed(self, p: int) -> str:
        return f"{self.base(p)}failed"

    def stats(self, p: int) -> str:
        return f"{self.base(p)}stats"

    def events(self, p: int) -> str:
        return f"{self.base(p)}events"

    def admitted(self, p: int, tenant: str) -> str:
        return f"{self.base(p)}{ADMITTED}{tenant}"

    def park(self, p: int, tenant: str) -> str:
        return f"{self.base(p)}park:{tenant}"

    def parked(self, p: int) -> str:
        return f"{self.base(p)}parked"

    def exec(self, execution_id: str) -> str:
        return self._bases[self.partition(execution_id)] + "exec:" + execution_id

    def exec_in(self, p: int, execution_id: str) -> str:
        """``exec`` when the partition is known already."""
        return self._bases[p] + "exec:" + execution_id

    def outputs(self, execution_id: str) -> str:
        return f"{self.exec(execution_id)}:out"

    def exec_events(self, execution_id: str) -> str:
        return f"{self.exec(execution_id)}:ev"

    def schedules(self) -> str:
        return f"{self.prefix}:{{global}}:schedules"

    def blob(self, key: str) -> str:
        """A cached blob (BlobCache); the caller's key carries its own hash tag."""
        return f"{self.prefix}:{key}"

    def data_marker(self) -> str:
        # Set once the failed queue was rebuilt; gone when Redis lost its data.
        return f"{self.prefix}:{{global}}:failed-queue-rebuilt"

    def jobs_past_last(self) -> str:
        """The default lane stream a partition count one higher would have."""
        return _base(self.prefix, self.partitions) + "jobs"

    def partition_count(self) -> str:
        # Written once by the first service to start; later starts compare.
        return f"{self.prefix}:{{global}}:partitions"

    def cancel_channel(self, p: int) -> str:
        """The partition's shard channel (SPUBLISH): on Redis Cluster it lives on
        the partition's master, so a cancel nudge is not broadcast to every node."""
        return f"{self.base(p)}cancel"
