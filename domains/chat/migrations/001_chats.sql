-- The chat aggregate: one row per conversation; `version` is the aggregate version of its last
-- event (every change bumps it in the statement that appends the events).
CREATE TABLE IF NOT EXISTS chats (
    chat_id         uuid        PRIMARY KEY,
    user_id         text        NOT NULL,
    title           text        NOT NULL,
    preview         text,
    message_count   integer     NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    summary         text,
    summarised_upto bigint      NOT NULL DEFAULT 0,
    version         integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX IF NOT EXISTS chats_by_activity
    ON chats (user_id, (coalesce(last_message_at, created_at)) DESC, chat_id DESC)
    WHERE deleted_at IS NULL;

-- The messages of a chat in order (`position`); a job's user message and answer once each.
CREATE TABLE IF NOT EXISTS chat_messages (
    position   bigserial   PRIMARY KEY,
    message_id uuid        NOT NULL UNIQUE,
    chat_id    uuid        NOT NULL REFERENCES chats (chat_id),
    job_id     uuid,
    role       text        NOT NULL CHECK (role IN ('user', 'assistant')),
    content    text        NOT NULL,
    image_url  text,
    intent     text,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, role)
);
CREATE INDEX IF NOT EXISTS chat_messages_by_chat ON chat_messages (chat_id, position);
