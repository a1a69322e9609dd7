"""Each domain's database is its own: the domain's role connects to it and to no other, and every
connection the running services hold is their own role on their own database."""

from __future__ import annotations

import asyncpg
import pytest

from eco2.migrations import database_dsn
from eco2.settings import DOMAIN_DATABASES, Settings
from tests.conftest import StackUrls

pytestmark = pytest.mark.integration


async def _can_connect(server: str, database: str, role: str) -> bool:
    try:
        conn = await asyncpg.connect(database_dsn(server, database, user=role))
    except asyncpg.InsufficientPrivilegeError:
        return False
    await conn.close()
    return True


async def test_a_domain_role_reaches_its_own_database_only(
    stack: StackUrls, settings: Settings
) -> None:
    names = [settings.database_name(d) for d in DOMAIN_DATABASES]
    reach = {
        (role, database): await _can_connect(stack.db_url, database, role)
        for role in names
        for database in names
    }
    assert {pair for pair, ok in reach.items() if ok} == {(n, n) for n in names}


async def test_running_services_connect_as_their_own_role_to_their_own_database(
    stack: StackUrls, settings: Settings
) -> None:
    conn = await asyncpg.connect(stack.db_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT usename, datname FROM pg_stat_activity WHERE usename LIKE $1",
            f"{settings.db.database_prefix}%",
        )
    finally:
        await conn.close()
    sessions = {(r["usename"], r["datname"]) for r in rows}
    assert sessions, "no domain service is connected"
    assert all(user == database for user, database in sessions), sessions
    connected = {user.removeprefix(settings.db.database_prefix) for user, _ in sessions}
    assert {"auth", "character", "my", "notification", "image", "location", "scan"} <= connected
