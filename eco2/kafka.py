"""confluent-kafka client configuration from the settings.

Producers are idempotent (``enable.idempotence``: no duplicates or reordering from retries within a
session, ``acks=all``). Consumers commit offsets manually, after their database transaction.
"""

from __future__ import annotations

from typing import Any

from eco2.errors import Unavailable
from eco2.settings import Settings


def bootstrap(settings: Settings) -> str:
    if settings.kafka.bootstrap is None:
        raise Unavailable(
            "no Kafka configured: run `eco2 up` (embedded broker) or set ECO2_KAFKA__BOOTSTRAP"
        )
    return settings.kafka.bootstrap


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "none",
        **extra,
    }


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka.session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka.heartbeat_interval_ms,
        **extra,
    }
