"""The migration ledger: each file once per database, and an applied file is never edited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eco2.migrations import Migration, MigrationChanged, apply_migrations, database_dsn
from tests.conftest import StackUrls

pytestmark = pytest.mark.integration


@pytest.fixture
async def scratch_dsn(stack: StackUrls) -> AsyncIterator[str]:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack.db_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_dsn(stack.db_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


FIRST = Migration("t/001_a.sql", "CREATE TABLE a (id int)")
SECOND = Migration("t/002_b.sql", "CREATE TABLE b (id int)")


async def test_each_migration_runs_once(scratch_dsn: str) -> None:
    assert await apply_migrations(scratch_dsn, [FIRST]) == ["t/001_a.sql"]
    assert await apply_migrations(scratch_dsn, [FIRST, SECOND]) == ["t/002_b.sql"]
    assert await apply_migrations(scratch_dsn, [FIRST, SECOND]) == []


async def test_an_applied_migration_that_changed_is_refused(scratch_dsn: str) -> None:
    await apply_migrations(scratch_dsn, [FIRST])
    edited = Migration(FIRST.name, FIRST.sql + "; CREATE TABLE sneaky (id int)")
    with pytest.raises(MigrationChanged, match=r"t/001_a\.sql changed"):
        await apply_migrations(scratch_dsn, [edited, SECOND])
    conn = await asyncpg.connect(scratch_dsn)
    try:  # nothing after the refusal ran
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert "b" not in tables
    assert "sneaky" not in tables


async def test_a_ledger_from_before_checksums_is_filled_in_not_refused(scratch_dsn: str) -> None:
    conn = await asyncpg.connect(scratch_dsn)
    try:
        await conn.execute(
            "CREATE TABLE eco2_schema_migrations (name text PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(FIRST.sql)
        await conn.execute("INSERT INTO eco2_schema_migrations(name) VALUES ($1)", FIRST.name)
    finally:
        await conn.close()
    assert await apply_migrations(scratch_dsn, [FIRST]) == []
    conn = await asyncpg.connect(scratch_dsn)
    try:
        recorded = await conn.fetchval("SELECT checksum FROM eco2_schema_migrations")
    finally:
        await conn.close()
    assert recorded == FIRST.checksum
