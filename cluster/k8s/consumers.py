"""What runs without listening: one Deployment per consumer group of the domain host, and one
CDC relay Deployment per domain database. Neither has a Service, an HPA or a probe (nothing
listens; a fatal error ends the process and the kubelet restarts it)."""

from __future__ import annotations

from typing import Any

from cluster.k8s.objects import deployment, eco2_name, python_container
from cluster.topology import EVENT_REGISTRIES
from eco2.settings import DOMAIN_DATABASES, KafkaSettings, Settings
from runtime.domain_host import OTHER_CONSUMERS, SERVICES, consumer_specs

CONSUMER_REPLICAS = 2
"""Members per consumer group: two so a node loss only pauses a group for a rebalance; never
more than the topics' partitions (:data:`PARTITIONS`), past which members sit idle."""
PARTITIONS = KafkaSettings().topic_partitions


def consumer_groups() -> dict[str, list[str]]:
    """Every ``--consumers`` name of the domain host that runs at least one consumer → the
    consumer (inbox) names it runs, read from the code, not listed here."""
    settings = Settings.model_construct()  # defaults only: the specs need no environment
    groups: dict[str, list[str]] = {}
    for group in [*SERVICES, *OTHER_CONSUMERS]:
        names = [spec.name for spec in consumer_specs([group], settings)]
        if names:
            groups[group] = names
    return groups


def consumer_documents() -> list[dict[str, Any]]:
    """One Deployment per consumer group, no Service (nothing listens), no HPA (partitions bound
    a group's useful members; CPU says nothing about its lag). A member whose consumer fails
    ends the process (``runtime.domain_host.run``), so the kubelet restarts it: no probe.

    ``strategy: Recreate``: the old Pods stop (finishing their batch) before new ones start. A
    rollout that changes a Deployment's consumers changes its feed's Kafka group
    (:func:`cdc.consumers.runtime.group_of`), and two groups consume the same partitions side by
    side, each in its own order; the pause of a restart costs a consumer nothing but lag."""
    docs = []
    for group, names in consumer_groups().items():
        container = python_container(["-m", "runtime.domain_host", "--consumers", group])
        replicas = min(CONSUMER_REPLICAS, PARTITIONS)
        consumers = deployment(eco2_name(f"{group}-consumers"), container, replicas)
        consumers["metadata"]["annotations"] = {"eco2/consumers": ",".join(names)}
        consumers["spec"]["strategy"] = {"type": "Recreate"}
        docs.append(consumers)
    return docs


def _relay_args(domain: str) -> list[str]:
    events = [f"--events={aggregate}={ref}" for aggregate, ref in EVENT_REGISTRIES.items()]
    return ["-m", "cdc.relay", *events, domain]


def relay_documents() -> list[dict[str, Any]]:
    """One relay Deployment per domain database, the only reader of its replication slot.

    Single writer: PostgreSQL lets one walsender at a time stream a logical slot (a second
    ``START_REPLICATION`` fails with "replication slot ... is active"), and the relay confirms
    the slot only after Kafka acknowledged. ``replicas: 1`` with ``strategy: Recreate`` stops the
    old Pod (which flushes and confirms on SIGTERM) before a new one starts, so a rollout never
    has two relays. On a node loss the Pod is replaced after the node's eviction timeout; if
    the lost Pod still holds the slot, the new one is refused and retries with backoff until
    PostgreSQL drops the old connection (``wal_sender_timeout``), then resumes from the slot's
    confirmed LSN: events after it are sent again (at least once; consumers dedupe by event id),
    none is lost. Nothing listens (metrics leave by OTLP), so no Service and no probe: the
    relay retries its connections itself and a fatal error ends the process.
    """
    docs = []
    for domain in DOMAIN_DATABASES:
        container = python_container(_relay_args(domain))
        relay = deployment(eco2_name(f"cdc-relay-{domain}"), container, 1)
        relay["spec"]["strategy"] = {"type": "Recreate"}
        docs.append(relay)
    return docs
