"""``eco2 trace``'s reading of the backend's spans: the tree, the offsets, the references."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.traces import TraceNotFound, as_json, resolve_trace_id, waterfall


def _span(
    span_id: str, parent: str | None, name: str, start_ms: int, end_ms: int
) -> dict[str, Any]:
    def at(ms: int) -> str:
        return f"2026-12-06T06:00:00.{ms:03d}000+00:00"

    return {
        "name": name,
        "context": {"trace_id": "ab" * 16, "span_id": span_id},
        "parent_id": parent,
        "start_time": at(start_ms),
        "end_time": at(end_ms),
        "status_code": "OK",
        "attributes": {"eco2": {"stage": name}, "other": 1},
    }


def test_spans_come_out_as_a_tree_children_by_start_with_offsets_from_the_first() -> None:
    spans = [
        _span("c2", "r", "answer", 300, 500),
        _span("r", None, "gateway", 100, 900),
        _span("c1", "r", "vision", 150, 290),
        _span("g", "c1", "model", 160, 280),
        _span("o", "gone", "orphan", 950, 990),  # its parent never arrived: shown as a root
    ]

    tree = waterfall(spans)

    assert [(depth, row.name) for depth, row in tree] == [
        (0, "gateway"),
        (1, "vision"),
        (2, "model"),
        (1, "answer"),
        (0, "orphan"),
    ]
    body = as_json("ab" * 16, tree)
    assert [s["offset_ms"] for s in body["spans"]] == [0.0, 50.0, 60.0, 200.0, 850.0]
    assert body["spans"][1]["duration_ms"] == 140.0
    assert body["spans"][1]["attributes"] == {"eco2.stage": "vision"}  # nested names flattened


def test_a_trace_id_is_taken_as_it_is_and_anything_else_but_a_job_id_is_refused() -> None:
    assert resolve_trace_id("AB" * 16, None) == "ab" * 16
    with pytest.raises(TraceNotFound, match="neither a trace id"):
        resolve_trace_id("not-a-job", None)
    with pytest.raises(TraceNotFound, match="is the stack up"):
        resolve_trace_id("7b607f30-be48-45db-ab89-43e61b18a1c2", None)
