-- ListExecutions filtered by status (the console's "failed" tab, `nodedrop
-- executions list --status failed`) or by workflow and status: without these
-- indexes the query walks the tenant's (or the workflow's) executions newest
-- first until it has a page, which on a tenant with a million executions and
-- few failures reads most of them. With them, each status of the filter is
-- one index range read in cursor order, and the query merges them
-- (sql/queries.sql, list_executions_by_status and
-- list_executions_by_workflow): a workflow filter alone reads one range per
-- status, so the workflow index gains the status column instead of a third
-- index being added.
--
-- Cost on the write path: status changes were already not heap-only updates
-- (executions_unfinished's predicate reads status, so every status change
-- writes each index of the table); this adds one index entry to each.
CREATE INDEX executions_tenant_status_created
    ON executions (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX executions_workflow_status_created
    ON executions (tenant_id, workflow_id, status, created_at DESC, id DESC);
DROP INDEX executions_workflow_created;
