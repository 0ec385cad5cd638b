-- Jobs of more than one kind share the queue: `extraction` (features and scores of the
-- lesions, POST /v1/jobs) and `robustness` (per-location feature ICC, POST /v1/robustness).
-- Every job before this migration is an extraction.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'extraction';
