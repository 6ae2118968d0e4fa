-- Named queries of the embedded SQLite repository (":name" parameters).

-- name: ensure_tenant
INSERT INTO tenants (id, name, created_at) VALUES (:id, :name, :now) ON CONFLICT (id) DO NOTHING;

-- name: insert_api_key
INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, prefix, created_at)
VALUES (:id, :tenant_id, :name, :key_hash, :scopes, :prefix, :now)
RETURNING *;

-- name: get_api_key
SELECT * FROM api_keys WHERE id = :id;

-- name: list_api_keys
SELECT * FROM api_keys WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
ORDER BY tenant_id, created_at, id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :now)
WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
RETURNING *;

-- name: insert_workflow
INSERT INTO workflows (id, tenant_id, name, latest_version, created_at, updated_at)
VALUES (:id, :tenant_id, :name, 1, :now, :now);

-- name: insert_workflow_version
INSERT INTO workflow_versions (workflow_id, version, name, definition, created_at)
VALUES (:id, :version, :name, :definition, :now);

-- name: lock_workflow
SELECT latest_version, created_at FROM workflows
WHERE id = :id AND tenant_id = :tenant_id AND deleted_at IS NULL;

-- name: bump_workflow
UPDATE workflows SET latest_version = :version, name = :name, updated_at = :now
WHERE id = :id AND tenant_id = :tenant_id;

-- name: get_workflow
SELECT w.id, w.tenant_id, v.version, v.name, v.definition, w.created_at, v.created_at AS updated_at
FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.id = :id AND w.tenant_id = :tenant_id AND w.deleted_at IS NULL
  AND v.version = COALESCE(:version, w.latest_version);

-- name: list_workflows
SELECT w.id, w.tenant_id, v.version, v.name, v.definition, w.created_at, v.created_at AS updated_at
FROM workflows w
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.latest_version
WHERE w.tenant_id = :tenant_id AND w.deleted_at IS NULL
  AND substr(w.name, 1, length(:prefix)) = :prefix
  AND (w.name > :after_name OR (w.name = :after_name AND w.id > :after_id))
ORDER BY w.name, w.id
LIMIT :limit;

-- name: list_workflow_versions
SELECT w.id, w.tenant_id, v.version, v.name, v.definition, w.created_at, v.created_at AS updated_at
FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.id = :id AND w.tenant_id = :tenant_id AND w.deleted_at IS NULL AND v.version < :before
ORDER BY v.version DESC
LIMIT :limit;

-- name: delete_workflow
UPDATE workflows SET deleted_at = :now
WHERE id = :id AND tenant_id = :tenant_id AND deleted_at IS NULL
RETURNING id;

-- name: insert_execution
INSERT INTO executions (
    id, tenant_id, workflow_id, workflow_version, definition, status, mode, trigger_kind,
    trigger_data, max_attempts, priority, idempotency_key, retry_of, trace_id, created_at, run_at)
VALUES (:id, :tenant_id, :workflow_id, :workflow_version, :definition, 'queued', :mode,
    :trigger_kind, :trigger_data, :max_attempts, :priority, :idempotency_key, :retry_of,
    :trace_id, :now, :run_at)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: find_by_idempotency_key
SELECT id, status FROM executions WHERE tenant_id = :tenant_id AND idempotency_key = :key;

-- name: get_execution
SELECT * FROM executions WHERE id = :id AND (:tenant_id IS NULL OR tenant_id = :tenant_id);

-- name: get_node_runs
-- In the order the nodes ran: by the sequence of each run's first event (the
-- times of a batch of commits are equal), then by start time.
SELECT r.* FROM node_runs r
LEFT JOIN (SELECT node_id, attempt, min(sequence) AS first_sequence
           FROM execution_events WHERE execution_id = :id AND node_id <> ''
           GROUP BY node_id, attempt) f
       ON f.node_id = r.node_id AND f.attempt = r.attempt
WHERE r.execution_id = :id
ORDER BY f.first_sequence IS NULL, f.first_sequence, r.started_at IS NULL, r.started_at,
         r.attempt, r.node_id;

