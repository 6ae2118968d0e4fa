-- ListExecutions filtered by trigger kind (the console's trigger filter,
-- `nodedrop executions list --trigger`): without this index the kind only
-- filters the rows of the status or unfiltered walk, so a page of a kind
-- that is one execution in a thousand reads about 50,000 rows. With it,
-- each (kind, status) pair of the filter is one index range read in cursor
-- order, merged by list_executions_by_trigger (sql/queries.sql); a filter
-- without statuses reads one range per status, as the workflow filter does.
-- A workflow filter keeps executions_workflow_status_created, which the
-- kind filters.
--
-- Cost on the write path: one more index entry per insert and per status
-- change (status changes are not heap-only updates already, migration 0004).
CREATE INDEX executions_tenant_trigger_status_created
    ON executions (tenant_id, trigger_kind, status, created_at DESC, id DESC);
