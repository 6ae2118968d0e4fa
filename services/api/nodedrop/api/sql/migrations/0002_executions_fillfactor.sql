-- The recorder updates each execution row as its events arrive (queued,
-- started, finished). With full pages (the default fillfactor 100, rows
-- appended in creation order) most of those updates cannot stay on the
-- row's page, so each one also writes all five indexes of the table
-- (bench/api.py measured 37% HOT updates). Free room in each page keeps them
-- heap-only: none of the updated columns is indexed. Applies to pages
-- written from now on; existing ones fill up as they are rewritten.
ALTER TABLE executions SET (fillfactor = 75);
