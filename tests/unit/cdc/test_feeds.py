"""Which consumers of a process share one Kafka consumer, and as which group."""

from __future__ import annotations

from typing import Any

from cdc.consumers.runtime import ConsumerSpec, feeds, group_of
from domains.character import service as character
from eco2.settings import Settings
from runtime.domain_host import OTHER_CONSUMERS, SERVICES, consumer_specs


async def _handler(_envelope: Any, _conn: Any) -> None:
    return None


def spec(name: str, **fields: Any) -> ConsumerSpec:
    return ConsumerSpec(
        name=name, topics=("outbox.event.t",), database="d", handler=_handler, **fields
    )


def test_a_lone_consumer_keeps_its_own_group() -> None:
    assert group_of([spec("my.users")]) == "my.users"


def test_a_shared_group_is_named_by_its_members_whatever_their_order() -> None:
    a, b, c = spec("a"), spec("b"), spec("c")
    assert group_of([a, b]) == group_of([b, a])
    assert group_of([a, b]).startswith("feed.")
    assert group_of([a, b]) != group_of([a, b, c])  # new members: a new group, read from the start


def test_feeds_join_consumers_of_one_store_kind_and_one_fetch_wait() -> None:
    pg1, pg2 = spec("pg1"), spec("pg2")
    kv1, kv2 = spec("kv1", target="valkey"), spec("kv2", target="valkey")
    lazy = spec("lazy", target="valkey", fetch_wait_ms=250)
    assert [[s.name for s in f] for f in feeds([pg1, kv1, lazy, pg2, kv2])] == [
        ["pg1", "pg2"],
        ["kv1", "kv2"],
        ["lazy"],
    ]


def test_the_local_domain_host_runs_its_consumers_on_three_feeds() -> None:
    """The saga's reactions (PostgreSQL) apart from the read models (Valkey), the lazier
    projectors apart from the rest."""
    specs = consumer_specs([*SERVICES, *OTHER_CONSUMERS], Settings.model_construct())
    by_feed = {group_of(feed): {s.name for s in feed} for feed in feeds(specs)}
    assert len(by_feed) == 3
    saga = next(names for names in by_feed.values() if "character.rewards" in names)
    assert {s.name for s in character.consumers(Settings.model_construct())} <= saga
    assert "scan.reward_compensation" in saga
    lazy = next(names for names in by_feed.values() if "readmodel.scan_history" in names)
    assert lazy == {"readmodel.scan_history", "readmodel.chat_index"}
