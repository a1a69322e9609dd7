"""The Kafka message of an event-store row, compatible with Debezium's outbox event router.

* topic ``outbox.event.<aggregate_type>`` (the router's default ``route.topic.replacement``);
* key = ``aggregate_id`` (so one aggregate's events share a partition and keep their order);
* value = the ``payload`` JSON (the router's default: ``table.field.event.payload``);
* headers ``id``, ``eventType``, ``aggregateType``, ``aggregateVersion``, ``schemaVersion``,
  ``occurredAt`` and ``metadata``, as the connectors of ``k8s/debezium-outbox.yaml`` emit them
  too, so a consumer can rebuild the full :class:`~eco2.events.EventEnvelope` without reading
  the event store; plus ``traceparent`` (lifted out of ``metadata``), which Debezium does not
  emit: readers take the trace context from ``metadata``.

A row that cannot be a valid event (unknown event type, payload failing validation) becomes a
message on ``<topic>.dlq`` carrying the reason in ``dlq*`` headers; the relay keeps going.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from eco2.events import EventEnvelope, EventMetadata, EventRegistry

TOPIC_PREFIX = "outbox.event."
DLQ_SUFFIX = ".dlq"
DLQ_ERROR_MAX_CHARS = 2000

Headers = list[tuple[str, bytes]]

H_ID = "id"
H_EVENT_TYPE = "eventType"
H_TRACEPARENT = "traceparent"
H_AGGREGATE_TYPE = "aggregateType"
H_AGGREGATE_VERSION = "aggregateVersion"
H_SCHEMA_VERSION = "schemaVersion"
H_OCCURRED_AT = "occurredAt"
H_METADATA = "metadata"
H_DLQ_REASON = "dlqReason"
H_DLQ_ERROR = "dlqError"
H_DLQ_SOURCE = "dlqSource"
H_DLQ_TOPIC = "dlqOriginalTopic"
H_DLQ_ATTEMPTS = "dlqAttempts"
H_DLQ_FAILED_AT = "dlqFailedAt"
DLQ_HEADERS = frozenset(
    {H_DLQ_REASON, H_DLQ_ERROR, H_DLQ_SOURCE, H_DLQ_TOPIC, H_DLQ_ATTEMPTS, H_DLQ_FAILED_AT}
)

EVENT_COLUMNS = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "schema_version",
    "payload",
    "metadata",
    "occurred_at",
)


def topic_for(aggregate_type: str) -> str:
    return f"{TOPIC_PREFIX}{aggregate_type}"


def dlq_topic_for(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(slots=True)
class OutboxRecord:
    """One Kafka message to send (not frozen only because a frozen dataclass costs the relay a
    third of a microsecond per event to build; nothing changes one after it is made)."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers
    event_id: str


class RowLayout:
    """Positions of the event columns in a relation's column list (from a Relation message)."""

    def __init__(self, columns: Sequence[str]) -> None:
        missing = [c for c in EVENT_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"event_store is missing columns {missing}")
        self.index = tuple(columns.index(c) for c in EVENT_COLUMNS)


def record_from_values(
    layout: RowLayout,
    values: Sequence[bytes | None],
    registries: Mapping[str, EventRegistry],
) -> OutboxRecord:
    """The Kafka message for one inserted row (on the DLQ topic if the row is not a valid event).

    ``values`` are the columns' text forms, as the WAL and a ``::text`` select give them; the
    headers take them as they are (this runs once per event in the relay: no round trips
    through ``str``)."""
    i_id, i_type, i_agg, i_ver, i_evt, i_schema, i_payload, i_meta, i_at = layout.index
    event_id, aggregate_type = values[i_id] or b"", values[i_type] or b""
    event_type, schema_version = values[i_evt] or b"", values[i_schema] or b"1"
    payload = values[i_payload] or b"null"
    metadata = values[i_meta] or b"{}"
    headers: Headers = [
        (H_ID, event_id),
        (H_EVENT_TYPE, event_type),
        (H_AGGREGATE_TYPE, aggregate_type),
        (H_AGGREGATE_VERSION, values[i_ver] or b""),
        (H_SCHEMA_VERSION, schema_version),
        (H_OCCURRED_AT, values[i_at] or b""),
        (H_METADATA, metadata),
    ]
    if b"traceparent" in metadata:
        traceparent = _traceparent(metadata)
        if traceparent:
            headers.append((H_TRACEPARENT, traceparent.encode()))
    aggregate = aggregate_type.decode()
    record = OutboxRecord(
        topic_for(aggregate), values[i_agg] or b"", payload, headers, event_id.decode()
    )
    registry = registries.get(aggregate) if registries else None
    if registry is None:
        return record
    problem = validation_problem(registry, event_type.decode(), int(schema_version), payload)
    if problem is None:
        return record
    reason, error = problem
    return dead_letter(record, reason=reason, error=error, source="relay")


