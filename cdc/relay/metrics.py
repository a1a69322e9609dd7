"""Relay lag: bytes behind (from the slots) and seconds since the last acknowledged event.

* :func:`relay_status` — what ``eco2 status`` shows: one row per relay slot on the server, with
  the bytes between ``pg_current_wal_lsn()`` and what Kafka acknowledged (the running relay's own
  view, written every second to ``<run_dir>/cdc/relay-status.json``; the slot's
  ``confirmed_flush_lsn`` when there is none) and the bytes the slot holds for the replay window.
* :func:`register` — OpenTelemetry observable gauges of a running relay
  (``eco2.cdc.lag_bytes``, ``eco2.cdc.seconds_since_last_ack``, ``eco2.cdc.oldest_pending_s``,
  ``eco2.cdc.events``, ``eco2.cdc.dead_lettered``), per ``database``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation

from cdc.relay.slots import slot_lag
from eco2.telemetry import meter

if TYPE_CHECKING:
    from cdc.relay import Relay
    from cdc.relay.stream import DatabaseStream
    from eco2.settings import Settings

STATUS_EVERY_S = 1.0
STALE_VIEW_S = 10.0
"""A status file this old is a relay that stopped: the slots alone say how far behind it is."""
_registered: list[Relay] = []
"""The running relay the gauges observe (at most one; empty once it stopped)."""
_gauges_created = False


def status_path(settings: Settings) -> Path:
    return settings.run_dir / "cdc" / "relay-status.json"


def stream_view(stream: DatabaseStream) -> dict[str, Any]:
    """The relay's own view of one database stream."""
    stats, now = stream.stats, time.time()
    confirmed = stream.tracker.confirmed
    return {
        "database": stream.database,
        "slot": stream.slot,
        "connected": stream.connected,
        "confirmed_lsn": confirmed,
        "held_bytes": confirmed - stream.tracker.released,
        "lag_bytes_estimate": max(0, stats.server_wal_end - confirmed),
        "events": stats.events,
        "dead_lettered": stats.dead_lettered,
        "in_flight": stream.tracker.in_flight,
        "last_ack_at": stats.last_ack_at,
        "seconds_since_last_ack": None if stats.last_ack_at is None else now - stats.last_ack_at,
        "oldest_pending_s": stream.oldest_pending_age_s(),
        "reconnects": stats.reconnects,
        "last_error": stats.last_error,
    }


def write_status(settings: Settings, streams: Sequence[DatabaseStream]) -> None:
    """Atomically replace the status file (best effort: a read-only run dir is not an error)."""
    path = status_path(settings)
    body = {
        "pid": os.getpid(),
        "updated_at": time.time(),
        "streams": [stream_view(s) for s in streams],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def relay_status(settings: Settings) -> list[dict[str, Any]]:
    """One row per relay slot: database, active, lag_bytes, seconds_since_last_ack, events ...

    Raises :class:`eco2.errors.Unavailable` when the database cannot be reached.
    """
    from eco2.errors import Unavailable

    if settings.db.url is None:
        raise Unavailable("no database configured: run `eco2 up` or set ECO2_DB__URL")
    try:
        rows = slot_lag(settings.db.url)
    except Exception as exc:  # psycopg2.Error and OS errors alike: report, do not crash status
        raise Unavailable(f"cannot read the replication slots: {exc}") from exc
    views: dict[str, dict[str, Any]] = {}
    try:
        raw = json.loads(status_path(settings).read_text(encoding="utf-8"))
        age = time.time() - float(raw["updated_at"])
        for view in raw["streams"]:
            if view.get("last_ack_at") is not None:
                view["seconds_since_last_ack"] = time.time() - view["last_ack_at"]
            view["status_age_s"] = age
            views[view["slot"]] = view
    except (OSError, ValueError, KeyError, TypeError):
        pass
    merged = []
    for row in rows:
        view = views.get(row["slot"], {})
        slot_lag_bytes = row["lag_bytes"]
        if isinstance(view.get("confirmed_lsn"), int) and view["status_age_s"] < STALE_VIEW_S:
            # The slot trails what Kafka acknowledged by the replay window: held, not behind.
            acked_lag = max(0, row["current_lsn"] - view["confirmed_lsn"])
            row["lag_bytes"] = min(slot_lag_bytes, acked_lag)
        row["held_bytes"] = slot_lag_bytes - row["lag_bytes"]
        merged.append(
            {
                **row,
                "seconds_since_last_ack": view.get("seconds_since_last_ack"),
                "oldest_pending_s": view.get("oldest_pending_s"),
                "events": view.get("events"),
                "dead_lettered": view.get("dead_lettered"),
                "relay_error": view.get("last_error"),
            }
        )
    return merged


def _observe(field: str) -> Any:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        for relay in _registered:
            for stream in relay.streams:
                value = stream_view(stream)[field]
                if value is not None:
                    yield Observation(value, {"database": stream.database})

    return callback


def register(relay: Relay) -> None:
    """Expose ``relay``'s lag as OpenTelemetry gauges (instruments are created once per process)."""
    global _gauges_created
    _registered[:] = [relay]
    if _gauges_created:
        return
    _gauges_created = True
    m = meter("eco2.cdc")
    m.create_observable_gauge(
        "eco2.cdc.lag_bytes",
        [_observe("lag_bytes_estimate")],
        unit="By",
        description="WAL bytes between the server's end and the confirmed LSN",
    )
    m.create_observable_gauge(
        "eco2.cdc.seconds_since_last_ack",
        [_observe("seconds_since_last_ack")],
        unit="s",
        description="Seconds since Kafka acknowledged an event",
    )
    m.create_observable_gauge(
        "eco2.cdc.oldest_pending_s",
        [_observe("oldest_pending_s")],
        unit="s",
        description="Age of the oldest committed event not yet acknowledged",
    )
    m.create_observable_counter(
        "eco2.cdc.events", [_observe("events")], description="Events acknowledged by Kafka"
    )
    m.create_observable_counter(
        "eco2.cdc.dead_lettered",
        [_observe("dead_lettered")],
        description="Events published to a dead-letter topic",
    )


def unregister(relay: Relay) -> None:
    """Stop observing ``relay`` (it stopped): the gauges report nothing instead of its last
    state, and the stopped relay and its producer can be freed."""
    if relay in _registered:
        _registered.remove(relay)
