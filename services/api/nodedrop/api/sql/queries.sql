-- Named queries of the PostgreSQL repository. Each starts with a
-- "-- name: <name>" line; parameters are positional ($1, ...) and user text
-- only ever travels as a parameter.

-- name: ensure_tenant
INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING;

-- name: insert_api_key
INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, prefix)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, tenant_id, name, key_hash, scopes, prefix, created_at, revoked_at;

-- name: get_api_key
SELECT id, tenant_id, name, key_hash, scopes, prefix, created_at, revoked_at
FROM api_keys WHERE id = $1;

-- name: list_api_keys
SELECT id, tenant_id, name, key_hash, scopes, prefix, created_at, revoked_at
FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id;

-- name: list_all_api_keys
SELECT id, tenant_id, name, key_hash, scopes, prefix, created_at, revoked_at
FROM api_keys ORDER BY tenant_id, created_at, id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)
RETURNING id, tenant_id, name, key_hash, scopes, prefix, created_at, revoked_at;

-- name: insert_workflow
INSERT INTO workflows (id, tenant_id, name, latest_version) VALUES ($1, $2, $3, 1);

-- name: insert_workflow_version
INSERT INTO workflow_versions (workflow_id, version, name, definition)
VALUES ($1, $2, $3, $4)
RETURNING created_at;

-- name: lock_workflow
SELECT latest_version, created_at FROM workflows
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
FOR UPDATE;

-- name: bump_workflow
UPDATE workflows SET latest_version = $3, name = $4, updated_at = now()
WHERE id = $1 AND tenant_id = $2
RETURNING updated_at;

-- name: get_workflow
SELECT w.id, w.tenant_id, v.version, v.name, v.definition, w.created_at, v.created_at AS updated_at
FROM workflows w
JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.id = $1 AND w.tenant_id = $2 AND w.deleted_at IS NULL
  AND v.version = COALESCE($3::integer, w.latest_version);

-- name: list_workflows
SELECT w.id, w.tenant_id, v.version, v.name, v.definition, w.created_at, v.created_at AS updated_at
FROM workflows w
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.latest_version
WHERE w.tenant_id = $1 AND w.deleted_at IS NULL
  AND starts_with(w.name, $2)
  AND (w.name, w.id) > ($3, $4)
ORDER BY w.name, w.id
LIMIT $5;

-- name: list_workflow_versions
SELECT w.id, w.tenant_id, v.version, v.name, v.definition, w.created_at, v.created_at AS updated_at
FROM workflows w
JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.id = $1 AND w.tenant_id = $2 AND w.deleted_at IS NULL AND v.version < $3
ORDER BY v.version DESC
LIMIT $4;

-- name: delete_workflow
UPDATE workflows SET deleted_at = now()
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
RETURNING id;

-- name: insert_executions
-- Batch insert; a duplicate idempotency key inserts nothing for that row.
INSERT INTO executions (
    id, tenant_id, workflow_id, workflow_version, definition, status, mode,
    trigger_kind, trigger_data, max_attempts, priority, idempotency_key,
    retry_of, trace_id, run_at)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::integer[], $11::integer[], $12::text[],
    $13::text[], $14::text[], $15::timestamptz[])
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: find_by_idempotency_keys
SELECT id, tenant_id, idempotency_key, status FROM executions
WHERE (tenant_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]));

-- name: get_execution
-- A NULL definition is a reference to the stored version (migration 0003).
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.id = $1 AND e.tenant_id = $2;

-- name: get_execution_any_tenant
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.id = $1;

-- name: get_node_runs
-- In the order the nodes ran: by the sequence of each run's first event (the
-- times of a batch of commits are equal), then by start time.
SELECT r.node_id, r.attempt, r.status, r.started_at, r.finished_at, r.error,
       r.output_item_count, r.outputs
FROM node_runs r
LEFT JOIN (SELECT node_id, attempt, min(sequence) AS first_sequence
           FROM execution_events WHERE execution_id = $1 AND node_id <> ''
           GROUP BY node_id, attempt) f
       ON f.node_id = r.node_id AND f.attempt = r.attempt
WHERE r.execution_id = $1
ORDER BY f.first_sequence NULLS LAST, r.started_at NULLS LAST, r.attempt, r.node_id;

