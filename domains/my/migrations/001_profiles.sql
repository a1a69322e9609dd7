-- The my domain (domain.md §11.3): one profile per user and the user's owned-characters read model.

-- `version` is the aggregate version of the profile's last event (aggregate id = user id), bumped
-- under the row lock in the transaction that appends the event. `deleted_at` set → the account is
-- gone: /users/me answers 404 and later characters are not added.
CREATE TABLE IF NOT EXISTS profiles (
    user_id       text        PRIMARY KEY,
    display_name  text,
    nickname      text,
    phone_number  text,
    provider      text,
    last_login_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    version       integer     NOT NULL DEFAULT 0 CHECK (version >= 0)
);

-- Derived from character's CharacterAcquired; unique per (user, character), so a redelivered or
-- repeated acquisition adds nothing. `character_id` is the character domain's id (its code).
CREATE TABLE IF NOT EXISTS user_characters (
    user_id        text        NOT NULL,
    character_code text        NOT NULL,
    character_id   text        NOT NULL,
    name           text        NOT NULL,
    type           text        NOT NULL,
    dialog         text        NOT NULL,
    source         text        NOT NULL,
    acquired_at    timestamptz NOT NULL,
    UNIQUE (user_id, character_code)
);
