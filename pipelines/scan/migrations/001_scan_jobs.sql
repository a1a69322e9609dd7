-- The scan aggregate: one row per job, advanced one committed stage at a time together with the
-- stage's event in event_store (same transaction). `version` is the aggregate version of its last
-- event; every stage commit checks it (optimistic concurrency between a runner and a reconciler).
CREATE TABLE IF NOT EXISTS scan_jobs (
    job_id           uuid        PRIMARY KEY,
    user_id          text        NOT NULL,
    idempotency_key  text,
    image_url        text        NOT NULL,
    user_input       text,
    model            text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    stage            text        NOT NULL,
    version          integer     NOT NULL,
    attempt          integer     NOT NULL DEFAULT 1,
    vision_result    jsonb,
    rule_id          text,
    answer_result    jsonb,
    reward           jsonb,
    metadata         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    traceparent      text,
    error            text,
    failed_stage     text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS scan_jobs_unfinished
    ON scan_jobs (lease_expires_at) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS scan_jobs_failed ON scan_jobs (updated_at) WHERE status = 'failed';
