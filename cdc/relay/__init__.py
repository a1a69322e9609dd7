"""The outbox relay: each domain database's ``event_store`` inserts, read from its WAL through a
logical replication slot (pgoutput), published to Kafka; the slot is confirmed only after Kafka
acknowledged. Read in this order: :mod:`~cdc.relay.relay` (the loop and the guarantees),
:mod:`~cdc.relay.stream` (one database's slot), :mod:`~cdc.relay.acks` (what may be
confirmed), :mod:`~cdc.relay.walstream` and :mod:`~cdc.relay.pgoutput` (the wire),
:mod:`~cdc.relay.slots` (slot and publication management), :mod:`~cdc.relay.metrics`.

Run with ``python -m cdc.relay --events MODULE:REGISTRY ...``.
"""

from cdc.relay.relay import KafkaSink, Relay, run_relay

__all__ = ["KafkaSink", "Relay", "run_relay"]
