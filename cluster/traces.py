"""``eco2 trace``: one scan's (or chat message's) whole trace, read back from the trace backend.

The spans come from Phoenix's REST API (``GET /v1/projects/{project}/spans?trace_id=…``); a job
id is first turned into its trace id through the job's stored ``traceparent`` (the scan or the
chat database). :func:`waterfall` orders the spans as a tree — each under its parent, siblings by
start — with their offset from the trace's first span, their duration and their status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from eco2 import telemetry

PAGE = 1000
SHOWN_ATTRIBUTES = (
    "eco2.authz",
    "eco2.job_id",
    "eco2.stage",
    "eco2.attempt",
    "eco2.tool.status",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "http.response.status_code",
    "messaging.destination.name",
    "eco2.event_type",
    "eco2.inbox",
)


class TraceNotFound(LookupError):
    """Nothing to show; the message says why and what to try."""


@dataclass
class SpanRow:
    span_id: str
    parent_id: str | None
    name: str
    start: datetime
    end: datetime
    status: str
    message: str
    attributes: dict[str, Any]
    children: list[SpanRow] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000


def spans_of(base_url: str, project: str, trace_id: str) -> list[dict[str, Any]]:
    """Every span of ``trace_id`` the backend holds (all pages)."""
    spans: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while True:
            params: dict[str, Any] = {"trace_id": trace_id, "limit": PAGE, "sort": "start_time"}
            params["order"] = "asc"
            if cursor:
                params["cursor"] = cursor
            answer = client.get(f"/v1/projects/{project}/spans", params=params)
            if answer.status_code == 404:
                raise TraceNotFound(f"the trace backend has no project {project!r} yet")
            answer.raise_for_status()
            body = answer.json()
            spans += body.get("data", [])
            cursor = body.get("next_cursor")
            if not cursor:
                return spans


def _flat(attributes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Phoenix nests dotted attribute names (``{"eco2": {"job_id": …}}``): flatten them."""
    flat: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flat(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def waterfall(spans: list[dict[str, Any]]) -> list[tuple[int, SpanRow]]:
    """``(depth, span)`` in tree order; a span whose parent is missing is a root."""
    rows = {
        s["context"]["span_id"]: SpanRow(
            span_id=s["context"]["span_id"],
            parent_id=s.get("parent_id"),
            name=s["name"],
            start=datetime.fromisoformat(s["start_time"]),
            end=datetime.fromisoformat(s["end_time"]),
            status=s.get("status_code", "UNSET"),
            message=s.get("status_message") or "",
            attributes=_flat(s.get("attributes") or {}),
        )
        for s in spans
    }
    roots: list[SpanRow] = []
    for row in rows.values():
        parent = rows.get(row.parent_id) if row.parent_id else None
        (parent.children if parent else roots).append(row)
    ordered: list[tuple[int, SpanRow]] = []

    def walk(row: SpanRow, depth: int) -> None:
        ordered.append((depth, row))
        for child in sorted(row.children, key=lambda r: r.start):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda r: r.start):
        walk(root, 0)
    return ordered


def as_json(trace_id: str, tree: list[tuple[int, SpanRow]]) -> dict[str, Any]:
    first = min((row.start for _, row in tree), default=None)
    return {
        "trace_id": trace_id,
        "spans": [
            {
                "depth": depth,
                "name": row.name,
                "span_id": row.span_id,
                "parent_id": row.parent_id,
                "offset_ms": round((row.start - first).total_seconds() * 1000, 2) if first else 0,
                "duration_ms": round(row.duration_ms, 2),
                "status": row.status,
                "error": row.message or None,
                "attributes": {
                    k: row.attributes[k] for k in SHOWN_ATTRIBUTES if k in row.attributes
                },
            }
            for depth, row in tree
        ],
    }


def resolve_trace_id(ref: str, db_url: str | None) -> str:
    """``ref`` itself when it is a trace id (32 hex digits); a job id's trace id from the job
    row (scan, then chat) otherwise."""
    text = ref.strip().lower()
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text
    try:
        job_id = uuid.UUID(text)
    except ValueError as exc:
        raise TraceNotFound(f"{ref!r} is neither a trace id (32 hex digits) nor a job id") from exc
    if db_url is None:
        raise TraceNotFound("no database to look the job up in: is the stack up?")
    import psycopg2

    from eco2.migrations import database_dsn

    for database, table in (("eco2_scan", "scan_jobs"), ("eco2_chat", "chat_jobs")):
        with psycopg2.connect(database_dsn(db_url, database)) as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT traceparent FROM {table} WHERE job_id = %s", (str(job_id),))
            found = cursor.fetchone()
        if found is not None:
            trace_id = telemetry.trace_id_of(found[0])
            if trace_id is None:
                raise TraceNotFound(f"job {job_id} has no trace recorded")
            return trace_id
    raise TraceNotFound(f"no scan or chat job {job_id}")
