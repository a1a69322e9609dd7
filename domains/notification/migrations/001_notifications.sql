-- One row per notice. id is the event_id of the event that caused it, so a redelivered event can
-- never create a second notice (the reactions insert with ON CONFLICT (id) DO NOTHING).
-- created_at is the insert time (clock_timestamp()), the order of the feed and of SSE resumes.
CREATE TABLE IF NOT EXISTS notifications (
    id         uuid        PRIMARY KEY,
    user_id    text        NOT NULL,
    kind       text        NOT NULL,
    title      text        NOT NULL,
    body       text        NOT NULL,
    data       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    read_at    timestamptz
);

-- The feed, newest first, with (created_at, id) as the keyset cursor.
CREATE INDEX IF NOT EXISTS notifications_user_created
    ON notifications (user_id, created_at DESC, id DESC);

-- The unread notices an SSE stream sends on connect.
CREATE INDEX IF NOT EXISTS notifications_user_unread
    ON notifications (user_id, created_at DESC, id DESC) WHERE read_at IS NULL;
