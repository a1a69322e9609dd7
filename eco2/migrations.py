"""Database creation and SQL migrations, one database per domain.

Migrations are plain ``NNN_name.sql`` files found by convention, in this order for each domain:

1. ``eco2/sql/`` — kernel tables every domain database has (event store, inbox);
2. ``domains/<domain>/migrations/`` or ``pipelines/<domain>/migrations/`` — the domain's own tables.

Each file runs once per database, inside one transaction together with its row in
``eco2_schema_migrations`` (name and SHA-256 of the text), under an advisory lock so concurrent
starters do not race. A migration whose text changed after it was applied is refused
(:class:`MigrationChanged`): add a new file instead of editing an applied one.

A migration library (alembic, yoyo) was considered: the per-domain database, its own role, the
hand-over of ownership and the advisory lock would stay hand-written around it, for a ledger of
a few lines.

``python -m eco2.migrations`` applies every domain's migrations (the Kubernetes migration Job);
``--wait`` applies nothing and blocks until they are all recorded (the init containers), so this
entry point imports the kernel only, not the services it migrates for.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from eco2.settings import DOMAIN_DATABASES, Settings, load_settings

_KERNEL_SQL = Path(__file__).parent / "sql"
_LOCK_KEY = 0x3EC02  # advisory lock id shared by every migrating process

_LEDGER = """
CREATE TABLE IF NOT EXISTS eco2_schema_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE eco2_schema_migrations ADD COLUMN IF NOT EXISTS checksum text
"""


class MigrationChanged(RuntimeError):
    """An applied migration's text differs from the one that was applied."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def database_dsn(server_dsn: str, database: str, *, user: str | None = None) -> str:
    """The DSN of ``database`` on the server that ``server_dsn`` points at (as ``user``)."""
    parts = urlsplit(server_dsn)
    if user is not None:
        password = f":{parts.password}" if parts.password else ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}{password}@{host}")
    return urlunsplit(parts._replace(path=f"/{database}"))


def _package_dir(dotted: str) -> Path | None:
    spec = importlib.util.find_spec(dotted.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))).joinpath(*dotted.split(".")[1:])
    return candidate if candidate.is_dir() else None


def migrations_for(domain: str) -> list[Migration]:
    """The ordered migrations of one domain database (kernel first, then the domain's own)."""
    folders = [_KERNEL_SQL]
    for owner in (f"domains.{domain}.migrations", f"pipelines.{domain}.migrations"):
        folder = _package_dir(owner)
        if folder is not None:
            folders.append(folder)
    found: list[Migration] = []
    for folder in folders:
        prefix = "kernel" if folder == _KERNEL_SQL else domain
        for path in sorted(folder.glob("*.sql")):
            found.append(Migration(f"{prefix}/{path.name}", path.read_text(encoding="utf-8")))
    return found


async def _ensure_database(server_dsn: str, database: str, *, own_role: bool) -> None:
    """Create ``database``; with ``own_role``, also a login role of the same name that owns it
    and is the only ordinary role allowed to connect to it (domain isolation)."""
    conn = await asyncpg.connect(server_dsn)
    try:
        if own_role:
            # CREATE ROLE has no IF NOT EXISTS: serialise concurrent starters.
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", database):
                await conn.execute(f'CREATE ROLE "{database}" LOGIN')
            password = urlsplit(server_dsn).password
            if password:
                await conn.execute(f"ALTER ROLE \"{database}\" PASSWORD '{_quote(password)}'")
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            owner = f' OWNER "{database}"' if own_role else ""
            await conn.execute(f'CREATE DATABASE "{database}"{owner}')
        if own_role:
            await conn.execute(f'ALTER DATABASE "{database}" OWNER TO "{database}"')
            await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
            await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{database}"')
    finally:
        await conn.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")


_OWN_EVERYTHING = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT c.relname, c.relkind FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v', 'm', 'p')
          AND pg_get_userbyid(c.relowner) <> current_database()
    LOOP
        EXECUTE format(
            'ALTER %s public.%I OWNER TO %I',
            CASE item.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
            item.relname, current_database());
    END LOOP;
