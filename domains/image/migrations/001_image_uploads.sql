-- One row per upload URL handed out. `pending` until a verified PUT stored the object; then
-- `uploaded` with its size, sha256 and etag, in the same transaction as its ImageUploaded event.
-- `version` is the aggregate version of the key's last event (0: none yet).
CREATE TABLE IF NOT EXISTS image_uploads (
    key          text        PRIMARY KEY,
    user_id      text        NOT NULL,
    channel      text        NOT NULL CHECK (channel IN ('chat', 'scan', 'my')),
    content_type text        NOT NULL,
    filename     text        NOT NULL,
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status       text        NOT NULL CHECK (status IN ('pending', 'uploaded')),
    version      integer     NOT NULL DEFAULT 0,
    size         bigint,
    sha256       text,
    etag         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    uploaded_at  timestamptz
);
CREATE INDEX IF NOT EXISTS image_uploads_user ON image_uploads (user_id, created_at);
CREATE INDEX IF NOT EXISTS image_uploads_pending_expiry
    ON image_uploads (expires_at) WHERE status = 'pending';
