"""Dead-letter topics: list their messages, replay them onto the topic they came from.

``replay`` republishes each dead letter (its ``dlq*`` headers removed) to ``dlqOriginalTopic`` and
then commits its position in group ``eco2-cdc-dlq-replay``, so a second replay does not repeat it
(at-least-once: a crash between the two repeats it, which consumers' inboxes absorb). A replayed
event lands after later events of its aggregate — the order a dead letter already broke.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from cdc.outbox import DLQ_HEADERS, DLQ_SUFFIX, H_DLQ_TOPIC, header_map, normalize_headers
from eco2.kafka import consumer_config, producer_config
from eco2.settings import Settings

REPLAY_GROUP = "eco2-cdc-dlq-replay"
IDLE_S = 2.0
"""A topic is read to its end when nothing arrives for this long (the embedded broker's high
watermarks are not reliable enough to stop at)."""


@dataclass(frozen=True)
class DlqEntry:
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    event_type: str
    reason: str
    error: str
    source: str
    attempts: int
    original_topic: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dlq_topic(topic: str) -> str:
    return topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX


def _entry(message: Message) -> DlqEntry:
    h = header_map(message.headers())
    return DlqEntry(
        topic=cast(str, message.topic()),
        partition=cast(int, message.partition()),
        offset=cast(int, message.offset()),
        key=(message.key() or b"").decode(errors="replace"),
        event_id=h.get("id", ""),
        event_type=h.get("eventType", ""),
        reason=h.get("dlqReason", ""),
        error=h.get("dlqError", ""),
        source=h.get("dlqSource", ""),
        attempts=int(h.get("dlqAttempts") or 0),
        original_topic=h.get(H_DLQ_TOPIC, ""),
    )


def _read(consumer: Consumer, topic: str, group_offsets: bool, limit: int | None) -> list[Message]:
    metadata = consumer.list_topics(topic, timeout=10)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return []
    partitions = [TopicPartition(topic, p) for p in sorted(info.partitions)]
    if group_offsets:
        committed = consumer.committed(partitions, timeout=10)
        partitions = [
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in committed
        ]
    else:
        partitions = [TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
    consumer.assign(partitions)
    out: list[Message] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < IDLE_S and (limit is None or len(out) < limit):
        batch = [m for m in consumer.consume(500, 0.2) if m.error() is None]
        if batch:
            out.extend(batch)
            idle_since = time.monotonic()
    return out[:limit] if limit is not None else out


def list_dlq(settings: Settings, topic: str, limit: int | None = 100) -> list[DlqEntry]:
    """The dead letters of ``topic`` (a topic or its ``.dlq``), oldest first per partition."""
    group = f"eco2-cdc-dlq-list-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(settings, group))
    try:
        return [_entry(m) for m in _read(consumer, dlq_topic(topic), False, limit)]
    finally:
        consumer.close()


def replay_dlq(settings: Settings, topic: str, *, event_ids: set[str] | None = None) -> int:
    """Republish the dead letters of ``topic`` not replayed yet; return how many.

    With ``event_ids``, only those are republished and the replay position is left unchanged.
    """
    consumer = Consumer(consumer_config(settings, REPLAY_GROUP))
    producer = Producer(producer_config(settings))
    try:
        messages = _read(consumer, dlq_topic(topic), True, None)
        replayed = 0
        for message in messages:
            h = header_map(message.headers())
            if event_ids is not None and h.get("id") not in event_ids:
                continue
            original = h.get(H_DLQ_TOPIC) or dlq_topic(topic).removesuffix(DLQ_SUFFIX)
            headers = [
                (k, v) for k, v in normalize_headers(message.headers()) if k not in DLQ_HEADERS
            ]
            producer.produce(original, message.value(), message.key(), headers=cast(Any, headers))
            replayed += 1
        if producer.flush(30):
            raise RuntimeError("replayed messages not acknowledged by Kafka; nothing committed")
        if messages and event_ids is None:
            last: dict[int, int] = {}
            for m in messages:
                last[cast(int, m.partition())] = cast(int, m.offset())
            consumer.commit(
                offsets=[TopicPartition(dlq_topic(topic), p, o + 1) for p, o in last.items()],
                asynchronous=False,
            )
        return replayed
    finally:
        consumer.close()
