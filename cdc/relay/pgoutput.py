"""Decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

Why pgoutput rather than ``test_decoding`` or ``wal2json``: it is built into every PostgreSQL since
10 (wal2json is an extension the embedded server does not ship), it filters on the server by
publication (only ``event_store`` inserts cross the wire), and its framing is length-prefixed, so
a payload containing quotes, newlines or ``'`` needs no unescaping (test_decoding's text format
does, and a bug there would corrupt events silently). Values arrive in their text form; the
relay needs only the JSON text of ``payload`` and a few scalars, so no binary type decoding.

Only the messages the relay acts on are decoded: Begin, Commit, Relation and Insert. Every other
message type (Origin, Type, Truncate, Update, Delete, logical decoding Message) is returned as
:class:`Ignored`, so a change of publication settings cannot break the stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_BEGIN = struct.Struct("!QqI")  # final LSN, commit timestamp (µs since 2000-01-01), xid
_COMMIT = struct.Struct("!BQQq")  # flags, commit LSN, end LSN, commit timestamp
_U32 = struct.Struct("!I")
_I16 = struct.Struct("!h")
_RELATION_HEAD = struct.Struct("!I")
_COLUMN_TAIL = struct.Struct("!Ii")  # type oid, type modifier

PG_EPOCH_OFFSET_US = 946_684_800_000_000
"""Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC)."""


class DecodeError(ValueError):
    """A message does not follow the pgoutput protocol (a bug or an unsupported version)."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time_us: int
    """Commit time in microseconds since the Unix epoch."""
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    """The end of the commit record: the LSN to confirm once the transaction is published."""
    commit_time_us: int


@dataclass(frozen=True, slots=True)
class Relation:
    relation_id: int
    namespace: str
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    relation_id: int
    values: tuple[bytes | None, ...]
    """Column values in the relation's column order, as PostgreSQL's text output (None = NULL)."""


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str


Message = Begin | Commit | Relation | Insert | Ignored


def _cstring(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode(), end + 1


def decode_begin(data: bytes) -> Begin:
    final_lsn, ts, xid = _BEGIN.unpack_from(data, 1)
    return Begin(final_lsn, ts + PG_EPOCH_OFFSET_US, xid)


def decode_commit(data: bytes) -> Commit:
    _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(data, 1)
    return Commit(commit_lsn, end_lsn, ts + PG_EPOCH_OFFSET_US)


def decode_relation(data: bytes) -> Relation:
    (relation_id,) = _RELATION_HEAD.unpack_from(data, 1)
    namespace, offset = _cstring(data, 5)
    name, offset = _cstring(data, offset)
    offset += 1  # replica identity setting
    (count,) = _I16.unpack_from(data, offset)
    offset += 2
    columns: list[str] = []
    for _ in range(count):
        offset += 1  # flags (part of the key)
        column, offset = _cstring(data, offset)
        _COLUMN_TAIL.unpack_from(data, offset)  # read, not skipped: a cut message must not pass
        offset += _COLUMN_TAIL.size
        columns.append(column)
    return Relation(relation_id, namespace or "pg_catalog", name, tuple(columns))


def decode_tuple(data: bytes, offset: int) -> tuple[list[bytes | None], int]:
    """TupleData at ``offset``: the column values and the offset after them."""
    (count,) = _I16.unpack_from(data, offset)
    offset += 2
    end, unpack = len(data), _U32.unpack_from
    values: list[bytes | None] = []
    append = values.append
    for _ in range(count):
        kind = data[offset]
        if kind == 0x74 or kind == 0x62:  # 't' text, 'b' binary: Int32 length + bytes
            start = offset + 5
            offset = start + unpack(data, offset + 1)[0]
            if offset > end:
                raise DecodeError("column value runs past the end of the message")
            append(data[start:offset])
        elif kind == 0x6E:  # 'n' NULL
            append(None)
            offset += 1
        elif kind == 0x75:  # 'u' unchanged TOASTed value: only in UPDATEs, never in inserts
            raise DecodeError("unchanged TOAST value in an insert")
        else:
            raise DecodeError(f"unknown tuple column kind {kind:#x}")
    return values, offset


def insert_values(data: bytes) -> tuple[int, list[bytes | None]]:
    """An Insert message's relation id and new tuple, without building an :class:`Insert`
    (the relay's per-row path)."""
    try:
        (relation_id,) = _U32.unpack_from(data, 1)
        if data[5] != 0x4E:  # 'N' new tuple
            raise DecodeError(f"insert without a new tuple (marker {data[5]:#x})")
        return relation_id, decode_tuple(data, 6)[0]
    except (struct.error, IndexError) as exc:
        raise DecodeError(f"truncated or malformed 'I' message: {exc}") from exc


def decode_insert(data: bytes) -> Insert:
    relation_id, values = insert_values(data)
    return Insert(relation_id, tuple(values))


def decode(data: bytes) -> Message:
    """Decode one pgoutput message (the payload of an XLogData frame)."""
    if not data:
        raise DecodeError("empty message")
    kind = data[0]
    try:
        if kind == 0x49:  # 'I'
            return decode_insert(data)
        if kind == 0x42:  # 'B'
            return decode_begin(data)
        if kind == 0x43:  # 'C'
            return decode_commit(data)
        if kind == 0x52:  # 'R'
            return decode_relation(data)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"truncated or malformed {chr(kind)!r} message: {exc}") from exc
    return Ignored(chr(kind))


def format_lsn(lsn: int) -> str:
    """``0/16B3748`` form of an LSN, as PostgreSQL prints it."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)
