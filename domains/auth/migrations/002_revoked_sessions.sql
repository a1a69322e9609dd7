-- The blacklist keeper asks every 2 s which sessions were revoked since its last look
-- (domains/auth/blacklist.py): only revoked rows are indexed.
CREATE INDEX IF NOT EXISTS refresh_tokens_revoked ON refresh_tokens (revoked_at)
    WHERE revoked_at IS NOT NULL;
