-- The embedded store's schema (SQLite), the same tables as the PostgreSQL
-- migrations. Times are integer microseconds since the epoch (UTC), which
-- sort and compare correctly; scopes are comma-separated.
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    key_hash    BLOB NOT NULL,
    scopes      TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE IF NOT EXISTS workflows (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    name            TEXT NOT NULL,
    latest_version  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);

CREATE TABLE IF NOT EXISTS workflow_versions (
    workflow_id  TEXT NOT NULL REFERENCES workflows (id),
    version      INTEGER NOT NULL,
    name         TEXT NOT NULL,
    definition   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE IF NOT EXISTS executions (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    workflow_id       TEXT,
    workflow_version  INTEGER NOT NULL DEFAULT 0,
    definition        TEXT NOT NULL,
    status            TEXT NOT NULL,
    mode              TEXT NOT NULL,
    trigger_kind      TEXT NOT NULL,
    trigger_data      TEXT NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 0,
    idempotency_key   TEXT,
    retry_of          TEXT,
    trace_id          TEXT NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    run_at            INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    error             TEXT,
    result            TEXT,
    last_sequence     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS executions_idempotency
    ON executions (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS executions_tenant_created
    ON executions (tenant_id, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS node_runs (
    execution_id       TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    node_id            TEXT NOT NULL,
    attempt            INTEGER NOT NULL,
    status             TEXT NOT NULL,
    started_at         INTEGER,
    finished_at        INTEGER,
    error              TEXT,
    output_item_count  INTEGER NOT NULL DEFAULT 0,
    outputs            TEXT,
    PRIMARY KEY (execution_id, node_id, attempt)
);

CREATE TABLE IF NOT EXISTS execution_events (
    execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    sequence      INTEGER NOT NULL,
    type          TEXT NOT NULL,
    time          INTEGER NOT NULL,
    node_id       TEXT NOT NULL DEFAULT '',
    attempt       INTEGER NOT NULL DEFAULT 0,
    data          TEXT NOT NULL DEFAULT '',
    error         TEXT,
    PRIMARY KEY (execution_id, sequence)
);

CREATE TABLE IF NOT EXISTS workflow_activations (
    workflow_id   TEXT PRIMARY KEY REFERENCES workflows (id),
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    version       INTEGER NOT NULL,
    schedule_id   TEXT,
    activated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS webhook_routes (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    path         TEXT NOT NULL,
    workflow_id  TEXT NOT NULL REFERENCES workflow_activations (workflow_id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, path)
);
CREATE INDEX IF NOT EXISTS webhook_routes_workflow ON webhook_routes (workflow_id);