def _traceparent(metadata: bytes) -> str | None:
    try:
        value = orjson.loads(metadata).get("traceparent")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def validation_problem(
    registry: EventRegistry, event_type: str, schema_version: int, payload: bytes
) -> tuple[str, str] | None:
    """``(reason, error)`` when the payload is not a valid ``event_type``, else None."""
    if not registry.knows(event_type):
        return "unknown_event_type", f"event type {event_type!r} is not registered"
    try:
        decoded = json.loads(payload)
        if not isinstance(decoded, dict):  # dict() of [key, value] pairs would validate
            raise TypeError(f"the payload is a JSON {type(decoded).__name__}, not an object")
        registry.decode_payload(event_type, schema_version, decoded)
    except ValidationError as exc:
        return "invalid_payload", str(exc)
    except KeyError as exc:  # no upcaster from this schema version
        return "invalid_payload", f"no upcaster for {event_type} v{exc}"
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: nested too deep
        return "invalid_payload", f"{type(exc).__name__}: {exc}"
    return None


def dead_letter(
    record: OutboxRecord, *, reason: str, error: str, source: str, attempts: int = 1
) -> OutboxRecord:
    """``record`` bound for ``<topic>.dlq`` with the failure described in its headers."""
    return OutboxRecord(
        dlq_topic_for(record.topic),
        record.key,
        record.value,
        dlq_headers(record.headers, record.topic, reason, error, source, attempts),
        record.event_id,
    )


def dlq_headers(
    headers: Headers, topic: str, reason: str, error: str, source: str, attempts: int
) -> Headers:
    """``headers`` without earlier ``dlq*`` entries, plus this failure's."""
    kept = [(k, v) for k, v in headers if k not in DLQ_HEADERS]
    return [
        *kept,
        (H_DLQ_REASON, reason.encode()),
        (H_DLQ_ERROR, error[:DLQ_ERROR_MAX_CHARS].encode()),
        (H_DLQ_SOURCE, source.encode()),
        (H_DLQ_TOPIC, topic.encode()),
        (H_DLQ_ATTEMPTS, str(attempts).encode()),
        (H_DLQ_FAILED_AT, f"{time.time():.3f}".encode()),
    ]


def normalize_headers(raw: Any) -> Headers:
    """A Kafka message's headers (list, dict or None; str, bytes or None values) as ``Headers``."""
    items = raw.items() if isinstance(raw, dict) else raw or ()
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in items]


def header_map(headers: Any) -> dict[str, str]:
    """Headers as a dict of text (a later duplicate wins)."""
    return {k: v.decode(errors="replace") for k, v in normalize_headers(headers)}


def envelope_from_message(key: bytes | None, value: bytes | None, headers: Any) -> EventEnvelope:
    """Rebuild the event envelope of an outbox message. Raises ``ValueError`` if it is not one."""
    h = header_map(headers)
    try:
        metadata: dict[str, Any] = json.loads(h.get(H_METADATA) or "{}")
        if h.get(H_TRACEPARENT):
            # The relay's publish span, when it recorded one (else the producer's own): what
            # the consumer does next continues the trace under the publish.
            metadata["traceparent"] = h[H_TRACEPARENT]
        return EventEnvelope(
            event_id=uuid.UUID(h[H_ID]),
            event_type=h[H_EVENT_TYPE],
            schema_version=int(h.get(H_SCHEMA_VERSION) or 1),
            aggregate_type=h[H_AGGREGATE_TYPE],
            aggregate_id=(key or b"").decode(),
            aggregate_version=int(h[H_AGGREGATE_VERSION]),
            occurred_at=datetime.fromisoformat(h[H_OCCURRED_AT]),
            payload=json.loads(value or b"null"),
            metadata=EventMetadata.model_validate(metadata),
        )
    except (KeyError, ValueError, TypeError, ValidationError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than json.loads goes, a poison message like any.
        raise ValueError(f"not an outbox event message: {exc}") from exc
