-- The API request that created a job, and the request that caused a
-- notification (directly, or through the job it announces): what an
-- operator follows from a stored delivery back to the request's log lines.
ALTER TABLE jobs ADD COLUMN request_id TEXT;
ALTER TABLE deliveries ADD COLUMN request_id TEXT;
