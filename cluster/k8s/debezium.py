"""The Debezium alternative to the CDC relay: a Strimzi KafkaConnect with the PostgreSQL
connector and one KafkaConnector per domain database whose outbox event router produces what
``cdc/relay`` produces (topic, key, value, headers), and the Secret access Connect needs.

One difference, by construction: the router places *columns* only, and ``event_store`` has no
``traceparent`` column (the trace context lives in the ``metadata`` JSON column). So the relay's
``traceparent`` header, which it lifts out of ``metadata``, has no Debezium counterpart; the
trace context travels inside the ``metadata`` header, where ``cdc.outbox.envelope_from_message``
reads it.
"""

from __future__ import annotations

from typing import Any

from cdc.outbox import (
    H_AGGREGATE_TYPE,
    H_AGGREGATE_VERSION,
    H_EVENT_TYPE,
    H_METADATA,
    H_OCCURRED_AT,
    H_SCHEMA_VERSION,
    TOPIC_PREFIX,
)
from cdc.relay.slots import PUBLICATION
from cluster.k8s.objects import LABELS, eco2_name
from eco2.settings import DOMAIN_DATABASES, DbSettings

DEBEZIUM_HEADERS: dict[str, str] = {
    "event_type": H_EVENT_TYPE,
    "aggregate_type": H_AGGREGATE_TYPE,
    "aggregate_version": H_AGGREGATE_VERSION,
    "schema_version": H_SCHEMA_VERSION,
    "occurred_at": H_OCCURRED_AT,
    "metadata": H_METADATA,
}
"""``event_store`` column → the header the relay (``cdc.outbox.record_from_values``) gives it,
placed by the router's ``table.fields.additional.placement`` (``column:header:alias``). The
router adds ``id`` (``table.field.event.id``) itself; the relay's ``traceparent`` header has no
column to come from (see the module's docstring)."""
CONNECT_CLUSTER = "eco2-connect"
DEBEZIUM_VERSION = "3.1.2.Final"
DEBEZIUM_SECRET = "eco2-debezium-db"
NOTE = """\
# The Debezium alternative to the CDC relay (docs/kubernetes.md, "Debezium"): Strimzi Kafka
# Connect with the PostgreSQL connector (pgoutput) and the outbox event router, producing what
# `cdc/relay` produces: topic outbox.event.<aggregate_type>, key = aggregate_id, value = payload,
# headers id, eventType, aggregateType, aggregateVersion, schemaVersion, occurredAt, metadata.
# The one difference: no `traceparent` header. The router places columns only and the event
# store keeps the trace context inside its `metadata` JSON column, so with Debezium the trace
# context travels inside the `metadata` header (cdc.outbox.envelope_from_message reads it there).
# Run it INSTEAD of the eco2-cdc-relay-* Deployments, never beside them, and drop the relay's
# slots (eco2_cdc_<database>) when switching, or PostgreSQL keeps their WAL forever.
# Prerequisites: the Strimzi operator; a Secret eco2-debezium-db (host, user, password) of a role
# with REPLICATION readable by the Connect service account (KubernetesSecretConfigProvider).
# Validation: no CRD schema for Strimzi here, so `python -m devtools.manifests` checks only that
# the YAML parses, the required fields are present, the connectors name this KafkaConnect, which
# enables connector resources, and every transform has a type.
"""
"""The comment at the top of ``k8s/debezium-outbox.yaml``."""