-- name: list_executions
-- Newest first; a status, trigger or workflow filter has its own query below.
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.tenant_id = $1
  AND ($2::timestamptz IS NULL OR e.created_at >= $2)
  AND ($3::timestamptz IS NULL OR e.created_at < $3)
  AND ($4::timestamptz IS NULL OR (e.created_at, e.id) < ($4, $5))
ORDER BY e.created_at DESC, e.id DESC
LIMIT $6;

-- name: list_executions_by_status
-- list_executions with a status filter: one index range read per status
-- (executions_tenant_status_created), each at most a page long, merged in
-- cursor order, instead of a walk of all the tenant's executions.
SELECT e.*, v.definition AS version_definition
FROM unnest($2::text[]) AS s (status)
CROSS JOIN LATERAL (
    SELECT x.*
    FROM executions x
    WHERE x.tenant_id = $1
      AND x.status = s.status
      AND ($3::timestamptz IS NULL OR x.created_at >= $3)
      AND ($4::timestamptz IS NULL OR x.created_at < $4)
      AND ($5::timestamptz IS NULL OR (x.created_at, x.id) < ($5, $6))
    ORDER BY x.created_at DESC, x.id DESC
    LIMIT $7
) AS e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
ORDER BY e.created_at DESC, e.id DESC
LIMIT $7;

-- name: list_executions_by_workflow
-- A workflow's executions of the given statuses (every status when the
-- filter has none): one range of executions_workflow_status_created per
-- status, merged in cursor order.
SELECT e.*, v.definition AS version_definition
FROM unnest($3::text[]) AS s (status)
CROSS JOIN LATERAL (
    SELECT x.*
    FROM executions x
    WHERE x.tenant_id = $1
      AND x.workflow_id = $2
      AND x.status = s.status
      AND ($4::timestamptz IS NULL OR x.created_at >= $4)
      AND ($5::timestamptz IS NULL OR x.created_at < $5)
      AND ($6::timestamptz IS NULL OR (x.created_at, x.id) < ($6, $7))
      AND (cardinality($9::text[]) = 0 OR x.trigger_kind = ANY($9::text[]))
    ORDER BY x.created_at DESC, x.id DESC
    LIMIT $8
) AS e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
ORDER BY e.created_at DESC, e.id DESC
LIMIT $8;

-- name: list_executions_by_trigger
-- list_executions with a trigger kind filter and no workflow: one range of
-- executions_tenant_trigger_status_created (migration 0006) per kind and
-- status ($3, every status when the filter has none), each at most a page
-- long, merged in cursor order.
SELECT e.*, v.definition AS version_definition
FROM unnest($2::text[]) AS k (trigger_kind)
CROSS JOIN unnest($3::text[]) AS s (status)
CROSS JOIN LATERAL (
    SELECT x.*
    FROM executions x
    WHERE x.tenant_id = $1
      AND x.trigger_kind = k.trigger_kind
      AND x.status = s.status
      AND ($4::timestamptz IS NULL OR x.created_at >= $4)
      AND ($5::timestamptz IS NULL OR x.created_at < $5)
      AND ($6::timestamptz IS NULL OR (x.created_at, x.id) < ($6, $7))
    ORDER BY x.created_at DESC, x.id DESC
    LIMIT $8
) AS e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
ORDER BY e.created_at DESC, e.id DESC
LIMIT $8;

-- name: set_status
-- Moves an unfinished execution to a status; a finished one is left alone.
UPDATE executions
SET status = $2, error = COALESCE($3, error),
    finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
WHERE id = $1 AND status IN ('queued', 'running', 'retry_scheduled')
RETURNING status;

-- name: list_failed_since
-- Queue-mode executions that failed since $1, oldest first: the candidates of
-- a failed-queue rebuild after Redis lost its data (rare; a scan is fine).
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.status = 'failed' AND e.mode = 'queue' AND e.finished_at >= $1
  AND (e.finished_at, e.id) > ($2, $3)
ORDER BY e.finished_at, e.id
LIMIT $4;

-- name: list_unfinished
SELECT e.*, v.definition AS version_definition
FROM executions e
LEFT JOIN workflow_versions v
       ON e.definition IS NULL AND v.workflow_id = e.workflow_id AND v.version = e.workflow_version
WHERE e.status IN ('queued', 'running', 'retry_scheduled')
  AND e.mode = $5 AND e.created_at < $1
  AND (e.created_at, e.id) > ($2, $3)
ORDER BY e.created_at, e.id
LIMIT $4;

