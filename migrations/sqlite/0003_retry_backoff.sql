-- A failed attempt waits out an exponential backoff before it is claimable again.
ALTER TABLE jobs ADD COLUMN run_after_ms INTEGER NOT NULL DEFAULT 0;
