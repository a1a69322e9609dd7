"""pgoutput v1 decoding of the messages the relay acts on (byte layouts from the protocol docs)."""

from __future__ import annotations

import struct

import pytest

from cdc.relay.pgoutput import (
    PG_EPOCH_OFFSET_US,
    Begin,
    Commit,
    DecodeError,
    Ignored,
    Insert,
    Relation,
    decode,
    format_lsn,
    insert_values,
    parse_lsn,
)


def relation(relid: int, name: str, columns: list[str]) -> bytes:
    body = b"R" + struct.pack("!I", relid) + b"public\0" + name.encode() + b"\0" + b"d"
    body += struct.pack("!h", len(columns))
    for column in columns:
        body += b"\0" + column.encode() + b"\0" + struct.pack("!Ii", 25, -1)
    return body


def insert(relid: int, values: list[bytes | None]) -> bytes:
    body = b"I" + struct.pack("!I", relid) + b"N" + struct.pack("!h", len(values))
    for value in values:
        body += b"n" if value is None else b"t" + struct.pack("!I", len(value)) + value
    return body


def test_begin_and_commit() -> None:
    begin = decode(b"B" + struct.pack("!QqI", 0x3C3F4D0, 1_000_000, 790))
    assert begin == Begin(0x3C3F4D0, 1_000_000 + PG_EPOCH_OFFSET_US, 790)
    commit = decode(b"C" + struct.pack("!BQQq", 0, 0x3C3F4D0, 0x3C3F500, 5))
    assert commit == Commit(0x3C3F4D0, 0x3C3F500, 5 + PG_EPOCH_OFFSET_US)


def test_relation_and_insert_with_quotes_nulls_and_utf8() -> None:
    rel = decode(relation(16817, "event_store", ["position", "payload", "metadata"]))
    assert rel == Relation(16817, "public", "event_store", ("position", "payload", "metadata"))
    payload = '{"x": "it\'s \\"분리수거\\"\\n"}'.encode()
    assert decode(insert(16817, [b"12", payload, None])) == Insert(16817, (b"12", payload, None))


def test_insert_values_is_the_insert_without_the_message_object() -> None:
    data = insert(7, [b"1", None, b"{}"])
    assert insert_values(data) == (7, [b"1", None, b"{}"])
    with pytest.raises(DecodeError):
        insert_values(data[:-1])
    with pytest.raises(DecodeError):
        insert_values(b"I\0\0")


@pytest.mark.parametrize("kind", [b"O", b"Y", b"T", b"U", b"D", b"M"])
def test_other_messages_are_ignored(kind: bytes) -> None:
    assert decode(kind + b"\0\0\0\0") == Ignored(kind.decode())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"I\0\0\0\1N\0\1t\0\0\0\x09abc",  # length beyond the end
        b"I\0\0\0\1K\0\0",  # not a new tuple
        b"I\0\0\0\1N\0\1u",  # unchanged TOAST in an insert
        b"C\0\0",
    ],
)
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


def test_lsn_text_round_trip() -> None:
    assert format_lsn(0x1_0000_00A0) == "1/A0"
    assert parse_lsn("0/3C3F2F8") == 0x3C3F2F8