-- name: count_unfinished
-- A tenant's unfinished executions by status (queue administration).
SELECT status, count(*) AS n FROM executions
WHERE tenant_id = $1 AND status IN ('queued', 'running', 'retry_scheduled')
GROUP BY status;

-- name: insert_events
-- Events of executions this database knows; a replayed (execution, sequence)
-- inserts nothing and is not returned, so it changes nothing downstream.
INSERT INTO execution_events (execution_id, sequence, type, time, node_id, attempt, data, error)
SELECT e.* FROM unnest(
    $1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::integer[],
    $7::text[], $8::text[]) AS e(execution_id, sequence, type, time, node_id, attempt, data, error)
WHERE EXISTS (SELECT 1 FROM executions x WHERE x.id = e.execution_id)
ON CONFLICT (execution_id, sequence) DO NOTHING
RETURNING execution_id, sequence;

-- name: apply_execution_patch
-- One row per execution of the batch (the fold guarantees it), in one statement.
-- A terminal status is final: later non-terminal events of its attempt cannot
-- reopen it; nor can a batch older than what is recorded (entries a dead
-- replica had read, reclaimed after newer ones were recorded) set an older
-- open status. Only a later attempt after the end (a failed-queue retry: a new
-- round of the same execution) opens it again, without what the earlier round
-- ended with.
UPDATE executions e SET
    status = CASE
        WHEN p.status IS NULL THEN e.status
        WHEN p.attempt > e.attempt THEN p.status
        WHEN e.status IN ('completed', 'failed', 'cancelled', 'timed_out')
             AND p.status NOT IN ('completed', 'failed', 'cancelled', 'timed_out') THEN e.status
        WHEN p.last_sequence < e.last_sequence
             AND p.status NOT IN ('completed', 'failed', 'cancelled', 'timed_out') THEN e.status
        ELSE p.status END,
    attempt = GREATEST(e.attempt, p.attempt),
    started_at = COALESCE(e.started_at, p.started_at),
    finished_at = CASE WHEN p.status IS NOT NULL AND p.attempt > e.attempt
                            AND e.status IN ('completed', 'failed', 'cancelled', 'timed_out')
                       THEN p.finished_at ELSE COALESCE(p.finished_at, e.finished_at) END,
    error = CASE WHEN p.status IS NOT NULL AND p.attempt > e.attempt
                      AND e.status IN ('completed', 'failed', 'cancelled', 'timed_out')
                 THEN p.error ELSE COALESCE(p.error, e.error) END,
    result = CASE WHEN p.status IS NOT NULL AND p.attempt > e.attempt
                       AND e.status IN ('completed', 'failed', 'cancelled', 'timed_out')
                  THEN p.result ELSE COALESCE(p.result, e.result) END,
    last_sequence = GREATEST(e.last_sequence, p.last_sequence)
FROM unnest($1::text[], $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[],
            $6::text[], $7::text[], $8::bigint[])
     AS p(id, status, attempt, started_at, finished_at, error, result, last_sequence)
WHERE e.id = p.id;

-- name: upsert_node_run
INSERT INTO node_runs (execution_id, node_id, attempt, status, started_at, finished_at,
                       error, output_item_count, outputs)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (execution_id, node_id, attempt) DO UPDATE SET
    status = CASE WHEN node_runs.status = 'running' OR excluded.status <> 'running'
                  THEN excluded.status ELSE node_runs.status END,
    started_at = COALESCE(node_runs.started_at, excluded.started_at),
    finished_at = COALESCE(excluded.finished_at, node_runs.finished_at),
    error = COALESCE(excluded.error, node_runs.error),
    output_item_count = GREATEST(excluded.output_item_count, node_runs.output_item_count),
    outputs = COALESCE(excluded.outputs, node_runs.outputs);

-- name: list_events
SELECT e.execution_id, e.sequence, e.type, e.time, e.node_id, e.attempt, e.data, e.error
FROM execution_events e
WHERE e.execution_id = $1 AND e.sequence > $2
ORDER BY e.sequence
LIMIT $3;

-- name: stats_status_counts
SELECT COALESCE(workflow_id, '') AS workflow_id, status, count(*) AS n
FROM executions
WHERE tenant_id = $1 AND ($2::text IS NULL OR workflow_id = $2)
  AND created_at >= $3 AND created_at < $4
GROUP BY 1, 2;

