-- Initial schema: tenants and their API keys, versioned workflows,
-- executions with node runs and recorded events.
-- Statuses are stored as the lower-case names of the proto enums without
-- their prefix (queued, running, ...) so the table reads well in psql.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    -- The public part of the key ("ndk_<id>_<secret>"): looked up by id,
    -- then the sha256 of the whole key is compared in constant time.
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    key_hash    bytea NOT NULL,
    scopes      text[] NOT NULL,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE workflows (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    name            text NOT NULL,
    latest_version  integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX workflows_tenant_name ON workflows (tenant_id, name, id) WHERE deleted_at IS NULL;

CREATE TABLE workflow_versions (
    workflow_id  text NOT NULL REFERENCES workflows (id),
    version      integer NOT NULL,
    name         text NOT NULL,
    -- The definition as JSON text (not jsonb: integers must stay integers
    -- and key order must survive a round trip).
    definition   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE executions (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    workflow_id       text,
    workflow_version  integer NOT NULL DEFAULT 0,
    definition        text NOT NULL,
    status            text NOT NULL,
    mode              text NOT NULL,
    trigger_kind      text NOT NULL,
    trigger_data      text NOT NULL,
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL,
    priority          integer NOT NULL DEFAULT 0,
    idempotency_key   text,
    retry_of          text,
    trace_id          text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    run_at            timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    error             text,
    result            text,
    -- Highest event sequence applied by the history recorder: a replayed
    -- event at or below it changes nothing.
    last_sequence     bigint NOT NULL DEFAULT 0
);
-- One execution per (tenant, idempotency key): INSERT ... ON CONFLICT on
-- this index is what makes concurrent duplicate submissions collapse.
CREATE UNIQUE INDEX executions_idempotency
    ON executions (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Newest first with the id as tie-breaker: the cursor order of ListExecutions.
CREATE INDEX executions_tenant_created ON executions (tenant_id, created_at DESC, id DESC);
CREATE INDEX executions_workflow_created
    ON executions (tenant_id, workflow_id, created_at DESC, id DESC);
-- Orphan recovery scans only unfinished executions.
CREATE INDEX executions_unfinished ON executions (created_at)
    WHERE status IN ('queued', 'running', 'retry_scheduled');

CREATE TABLE node_runs (
    execution_id       text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    node_id            text NOT NULL,
    attempt            integer NOT NULL,
    status             text NOT NULL,
    started_at         timestamptz,
    finished_at        timestamptz,
    error              text,
    output_item_count  integer NOT NULL DEFAULT 0,
    -- {"port": [items]} as JSON text.
    outputs            text,
    PRIMARY KEY (execution_id, node_id, attempt)
);

CREATE TABLE execution_events (
    execution_id  text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    sequence      bigint NOT NULL,
    type          text NOT NULL,
    time          timestamptz NOT NULL,
    node_id       text NOT NULL DEFAULT '',
    attempt       integer NOT NULL DEFAULT 0,
    data          text NOT NULL DEFAULT '',
    error         text,
    PRIMARY KEY (execution_id, sequence)
);