-- name: list_executions
-- The status filter arrives as a JSON array text (empty array = any status).
SELECT * FROM executions
WHERE tenant_id = :tenant_id
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND (json_array_length(:statuses) = 0 OR status IN (SELECT value FROM json_each(:statuses)))
  AND (json_array_length(:triggers) = 0 OR trigger_kind IN (SELECT value FROM json_each(:triggers)))
  AND (:after_created IS NULL OR created_at >= :after_created)
  AND (:before_created IS NULL OR created_at < :before_created)
  AND (:cursor_time IS NULL OR created_at < :cursor_time
       OR (created_at = :cursor_time AND id < :cursor_id))
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: set_status
UPDATE executions
SET status = :status, error = COALESCE(:error, error),
    finished_at = CASE WHEN :terminal THEN :now ELSE finished_at END
WHERE id = :id AND status IN ('queued', 'running', 'retry_scheduled')
RETURNING status;

-- name: list_failed_since
SELECT * FROM executions
WHERE status = 'failed' AND mode = 'queue' AND finished_at >= :since
  AND (finished_at > :after_time OR (finished_at = :after_time AND id > :after_id))
ORDER BY finished_at, id
LIMIT :limit;

-- name: list_unfinished
SELECT * FROM executions
WHERE status IN ('queued', 'running', 'retry_scheduled') AND mode = :mode
  AND created_at < :before
  AND (created_at > :after_time OR (created_at = :after_time AND id > :after_id))
ORDER BY created_at, id
LIMIT :limit;

-- name: count_unfinished
SELECT status, count(*) AS n FROM executions
WHERE tenant_id = :tenant_id AND status IN ('queued', 'running', 'retry_scheduled')
GROUP BY status;

-- name: insert_event
INSERT INTO execution_events (execution_id, sequence, type, time, node_id, attempt, data, error)
SELECT :execution_id, :sequence, :type, :time, :node_id, :attempt, :data, :error
WHERE EXISTS (SELECT 1 FROM executions WHERE id = :execution_id)
ON CONFLICT (execution_id, sequence) DO NOTHING
RETURNING execution_id;

-- name: apply_execution_patch
-- The rules of queries.sql's apply_execution_patch.
UPDATE executions SET
    status = CASE
        WHEN :status IS NULL THEN status
        WHEN :attempt > attempt THEN :status
        WHEN status IN ('completed', 'failed', 'cancelled', 'timed_out')
             AND :status NOT IN ('completed', 'failed', 'cancelled', 'timed_out') THEN status
        WHEN :last_sequence < last_sequence
             AND :status NOT IN ('completed', 'failed', 'cancelled', 'timed_out') THEN status
        ELSE :status END,
    attempt = MAX(attempt, :attempt),
    started_at = COALESCE(started_at, :started_at),
    finished_at = CASE WHEN :status IS NOT NULL AND :attempt > attempt
                            AND status IN ('completed', 'failed', 'cancelled', 'timed_out')
                       THEN :finished_at ELSE COALESCE(:finished_at, finished_at) END,
    error = CASE WHEN :status IS NOT NULL AND :attempt > attempt
                      AND status IN ('completed', 'failed', 'cancelled', 'timed_out')
                 THEN :error ELSE COALESCE(:error, error) END,
    result = CASE WHEN :status IS NOT NULL AND :attempt > attempt
                       AND status IN ('completed', 'failed', 'cancelled', 'timed_out')
                  THEN :result ELSE COALESCE(:result, result) END,
    last_sequence = MAX(last_sequence, :last_sequence)
WHERE id = :id;

-- name: upsert_node_run
INSERT INTO node_runs (execution_id, node_id, attempt, status, started_at, finished_at,
                       error, output_item_count, outputs)
VALUES (:execution_id, :node_id, :attempt, :status, :started_at, :finished_at, :error,
        :output_item_count, :outputs)
ON CONFLICT (execution_id, node_id, attempt) DO UPDATE SET
    status = CASE WHEN node_runs.status = 'running' OR excluded.status <> 'running'
                  THEN excluded.status ELSE node_runs.status END,
    started_at = COALESCE(node_runs.started_at, excluded.started_at),
    finished_at = COALESCE(excluded.finished_at, node_runs.finished_at),
    error = COALESCE(excluded.error, node_runs.error),
    output_item_count = MAX(excluded.output_item_count, node_runs.output_item_count),
    outputs = COALESCE(excluded.outputs, node_runs.outputs);

