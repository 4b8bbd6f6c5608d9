-- Stale days are looked for about once a second: only days whose records
-- changed after an export (a version above 0) can be, so that search reads
-- this index, not every day ever published.
CREATE INDEX day_versions_changed ON day_versions (account_sid, resource_type, day) WHERE version > 0;
