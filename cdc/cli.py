"""``eco2 cdc ...``: the relay, consumers, dead letters, rebuilds (mounted by ``eco2.cli``).

A consumer is named either by ``module:attribute`` (a :class:`~cdc.consumers.ConsumerSpec` or
a function returning one) or by a name registered in :data:`CONSUMER_SPECS`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cdc.consumers import ConsumerSpec
from cdc.readmodels.projections import PROJECTIONS
from eco2.settings import DOMAIN_DATABASES, load_settings
from eco2.telemetry import configure

CONSUMER_SPECS: dict[str, str] = dict(PROJECTIONS)
"""Consumer name → ``module:attribute`` of its spec: the read-model projections by name
(``eco2 cdc rebuild scan_history``); domain reactions run in ``runtime.domain_host``."""

cdc_app = typer.Typer(help="Outbox relay (WAL → Kafka), consumers, dead letters, rebuilds.")
dlq_app = typer.Typer(help="Dead-letter topics: list and replay.")
cdc_app.add_typer(dlq_app, name="dlq")
console = Console()
_CONSUMER_HELP = "module:attribute of a ConsumerSpec, or a registered consumer name"


def load_spec(ref: str) -> ConsumerSpec:
    """The consumer spec named by ``module:attribute`` or by a registered name."""
    target = CONSUMER_SPECS.get(ref, ref)
    module_name, sep, attribute = target.partition(":")
    if not sep:
        raise typer.BadParameter(
            f"unknown consumer {ref!r}: give module:attribute or one of {sorted(CONSUMER_SPECS)}"
        )
    found = getattr(importlib.import_module(module_name), attribute)
    spec = found if isinstance(found, ConsumerSpec) else found()
    if not isinstance(spec, ConsumerSpec):
        raise typer.BadParameter(f"{target} is not a ConsumerSpec")
    return spec


@cdc_app.command("relay")
def relay_command(
    databases: Annotated[
        list[str] | None, typer.Argument(help="database or domain names (default: all domains)")
    ] = None,
    no_snapshot: Annotated[
        bool, typer.Option("--no-snapshot", help="skip existing rows when creating a slot")
    ] = False,
) -> None:
    """Relay event-store inserts to Kafka until SIGTERM (at-least-once, ordered per aggregate)."""
    from cdc.relay import run_relay

    settings = load_settings()
    configure("cdc-relay", settings.telemetry)
    run_relay(settings, databases or list(DOMAIN_DATABASES), snapshot=not no_snapshot)


@cdc_app.command("status")
def status_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Relay slots: bytes behind, seconds since the last acknowledged event."""
    from cdc.relay.metrics import relay_status

    rows = relay_status(load_settings())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("database", "active", "lag bytes", "s since last ack", "events")
    for row in rows:
        since = row["seconds_since_last_ack"]
        table.add_row(
            row["database"],
            str(row["active"]),
            str(row["lag_bytes"]),
            "-" if since is None else f"{since:.1f}",
            str(row["events"] or "-"),
        )
    console.print(table)


@cdc_app.command("consume")
def consume_command(
    consumer: Annotated[str, typer.Argument(help="module:attribute or name")],
) -> None:
    """Run a consumer until SIGTERM (effects exactly once through its inbox)."""
    from cdc.consumers.runtime import run_consumer

    settings = load_settings()
    configure(f"cdc-consumer-{consumer}", settings.telemetry)
    run_consumer(load_spec(consumer), settings)


@cdc_app.command("rebuild")
def rebuild_command(
    consumer: Annotated[str, typer.Argument(help="module:attribute or name")],
) -> None:
    """Reset a consumer and replay its input from the event stores (no Kafka)."""
    from cdc.consumers.rebuild import rebuild

    count = asyncio.run(rebuild(load_spec(consumer), load_settings()))
    typer.echo(json.dumps({"consumer": consumer, "events_applied": count}))


@dlq_app.command("list")
def dlq_list_command(
    topic: Annotated[str, typer.Argument(help="topic or its .dlq, e.g. outbox.event.scan")],
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead letters of a topic with their reasons."""
    from cdc.consumers.dlq import list_dlq

    entries = list_dlq(load_settings(), topic, limit)
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    table = Table("partition/offset", "event id", "type", "reason", "source", "error")
    for e in entries:
        table.add_row(
            f"{e.partition}/{e.offset}", e.event_id, e.event_type, e.reason, e.source, e.error[:80]
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay_command(
    topic: Annotated[str, typer.Argument(help="topic or its .dlq, e.g. outbox.event.scan")],
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="replay only these")
    ] = None,
) -> None:
    """Republish dead letters onto their original topic (after the fix)."""
    from cdc.consumers.dlq import replay_dlq

    count = replay_dlq(load_settings(), topic, event_ids=set(event_id) if event_id else None)
    typer.echo(json.dumps({"topic": topic, "replayed": count}))


if __name__ == "__main__":
    cdc_app()