-- name: stats_durations
SELECT COALESCE(workflow_id, '') AS workflow_id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS p95
FROM executions
WHERE tenant_id = $1 AND ($2::text IS NULL OR workflow_id = $2)
  AND created_at >= $3 AND created_at < $4
  AND started_at IS NOT NULL AND finished_at IS NOT NULL
GROUP BY 1;

-- name: stats_buckets
-- Executions per bucket of $5 seconds from $3, by status: a chart's points.
SELECT floor(extract(epoch FROM created_at - $3) / $5)::integer AS bucket, status, count(*) AS n
FROM executions
WHERE tenant_id = $1 AND ($2::text IS NULL OR workflow_id = $2)
  AND created_at >= $3 AND created_at < $4
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: stats_nodes
SELECT COALESCE(x.workflow_id, '') AS workflow_id, r.node_id,
       count(*) AS runs,
       count(*) FILTER (WHERE r.status = 'failed') AS failures,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p95
FROM node_runs r JOIN executions x ON x.id = r.execution_id
WHERE x.tenant_id = $1 AND ($2::text IS NULL OR x.workflow_id = $2)
  AND x.created_at >= $3 AND x.created_at < $4
  AND r.status IN ('completed', 'failed')
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: reset_for_rerun
-- An orphan about to run again from the start of a new event log: its
-- status goes back to queued and the recorder's high-water mark to zero.
UPDATE executions
SET status = 'queued', last_sequence = 0, started_at = NULL
WHERE id = $1 AND status IN ('queued', 'running', 'retry_scheduled')
RETURNING id;

-- name: delete_events
-- The recorded events of a run whose Redis copy is gone: the new run numbers
-- its events from 1 again, and stale rows would make the recorder skip them.
DELETE FROM execution_events WHERE execution_id = $1;

-- name: try_advisory_xact_lock
SELECT pg_try_advisory_xact_lock($1) AS locked;

-- name: advisory_xact_lock
SELECT pg_advisory_xact_lock($1);

-- name: drop_unnamed_portal
SELECT 1;

-- name: unknown_executions
SELECT x.id FROM unnest($1::text[]) AS x(id)
WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = x.id);

-- name: adopt_tenants
INSERT INTO tenants (id, name) SELECT DISTINCT t, t FROM unnest($1::text[]) AS u(t)
ON CONFLICT (id) DO NOTHING;

-- name: adopt_executions
-- Executions the scheduler started (cron) that no API call stored: a
-- queue-mode schedule run of the workflow's latest version, when known.
INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, definition, status, mode,
                        trigger_kind, trigger_data, max_attempts, created_at, run_at)
SELECT a.id, a.tenant_id, NULLIF(a.workflow_id, ''), COALESCE(v.version, 0),
       COALESCE(v.definition, '{}'), 'queued', 'queue', 'schedule', '', 3, a.seen, a.seen
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
     AS a(id, tenant_id, workflow_id, seen)
LEFT JOIN workflows w ON w.id = a.workflow_id AND w.tenant_id = a.tenant_id
LEFT JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.latest_version
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: get_activation
SELECT workflow_id, tenant_id, version, schedule_id FROM workflow_activations
WHERE workflow_id = $1 AND tenant_id = $2;

-- name: upsert_activation
INSERT INTO workflow_activations (workflow_id, tenant_id, version, schedule_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (workflow_id) DO UPDATE
SET version = EXCLUDED.version, schedule_id = EXCLUDED.schedule_id, activated_at = now();

-- name: delete_routes
DELETE FROM webhook_routes WHERE workflow_id = $1;

-- name: route_holder
SELECT workflow_id FROM webhook_routes WHERE tenant_id = $1 AND path = $2;

-- name: insert_route
INSERT INTO webhook_routes (tenant_id, path, workflow_id, version, node_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, path) DO NOTHING
RETURNING path;

-- name: delete_activation
DELETE FROM workflow_activations WHERE workflow_id = $1 AND tenant_id = $2
RETURNING workflow_id, tenant_id, version, schedule_id;

-- name: active_versions
SELECT workflow_id, version FROM workflow_activations
WHERE tenant_id = $1 AND workflow_id = ANY($2::text[]);

-- name: find_route
SELECT tenant_id, path, workflow_id, version, node_id FROM webhook_routes
WHERE tenant_id = $1 AND path = $2;

-- name: routes_of
SELECT tenant_id, path, workflow_id, version, node_id FROM webhook_routes
WHERE workflow_id = $1 ORDER BY path;