def _connector_config(domain: str) -> dict[str, str]:
    database = f"{DbSettings().database_prefix}{domain}"
    placement = ",".join(f"{col}:header:{header}" for col, header in DEBEZIUM_HEADERS.items())
    secret = f"${{secrets:eco2/{DEBEZIUM_SECRET}:"
    return {
        "plugin.name": "pgoutput",
        "database.hostname": f"{secret}host}}",
        "database.port": "5432",
        "database.user": f"{secret}user}}",
        "database.password": f"{secret}password}}",
        "database.dbname": database,
        "topic.prefix": database,
        "slot.name": f"debezium_{database}",
        "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled",
        "table.include.list": "public.event_store",
        "snapshot.mode": "initial",
        "heartbeat.interval.ms": "10000",
        "tombstones.on.delete": "false",
        "transforms": "outbox",
        "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.outbox.table.field.event.id": "event_id",
        "transforms.outbox.table.field.event.key": "aggregate_id",
        "transforms.outbox.table.field.event.payload": "payload",
        "transforms.outbox.route.by.field": "aggregate_type",
        "transforms.outbox.route.topic.replacement": TOPIC_PREFIX + "${routedByValue}",
        "transforms.outbox.table.expand.json.payload": "true",
        "transforms.outbox.table.fields.additional.placement": placement,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "header.converter": "org.apache.kafka.connect.storage.SimpleHeaderConverter",
        "producer.override.enable.idempotence": "true",
        "producer.override.acks": "all",
    }


def _kafka_connect() -> dict[str, Any]:
    storage = {"replication.factor": "3"}
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaConnect",
        "metadata": {
            "name": CONNECT_CLUSTER,
            "labels": LABELS,
            # Without it the operator ignores the KafkaConnector resources below.
            "annotations": {"strimzi.io/use-connector-resources": "true"},
        },
        "spec": {
            "replicas": 1,
            "bootstrapServers": "kafka-bootstrap.kafka.svc.cluster.local:9092",
            "config": {
                "group.id": CONNECT_CLUSTER,
                "offset.storage.topic": f"{CONNECT_CLUSTER}-offsets",
                "config.storage.topic": f"{CONNECT_CLUSTER}-configs",
                "status.storage.topic": f"{CONNECT_CLUSTER}-status",
                **{
                    f"{t}.storage.{k}": v
                    for t in ("offset", "config", "status")
                    for k, v in storage.items()
                },
                "config.providers": "secrets",
                "config.providers.secrets.class": "io.strimzi.kafka.KubernetesSecretConfigProvider",
            },
            "build": {
                "output": {"type": "docker", "image": "ghcr.io/eco2/eco2-connect:0.1.0"},
                "plugins": [
                    {
                        "name": "debezium-postgres",
                        "artifacts": [
                            {
                                "type": "maven",
                                "group": "io.debezium",
                                "artifact": "debezium-connector-postgres",
                                "version": DEBEZIUM_VERSION,
                            }
                        ],
                    }
                ],
            },
        },
    }


def _secret_access() -> list[dict[str, Any]]:
    """Role + RoleBinding letting Connect's service account (Strimzi names it
    ``<cluster>-connect``) read the one Secret the connectors' ``${secrets:...}`` refer to."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"{CONNECT_CLUSTER}-secrets", "labels": LABELS},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [DEBEZIUM_SECRET],
                "verbs": ["get"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{CONNECT_CLUSTER}-secrets", "labels": LABELS},
        "subjects": [{"kind": "ServiceAccount", "name": f"{CONNECT_CLUSTER}-connect"}],
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"{CONNECT_CLUSTER}-secrets",
        },
    }
    return [role, binding]


def debezium_documents() -> list[dict[str, Any]]:
    """A Strimzi KafkaConnect and one KafkaConnector per domain database (the Postgres connector
    runs one task per database, the slot's single reader), and the Secret access they need."""
    connectors = [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaConnector",
            "metadata": {
                "name": eco2_name(f"outbox-{domain}"),
                "labels": {**LABELS, "strimzi.io/cluster": CONNECT_CLUSTER},
            },
            "spec": {
                "class": "io.debezium.connector.postgresql.PostgresConnector",
                "tasksMax": 1,
                "config": _connector_config(domain),
            },
        }
        for domain in DOMAIN_DATABASES
    ]
    return [*_secret_access(), _kafka_connect(), *connectors]
