-- Batch rescoring (pipelines/rescore, docs/rescoring.md): one row per (run, job). A row with
-- status 'done' is final: a rerun of the same run skips it and never calls the model for it
-- again; a 'failed' row is retried by the next invocation of the run. ScanRescored is appended
-- to event_store in the same transaction as the 'done' row when the outcome changed.
CREATE TABLE IF NOT EXISTS scan_rescorings (
    run_id           text        NOT NULL,
    job_id           uuid        NOT NULL REFERENCES scan_jobs (job_id),
    status           text        NOT NULL CHECK (status IN ('done', 'failed')),
    stages           text        NOT NULL,
    model            text        NOT NULL,
    rules_version    text        NOT NULL,
    previous_outcome jsonb       NOT NULL,
    new_outcome      jsonb,
    changed          text[]      NOT NULL DEFAULT '{}',
    requests         integer     NOT NULL DEFAULT 0,
    tokens           integer     NOT NULL DEFAULT 0,
    error            text,
    rescored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, job_id)
);
