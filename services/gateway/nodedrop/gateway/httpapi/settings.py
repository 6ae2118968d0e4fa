"""Settings of the HTTP/JSON API, a group of the gateway's settings read once at start."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.settings import Env, env_duration, env_int, process_env


@dataclass(frozen=True, slots=True)
class HttpApiSettings:
    # Largest request body; a bigger one is refused with 413 before it is read whole.
    max_body_bytes: int
    # Deadline of one upstream unary call (a client's Connect-Timeout-Ms may lower it).
    call_timeout_s: float
    # Longest `?wait=` of POST /api/workflows/{id}/execute.
    max_wait_s: float
    # A quiet event stream sends an SSE comment this often, so that proxies
    # with an idle timeout keep it open while an execution waits.
    sse_keepalive_s: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> HttpApiSettings:
        """Raises SettingsError naming the first bad variable."""
        env = process_env() if env is None else env
        return cls(
            max_body_bytes=env_int(
                env, "NODEDROP_HTTP_MAX_BODY_BYTES", 1 << 20, minimum=1024, maximum=64 << 20
            ),
            call_timeout_s=env_duration(
                env, "NODEDROP_HTTP_CALL_TIMEOUT", 30.0, minimum=0.1, maximum=3600.0
            ),
            max_wait_s=env_duration(
                env, "NODEDROP_HTTP_MAX_WAIT", 60.0, minimum=0.0, maximum=3600.0
            ),
            sse_keepalive_s=env_duration(
                env, "NODEDROP_HTTP_SSE_KEEPALIVE", 15.0, minimum=0.1, maximum=3600.0
            ),
        )
