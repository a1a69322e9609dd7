-- A posted message being answered: one row per job, advanced one committed step at a time
-- (optimistic concurrency on `version`), leased to the replica that runs it. The user's message
-- and the answer live in chat_messages (the chat domain's), written in the same transactions.
CREATE TABLE IF NOT EXISTS chat_jobs (
    job_id           uuid        PRIMARY KEY,
    chat_id          uuid        NOT NULL REFERENCES chats (chat_id),
    user_id          text        NOT NULL,
    idempotency_key  text,
    message          text        NOT NULL,
    image_url        text,
    user_location    jsonb,
    model            text        NOT NULL,
    client_model     text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    stage            text        NOT NULL,
    version          integer     NOT NULL,
    attempt          integer     NOT NULL DEFAULT 1,
    classification   jsonb,
    vision_result    jsonb,
    context          jsonb,
    answer           text,
    needs_input      jsonb,
    user_input       jsonb,
    metadata         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    traceparent      text,
    error            text,
    failed_stage     text,
    user_message_id  uuid,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS chat_jobs_unfinished
    ON chat_jobs (lease_expires_at) WHERE status IN ('queued', 'running');
