-- Workers look for due garbage before every claim: by this index, not by a
-- scan of every blob awaiting removal.
CREATE INDEX blob_garbage_due ON blob_garbage (not_before);
