-- The auth domain: accounts, the keys tokens are signed with, and refresh-token families.

-- One row per account. `version` is the `user` aggregate's version in event_store, bumped in the
-- transaction that appends its events.
CREATE TABLE IF NOT EXISTS users (
    id               uuid        PRIMARY KEY,
    provider         text        NOT NULL,
    provider_subject text        NOT NULL,
    display_name     text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_login_at    timestamptz,
    deleted_at       timestamptz,
    version          integer     NOT NULL DEFAULT 0 CHECK (version >= 0)
);
-- One live account per provider identity: UNIQUE (provider, provider_subject) among accounts not
-- deleted, so signing in again after deleting one's account registers a new one.
CREATE UNIQUE INDEX IF NOT EXISTS users_identity
    ON users (provider, provider_subject) WHERE deleted_at IS NULL;

-- ES256 key pairs. Exactly one is active (signs new tokens); every row is published in the JWKS
-- so tokens signed before a rotation stay verifiable. The first starter inserts the key; the
-- partial unique index makes a concurrent starter's insert a no-op, and both read the winner.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid             text        PRIMARY KEY,
    private_key_pem text        NOT NULL,
    public_jwk      jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    active          boolean     NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_one_active ON signing_keys (active) WHERE active;

-- Refresh tokens by jti. A family is one sign-in session: each rotation marks the presented token
-- used and adds its successor to the family; a used token presented again revokes the family.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti        uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id),
    family_id  uuid        NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);
