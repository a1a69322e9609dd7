"""HTTP in, Kafka out: a scan's events travel from the scan database's WAL to Kafka, in order."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from confluent_kafka import Consumer, KafkaException

from eco2.kafka import consumer_config
from eco2.settings import load_settings
from tests.conftest import StackUrls

pytestmark = pytest.mark.e2e

EXPECTED = ["ScanRequested", "ScanClassified", "ScanAnswered", "RewardGranted", "ScanCompleted"]


def _events_of(bootstrap: str, job_id: str, deadline_s: float) -> list[tuple[str, dict[str, str]]]:
    """(eventType, headers) of every message keyed ``job_id`` on outbox.event.scan, in order."""
    settings = load_settings(kafka={"bootstrap": bootstrap})
    consumer = Consumer(consumer_config(settings, f"e2e-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe(["outbox.event.scan"])
    found: list[tuple[str, dict[str, str]]] = []
    until = time.monotonic() + deadline_s
    try:
        while time.monotonic() < until and len(found) < len(EXPECTED):
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            if message.key() != job_id.encode():
                continue
            headers = {k: v.decode() for k, v in (message.headers() or [])}
            found.append((headers["eventType"], headers))
    finally:
        consumer.close()
    return found


async def test_a_scans_events_reach_kafka_in_order_with_their_trace(
    stack: StackUrls, scan_api: httpx.AsyncClient
) -> None:
    trace_id = uuid.uuid4().hex
    headers = {"X-User-ID": f"user-{uuid.uuid4().hex[:8]}"}
    submitted = await scan_api.post(
        "/api/v1/scan",
        json={"image_url": "https://cdn.eco2.local/scan/clear-pet-bottle-nolabel-empty.jpg"},
        headers={**headers, "traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    found = await asyncio.to_thread(_events_of, stack.kafka_bootstrap, job_id, 60.0)

    # At-least-once: a duplicate may appear, but the first occurrences keep the commit order.
    first_seen = list(dict.fromkeys(event_type for event_type, _ in found))
    assert first_seen == EXPECTED
    assert all(trace_id in h["traceparent"] for _, h in found)
    assert all(h["aggregateType"] == "scan" for _, h in found)
