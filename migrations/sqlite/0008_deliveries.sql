-- DICOMweb push of job reports: one delivery per job, its state, attempts and last error.
CREATE TABLE deliveries (
    job_id          TEXT PRIMARY KEY REFERENCES jobs (id),
    destination     TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX deliveries_status ON deliveries (status);