-- name: list_events
SELECT * FROM execution_events
WHERE execution_id = :id AND sequence > :after
ORDER BY sequence
LIMIT :limit;

-- name: stats_executions
SELECT COALESCE(workflow_id, '') AS workflow_id, status, started_at, finished_at
FROM executions
WHERE tenant_id = :tenant_id AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND created_at >= :start AND created_at < :end;

-- name: stats_buckets
-- Times are microseconds: integer division numbers the buckets from :start.
SELECT (created_at - :start) / :width AS bucket, status, count(*) AS n
FROM executions
WHERE tenant_id = :tenant_id AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND created_at >= :start AND created_at < :end
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: stats_nodes
SELECT COALESCE(x.workflow_id, '') AS workflow_id, r.node_id, r.status, r.started_at, r.finished_at
FROM node_runs r JOIN executions x ON x.id = r.execution_id
WHERE x.tenant_id = :tenant_id AND (:workflow_id IS NULL OR x.workflow_id = :workflow_id)
  AND x.created_at >= :start AND x.created_at < :end
  AND r.status IN ('completed', 'failed');

-- name: reset_for_rerun
UPDATE executions
SET status = 'queued', last_sequence = 0, started_at = NULL
WHERE id = :id AND status IN ('queued', 'running', 'retry_scheduled')
RETURNING id;

-- name: delete_events
DELETE FROM execution_events WHERE execution_id = :id;

-- name: adopt_execution
INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, definition, status, mode,
                        trigger_kind, trigger_data, max_attempts, created_at, run_at)
SELECT :id, :tenant_id, NULLIF(:workflow_id, ''),
       COALESCE((SELECT v.version FROM workflows w JOIN workflow_versions v
                 ON v.workflow_id = w.id AND v.version = w.latest_version
                 WHERE w.id = :workflow_id AND w.tenant_id = :tenant_id), 0),
       COALESCE((SELECT v.definition FROM workflows w JOIN workflow_versions v
                 ON v.workflow_id = w.id AND v.version = w.latest_version
                 WHERE w.id = :workflow_id AND w.tenant_id = :tenant_id), '{}'),
       'queued', 'queue', 'schedule', '', 3, :seen, :seen
WHERE NOT EXISTS (SELECT 1 FROM executions WHERE id = :id)
RETURNING id;

-- name: get_activation
SELECT workflow_id, tenant_id, version, schedule_id FROM workflow_activations
WHERE workflow_id = :workflow_id AND tenant_id = :tenant_id;

-- name: upsert_activation
INSERT INTO workflow_activations (workflow_id, tenant_id, version, schedule_id, activated_at)
VALUES (:workflow_id, :tenant_id, :version, :schedule_id, :now)
ON CONFLICT (workflow_id) DO UPDATE
SET version = excluded.version, schedule_id = excluded.schedule_id,
    activated_at = excluded.activated_at;

-- name: delete_routes
DELETE FROM webhook_routes WHERE workflow_id = :workflow_id;

-- name: route_holder
SELECT workflow_id FROM webhook_routes WHERE tenant_id = :tenant_id AND path = :path;

-- name: insert_route
INSERT INTO webhook_routes (tenant_id, path, workflow_id, version, node_id)
VALUES (:tenant_id, :path, :workflow_id, :version, :node_id)
ON CONFLICT (tenant_id, path) DO NOTHING
RETURNING path;

-- name: delete_activation
DELETE FROM workflow_activations WHERE workflow_id = :workflow_id AND tenant_id = :tenant_id
RETURNING workflow_id, tenant_id, version, schedule_id;

-- name: find_route
SELECT tenant_id, path, workflow_id, version, node_id FROM webhook_routes
WHERE tenant_id = :tenant_id AND path = :path;

-- name: routes_of
SELECT tenant_id, path, workflow_id, version, node_id FROM webhook_routes
WHERE workflow_id = :workflow_id ORDER BY path;

-- name: active_versions
SELECT workflow_id, version FROM workflow_activations WHERE tenant_id = :tenant_id;
