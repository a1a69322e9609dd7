"""``eco2 chaos --scenario overload``: offered load at twice what the stack completes.

First a probe: closed-loop careful users for ``PROBE_S`` give the stack's capacity (completed
scans per second) and the baseline time from acceptance to ``done`` (p95). Then an open loop
offers ``FACTOR`` × capacity for ``OFFERED_S``, each submit sent once (not retried: the excess
is what the stack refuses). The promise: the excess refused within ``REFUSED_WITHIN_MS`` with
``Retry-After``, the accepted scans done within their baseline p95, and nothing accepted lost
(the audit of :mod:`devtools.chaos.audit`). The targets are reported (``targets``), not judged:
``eco2 chaos`` fails a run on a loss or a duplicate only.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp

from devtools.chaos import load as users
from devtools.chaos.audit import audit
from devtools.chaos.load import UNTIL_STOPPED, Accepted, Load, Quota, User
from eco2.settings import Settings

FACTOR = 2.0
PROBE_S = 15.0
OFFERED_S = 20.0
REFUSED_WITHIN_MS = 50.0
P95_WITHIN = 1.2
"""The accepted scans' p95 under overload may exceed the probe's by this factor at most."""
SUBMITS_PER_USER = 8
"""Open-loop submits per signed-in user: within a person's burst, so the per-user limit is not
what refuses the excess (that would measure fairness, not overload)."""


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def _refused_by(refused: list[users.Answer]) -> dict[str, list[float]]:
    """Refusal times by who refused: the gateway's throttle (``X-Shed-By``) or the service."""
    by: dict[str, list[float]] = {}
    for answer in refused:
        by.setdefault(answer.shed_by or "service", []).append(answer.ms)
    return by


def _done_s(jobs: list[Accepted]) -> list[float]:
    return [j.ended_at - j.accepted_at for j in jobs if j.end == "done" and j.ended_at]


async def _probe(http: aiohttp.ClientSession, api: str, count: int) -> tuple[float, list[float]]:
    """Completed scans per second and acceptance→done seconds of a closed loop of ``count``."""
    load, quota = Load(api), Quota({"scan": UNTIL_STOPPED})
    scanning = [asyncio.create_task(users.user(http, load, quota, "scan")) for _ in range(count)]
    await asyncio.sleep(2.0)  # sign-ins and the first scans: not part of the window
    start = time.monotonic()
    await asyncio.sleep(PROBE_S)
    done_in_window = sum(
        1 for j in load.accepted if j.end == "done" and j.ended_at and j.ended_at >= start
    )
    quota.stop()
    await asyncio.gather(*scanning)
    return done_in_window / PROBE_S, _done_s(load.accepted)


async def _offer(
    http: aiohttp.ClientSession, api: str, rate: float, seconds: float
) -> tuple[Load, list[users.Answer]]:
    """Submit at ``rate`` per second for ``seconds`` (each once), following the accepted ones."""
    total = max(1, int(rate * seconds))
    pool: list[User] = await asyncio.gather(
        *(users.sign_in(http, api, "overload") for _ in range(math.ceil(total / SUBMITS_PER_USER)))
    )
    offered, answers = Load(api), []
    url, body = f"{api}/api/v1/scan", {"image_url": users.SCAN_IMAGE}

    async def one(i: int) -> None:
        user = pool[i % len(pool)]
        headers = {**user.headers, "X-Idempotency-Key": uuid.uuid4().hex}
        answer = await users.submit_once(http, url, body, headers)
        answers.append(answer)
        if answer.status == 202:
            job = Accepted("scan", answer.body["job_id"], user, answer.body["result_url"], 0.0)
            job.accepted_at = time.monotonic()
            offered.accepted.append(job)
            await job.followed(http, offered, answer.body["stream_url"])

    started, tasks = time.monotonic(), []
    for i in range(total):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    return offered, answers


async def overload(settings: Settings, api: str, probe_users: int) -> dict[str, Any]:
    async with users.session() as http:
        capacity, baseline = await _probe(http, api, probe_users)
        if capacity <= 0:
            return {"error": f"the probe completed no scan in {PROBE_S:.0f} s"}
        rate = FACTOR * capacity
        offered, answers = await _offer(http, api, rate, OFFERED_S)
        figures = await audit(settings, offered, http)
    refused = [a for a in answers if a.status in (429, 503)]
    baseline_p95, under_p95 = quantile(baseline, 0.95), quantile(_done_s(offered.accepted), 0.95)
    refused_p99 = quantile([a.ms for a in refused], 0.99)
    figures |= {
        "capacity_per_s": round(capacity, 1),
        "offered_per_s": round(rate, 1),
        "offered": len(answers),
        "answers": dict(Counter(str(a.status or "dropped") for a in answers)),
        "refused": len(refused),
        "refused_ms_p50_p99": [quantile([a.ms for a in refused], 0.5), refused_p99],
        "refused_by": {
            by: {"n": len(ms), "ms_p50_p99": [quantile(ms, 0.5), quantile(ms, 0.99)]}
            for by, ms in _refused_by(refused).items()
        },
        "refused_without_retry_after": sum(1 for a in refused if not a.retry_after),
        "done_s_p95_probe": baseline_p95,
        "done_s_p95_offered": under_p95,
        "targets": {
            "excess_refused": bool(refused),
            f"refused_within_{REFUSED_WITHIN_MS:.0f}_ms": refused_p99 is not None
            and refused_p99 <= REFUSED_WITHIN_MS,
            "retry_after_on_every_refusal": all(a.retry_after for a in refused),
            f"p95_within_{P95_WITHIN}x": baseline_p95 is not None
            and under_p95 is not None
            and under_p95 <= P95_WITHIN * baseline_p95,
        },
        "client_saw": dict(offered.seen.most_common()),
    }
    return figures
