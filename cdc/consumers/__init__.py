"""The consumer runtime: Kafka outbox topics → a handler inside a transaction on the consumer's
own store, with an idempotent inbox, retries with backoff, a dead-letter topic and replay.

:mod:`~cdc.consumers.runtime` holds the loop and its delivery guarantees (several consumers of a
process share one Kafka consumer, a feed);
:mod:`~cdc.consumers.apply` one batch's transaction; :mod:`~cdc.consumers.inbox` and
:mod:`~cdc.consumers.valkey_inbox` the inbox adapters (PostgreSQL, memory, Valkey), which pass
one contract suite;
:mod:`~cdc.consumers.dlq` listing and replaying dead letters.
"""

from cdc.consumers.runtime import (
    ConsumerRuntime,
    ConsumerSpec,
    RetryPolicy,
    feeds,
    run_consumers_async,
)

__all__ = ["ConsumerRuntime", "ConsumerSpec", "RetryPolicy", "feeds", "run_consumers_async"]