END $$
"""


async def apply_migrations(
    dsn: str, migrations: list[Migration], *, owner: str | None = None
) -> list[str]:
    """Apply the not-yet-applied ``migrations`` to the database at ``dsn``; return their names.

    With ``owner`` (a role), everything is created as that role, and tables an earlier run
    created as another role are handed over to it.
    """
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        if owner is not None:
            await conn.execute(_OWN_EVERYTHING)
            await conn.execute(f'SET ROLE "{owner}"')
        await conn.execute(_LEDGER)
        rows = await conn.fetch("SELECT name, checksum FROM eco2_schema_migrations")
        done = {r["name"]: r["checksum"] for r in rows}
        for migration in migrations:
            if migration.name in done:
                await _check_unchanged(conn, migration, done[migration.name])
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO eco2_schema_migrations(name, checksum) VALUES ($1, $2)",
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration.name)
    finally:
        await conn.close()
    return applied


async def _check_unchanged(
    conn: asyncpg.Connection, migration: Migration, recorded: str | None
) -> None:
    if recorded is None:  # applied before checksums were recorded: record it now
        await conn.execute(
            "UPDATE eco2_schema_migrations SET checksum = $2 WHERE name = $1",
            migration.name,
            migration.checksum,
        )
    elif recorded != migration.checksum:
        database = await conn.fetchval("SELECT current_database()")
        raise MigrationChanged(
            f"migration {migration.name} changed after it was applied to {database}: "
            "restore its text and put the change in a new migration file"
        )


async def migrate_all_async(server_dsn: str, settings: Settings) -> list[str]:
    """Create every missing domain database and apply its migrations."""
    applied: list[str] = []
    isolate = settings.db.isolate_domains
    for domain in DOMAIN_DATABASES:
        database = settings.database_name(domain)
        await _ensure_database(server_dsn, database, own_role=isolate)
        names = await apply_migrations(
            database_dsn(server_dsn, database),
            migrations_for(domain),
            owner=database if isolate else None,
        )
        applied.extend(f"{database}:{name}" for name in names)
    return applied


def migrate_all(server_dsn: str, settings: Settings) -> list[str]:
    """Blocking wrapper of :func:`migrate_all_async` for the launcher and the CLI."""
    return asyncio.run(migrate_all_async(server_dsn, settings))


# --- entry point (the migration Job and the init containers of k8s/domains.yaml) ----------------


def pending_migrations(recorded: Mapping[str, set[str]]) -> list[str]:
    """``domain:migration`` names this code ships that ``recorded`` (domain → applied names)
    lacks, in the order they would be applied."""
    return [
        f"{domain}:{migration.name}"
        for domain in DOMAIN_DATABASES
        for migration in migrations_for(domain)
        if migration.name not in recorded.get(domain, set())
    ]


async def _recorded(server_dsn: str, settings: Settings) -> dict[str, set[str]]:
    """Applied migration names per domain; a missing database or ledger counts as none."""
    recorded: dict[str, set[str]] = {}
    for domain in DOMAIN_DATABASES:
        try:
            conn = await asyncpg.connect(database_dsn(server_dsn, settings.database_name(domain)))
        except (OSError, asyncpg.PostgresError):
            continue
        try:
            rows = await conn.fetch("SELECT name FROM eco2_schema_migrations")
            recorded[domain] = {row["name"] for row in rows}
        except asyncpg.PostgresError:
            pass
        finally:
            await conn.close()
    return recorded


def wait_until_migrated(server_dsn: str, settings: Settings, deadline_s: float) -> list[str]:
    """Poll every 5 s until no migration is pending; return what is still pending when
    ``deadline_s`` has passed (empty: all applied). Applies nothing."""
    give_up = time.monotonic() + deadline_s
    while pending := pending_migrations(asyncio.run(_recorded(server_dsn, settings))):
        if time.monotonic() > give_up:
            return pending
        time.sleep(5)
    return []


def main(argv: list[str] | None = None) -> int:
    """Apply every domain's migrations (exit 0), or with ``--wait`` block until another run
    applied them (exit 1 after ``--deadline-s``, so the kubelet retries the init container);
    exit 2 without ``ECO2_DB__URL``."""
    parser = argparse.ArgumentParser(prog="python -m eco2.migrations", description=__doc__)
    parser.add_argument("--wait", action="store_true", help="wait until applied; apply nothing")
    parser.add_argument("--deadline-s", type=float, default=600.0, help="--wait: give up after")
    args = parser.parse_args(argv)
    settings = load_settings()
    if settings.db.url is None:
        print("ECO2_DB__URL is not set", file=sys.stderr)
        return 2
    if args.wait:
        pending = wait_until_migrated(settings.db.url, settings, args.deadline_s)
        if pending:
            print(f"still pending: {', '.join(pending)}", file=sys.stderr)
        return 1 if pending else 0
    for name in migrate_all(settings.db.url, settings):
        print(f"applied {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
