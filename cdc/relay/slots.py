"""Publication and replication slot of one domain database, and the initial snapshot.

Each database gets publication ``eco2_cdc`` (``event_store``, inserts only) and a logical slot
``eco2_cdc_<database>`` (pgoutput). A new slot streams only what commits after its consistent
point, so when the relay creates one it first publishes every row visible in the slot's exported
snapshot (Debezium's ``snapshot.mode=initial``) and then records on the publication's comment
that the snapshot of that slot is done. A relay killed during the snapshot finds the slot without
the mark, drops it and starts over: events committed before the relay first ran are published at
least once, never lost.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors

from cdc.outbox import EVENT_COLUMNS
from cdc.relay.pgoutput import parse_lsn

PUBLICATION = "eco2_cdc"
SLOT_PREFIX = "eco2_cdc_"
SNAPSHOT_BATCH = 5000
_MARK = "eco2 cdc: initial snapshot published for slot "

Connection = Any  # psycopg2 ships no type information


def slot_name(database: str) -> str:
    """The slot of ``database`` (slot names are cluster-wide, so they carry the database)."""
    return (SLOT_PREFIX + re.sub(r"[^a-z0-9_]", "_", database.lower()))[:63]


def ensure_publication(conn: Connection) -> None:
    """Create the publication if missing (autocommit connection to the domain database)."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,))
        if cur.fetchone() is None:
            # A concurrent relay may have created it in between.
            with contextlib.suppress(psycopg2.errors.DuplicateObject):
                cur.execute(
                    f"CREATE PUBLICATION {PUBLICATION} FOR TABLE event_store "
                    "WITH (publish = 'insert')"
                )


def slot_state(conn: Connection, slot: str) -> tuple[bool, int]:
    """``(exists, confirmed_flush_lsn)`` of ``slot``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        )
        row = cur.fetchone()
    if row is None:
        return False, 0
    return True, parse_lsn(row[0]) if row[0] else 0


def snapshot_done(conn: Connection, slot: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = %s",
            (PUBLICATION,),
        )
        row = cur.fetchone()
    return row is not None and row[0] == _MARK + slot


def mark_snapshot(conn: Connection, slot: str | None) -> None:
    """Record (or, with ``None``, clear) that ``slot``'s initial snapshot is published."""
    with conn.cursor() as cur:
        if slot is None:
            cur.execute(f"COMMENT ON PUBLICATION {PUBLICATION} IS NULL")
        else:
            cur.execute(f"COMMENT ON PUBLICATION {PUBLICATION} IS %s", (_MARK + slot,))


def drop_slot(conn: Connection, slot: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )


def create_slot(replication_cursor: Any, slot: str) -> tuple[int, str]:
    """Create ``slot`` on a replication connection; ``(consistent_lsn, exported_snapshot)``.

    The snapshot stays valid until the next command on that connection.
    """
    replication_cursor.execute(
        f"CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput (SNAPSHOT 'export')"
    )
    _name, consistent_point, snapshot, _plugin = replication_cursor.fetchone()
    return parse_lsn(consistent_point), snapshot


def snapshot_rows(dsn: str, snapshot: str) -> Iterator[list[tuple[bytes | None, ...]]]:
    """Batches of every event-store row visible in ``snapshot``, in position order.

    Values are the same text forms pgoutput sends (columns in ``EVENT_COLUMNS`` order).
    """
    casts = ", ".join(f"{c}::text" for c in EVENT_COLUMNS)
    conn = psycopg2.connect(dsn, options="-c TimeZone=UTC")
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        with conn.cursor(name="eco2_cdc_snapshot") as cur:
            cur.itersize = SNAPSHOT_BATCH
            cur.execute(f"SELECT {casts} FROM event_store ORDER BY position")
            while rows := cur.fetchmany(SNAPSHOT_BATCH):
                yield [tuple(None if v is None else v.encode() for v in row) for row in rows]
        conn.rollback()
    finally:
        conn.close()


_LAG_SQL = """
SELECT slot_name, database, active, confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
FROM pg_replication_slots WHERE slot_name LIKE 'eco2\\_cdc\\_%' ORDER BY slot_name
"""


def slot_lag(server_dsn: str) -> list[dict[str, Any]]:
    """Every relay slot on the server: database, active, confirmed LSN, bytes behind it
    (``lag_bytes``) and the server's WAL end (``current_lsn``)."""
    conn = psycopg2.connect(server_dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(_LAG_SQL)
            return [
                {
                    "slot": slot,
                    "database": database,
                    "active": active,
                    "confirmed_flush_lsn": confirmed,
                    "lag_bytes": int(lag or 0),
                    "current_lsn": int(current),
                }
                for slot, database, active, confirmed, lag, current in cur.fetchall()
            ]
    finally:
        conn.close()
