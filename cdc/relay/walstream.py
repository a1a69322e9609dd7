"""The streaming replication protocol of one logical slot: frames in, standby status updates out.

psycopg2 opens the replication connection and issues ``START_REPLICATION``; the CopyBoth frames
are then read and written through libpq directly (the very libpq psycopg2 is linked with, through
``ctypes``), not with psycopg2's ``read_message``/``send_feedback``. The reason is correctness:
psycopg2 silently moves the flush position to the server's WAL end on a keepalive whenever the
last data message it saw had a start LSN at or below the last explicit flush — and pgoutput sends
Relation messages with start LSN 0, so a keepalive arriving after one would confirm transactions
that Kafka has not acknowledged yet; a crash then would lose them. Here the flush position is only
ever what :class:`~cdc.relay.acks.AckTracker` computed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import struct
import time
from typing import Any

import psycopg2
import psycopg2.extras

from cdc.relay.pgoutput import PG_EPOCH_OFFSET_US

_XLOGDATA_HEADER = 25  # 'w', dataStart, walEnd, sendTime
_KEEPALIVE = struct.Struct("!Qq?")  # walEnd, sendTime, reply requested
_STATUS = struct.Struct("!cQQQq?")


class StreamError(ConnectionError):
    """The replication connection failed or the server ended the stream (retriable)."""


def _load_libpq() -> ctypes.CDLL:
    import psycopg2._psycopg  # noqa: F401  (maps psycopg2's own libpq into this process)

    path: str | None = None
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                if "/libpq" in line:
                    path = line.split()[-1]
                    break
    except OSError:
        path = None
    path = path or ctypes.util.find_library("pq")
    if path is None:
        raise ImportError("cannot find the libpq that psycopg2 uses")
    lib = ctypes.CDLL(path)
    voidp, intp = ctypes.c_void_p, ctypes.c_int
    lib.PQgetCopyData.argtypes = [voidp, ctypes.POINTER(voidp), intp]
    lib.PQgetCopyData.restype = intp
    lib.PQfreemem.argtypes = [voidp]
    lib.PQfreemem.restype = None
    lib.PQconsumeInput.argtypes = [voidp]
    lib.PQconsumeInput.restype = intp
    lib.PQputCopyData.argtypes = [voidp, ctypes.c_char_p, intp]
    lib.PQputCopyData.restype = intp
    lib.PQflush.argtypes = [voidp]
    lib.PQflush.restype = intp
    lib.PQerrorMessage.argtypes = [voidp]
    lib.PQerrorMessage.restype = ctypes.c_char_p
    return lib


_libpq: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libpq
    if _libpq is None:
        _libpq = _load_libpq()
    return _libpq


def pg_now_us() -> int:
    """Now, in microseconds since PostgreSQL's epoch (for status updates)."""
    return time.time_ns() // 1000 - PG_EPOCH_OFFSET_US


class WalStream:
    """A started logical replication stream. Not thread-safe.

    ``frames()`` returns what is buffered without blocking: pgoutput messages (``bytes``) and
    keepalives (``(wal_end, reply_requested)`` tuples, consecutive ones merged into one), in
    server order.
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._pg = ctypes.c_void_p(conn.pgconn_ptr)
        self._buf = ctypes.c_void_p()
        self._lib = _lib()

    @classmethod
    def start(cls, conn: Any, cursor: Any, slot: str, publication: str) -> WalStream:
        cursor.start_replication(
            slot_name=slot,
            decode=False,
            options={"proto_version": "1", "publication_names": publication},
        )
        return cls(conn)

    def fileno(self) -> int:
        fd: int = self._conn.fileno()
        return fd

    def _error(self, what: str) -> StreamError:
        message = (self._lib.PQerrorMessage(self._pg) or b"").decode(errors="replace").strip()
        return StreamError(f"{what}: {message or 'connection lost'}")

    def frames(self, limit: int) -> list[bytes | tuple[int, bool]]:
        lib, pg, buf = self._lib, self._pg, self._buf
        out: list[bytes | tuple[int, bool]] = []
        consumed = False
        while len(out) < limit:
            n = lib.PQgetCopyData(pg, ctypes.byref(buf), 1)
            if n > 0:
                frame = ctypes.string_at(buf, n)
                lib.PQfreemem(buf)
                if frame[0] == 0x77:  # 'w' XLogData
                    out.append(frame[_XLOGDATA_HEADER:])
                elif frame[0] == 0x6B:  # 'k' primary keepalive
                    wal_end, _sent, reply = _KEEPALIVE.unpack_from(frame, 1)
                    if out and type(last := out[-1]) is tuple:
                        # Keepalives in a row say no more than their last (and whether any
                        # asked for a reply): a walsender pings after each transaction of
                        # any other database, so an idle database's stream gets thousands.
                        out[-1] = (wal_end, reply or last[1])
                    else:
                        out.append((wal_end, reply))
                continue
            if n == 0:
                # Read more from the socket only when the buffer is empty, so a fast server
                # cannot grow libpq's buffer without bound.
                if consumed:
                    break
                if not lib.PQconsumeInput(pg):
                    raise self._error("replication read failed")
                consumed = True
                continue
            if n == -1:
                raise StreamError("the server ended the replication stream")
            raise self._error("replication read failed")
        return out

    def send_status(
        self, flush_lsn: int, *, write_lsn: int | None = None, reply: bool = False
    ) -> None:
        """Standby status update: everything up to ``flush_lsn`` may be forgotten by the slot
        (0: nothing new — the slot keeps its position); ``write_lsn`` (default: the same) is
        how far we have received. A shutting-down server waits until the flush position — or,
        when it is 0, the write position — reaches what it sent."""
        write = flush_lsn if write_lsn is None else write_lsn
        message = _STATUS.pack(b"r", write, flush_lsn, flush_lsn, pg_now_us(), reply)
        if self._lib.PQputCopyData(self._pg, message, len(message)) != 1:
            raise self._error("sending replication feedback failed")
        if self._lib.PQflush(self._pg) < 0:
            raise self._error("sending replication feedback failed")

    def close(self) -> None:
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()


def replication_connection(dsn: str) -> Any:
    """A logical replication connection whose text output uses UTC timestamps."""
    return psycopg2.connect(
        dsn,
        connection_factory=psycopg2.extras.LogicalReplicationConnection,
        options="-c TimeZone=UTC",
        connect_timeout=10,
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
