"""The consumer runtime: Kafka outbox topics → a handler inside a transaction on the consumer's
own store, with an idempotent inbox, retries with backoff, a dead-letter topic and replay.

:mod:`~cdc.consumers.runtime` holds the loop and its delivery guarantees;
:mod:`~cdc.consumers.apply` one batch's transaction; :mod:`~cdc.consumers.inbox` and
:mod:`~cdc.consumers.valkey_inbox` the inbox adapters (PostgreSQL, memory, Valkey), which pass
one contract suite;
:mod:`~cdc.consumers.dlq` listing and replaying dead letters.
"""

from cdc.consumers.runtime import ConsumerRuntime, ConsumerSpec, RetryPolicy, run_consumer_async

__all__ = ["ConsumerRuntime", "ConsumerSpec", "RetryPolicy", "run_consumer_async"]
