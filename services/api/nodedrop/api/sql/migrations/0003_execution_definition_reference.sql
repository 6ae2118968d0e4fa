-- An execution of a stored workflow keeps a reference (workflow_id,
-- workflow_version) instead of a copy of the definition: versions are never
-- changed or removed (a deleted workflow is only marked), so the reference
-- is as good as the copy, and a row no longer carries the whole definition
-- (written once per submission, and again by every row update that is not
-- heap-only). NULL means "the definition of that version"; inline
-- definitions are still stored here.
ALTER TABLE executions ALTER COLUMN definition DROP NOT NULL;
