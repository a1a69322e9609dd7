"""confluent-kafka client configuration from the settings.

Producers are idempotent (``enable.idempotence``: no duplicates or reordering from retries within a
session, ``acks=all``). Consumers commit offsets manually, after their database transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

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
        "fetch.wait.max.ms": settings.kafka.fetch_wait_max_ms,
        **extra,
    }


def ensure_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Create the missing ``topics`` (``settings.kafka.topic_partitions`` each); return the
    ones that could not be created.

    Producers and consumers call it before first use, so a consumer that starts before the
    first event of its topic was ever published still subscribes to a real topic (a subscription
    to a missing topic waits for the next metadata refresh, minutes by default).
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap(settings)})
    futures = admin.create_topics(
        [NewTopic(t, settings.kafka.topic_partitions, 1) for t in wanted], operation_timeout=10
    )
    failed: list[str] = []
    for topic, future in futures.items():
        try:
            future.result(15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                failed.append(topic)
    return failed
