-- ListExecutions filtered by status (the console's "failed" tab, `nodedrop
-- executions list --status failed`): without this index the query walks the
-- tenant's executions newest first until it has a page, which on a tenant with
-- a million executions and few failures reads most of them. With it, each
-- status of the filter is one index range read in cursor order (the query
-- merges them; sql/queries.sql, list_executions_by_status).
--
-- Cost on the write path: status changes were already not heap-only updates
-- (executions_unfinished's predicate reads status, so every status change
-- writes each index of the table); this adds one index entry to each.
CREATE INDEX executions_tenant_status_created
    ON executions (tenant_id, status, created_at DESC, id DESC);
