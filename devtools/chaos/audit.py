"""After the load: what the service promised, checked against its own stores and read models.

* every accepted job reaches a final state (completed, or failed: the dead-letter state with
  its reason, which ``eco2 scan reprocess`` can run again) — one still unfinished after the
  settle time is **lost**;
* a completed rewarded scan has exactly one ``RewardGranted`` and its user owns the character —
  more is a **duplicate**, none a loss;
* a completed chat message has exactly one stored answer;
* each user's my page counts exactly the user's completed scans and owned characters (the
  events went through the relay, the broker and the projectors: a lost event counts short, a
  replayed one long);
* with ``strict_calls``, no stage's model call completed twice (a committed stage never runs
  again): the simulator counts completed calls per call key.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import aiohttp
import asyncpg

from devtools.chaos.load import Accepted, Load, User
from eco2.migrations import database_dsn
from eco2.settings import Settings

SETTLE_S = 180.0
"""How long the audit waits for accepted jobs to finish and the read models to catch up."""


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _jobs(settings: Settings, kind: str, ids: list[str]) -> dict[str, asyncpg.Record]:
    table = "scan_jobs" if kind == "scan" else "chat_jobs"
    rows = await _fetch(
        database_dsn(settings.db.url or "", settings.database_name(kind)),
        f"SELECT job_id::text, user_id, status, error FROM {table} WHERE job_id = ANY($1::uuid[])",
        ids,
    )
    return {row["job_id"]: row for row in rows}


async def final_states(
    settings: Settings, accepted: list[Accepted], settle_s: float = SETTLE_S
) -> dict[str, asyncpg.Record]:
    """Each accepted job's row once none is queued or running (or when ``settle_s`` ran out)."""
    deadline = time.monotonic() + settle_s
    while True:
        rows: dict[str, asyncpg.Record] = {}
        for kind in ("scan", "chat"):
            ids = [job.job_id for job in accepted if job.kind == kind]
            if ids:
                rows |= await _jobs(settings, kind, ids)
        unfinished = [j for j in accepted if _status(rows, j) not in ("completed", "failed")]
        if not unfinished or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


def _status(rows: dict[str, asyncpg.Record], job: Accepted) -> str:
    row = rows.get(job.job_id)
    return "missing" if row is None else str(row["status"])


async def _rewards(settings: Settings, scans: list[str]) -> Counter[str]:
    rows = await _fetch(
        database_dsn(settings.db.url or "", settings.database_name("scan")),
        "SELECT aggregate_id, count(*) AS n FROM event_store "
        "WHERE event_type = 'RewardGranted' AND aggregate_id = ANY($1::text[]) "
        "GROUP BY aggregate_id",
        scans,
    )
    return Counter({row["aggregate_id"]: row["n"] for row in rows})


async def _owned(settings: Settings, users: list[str]) -> dict[str, tuple[int, int]]:
    """user → (characters owned, of them earned by a scan)."""
    rows = await _fetch(
        database_dsn(settings.db.url or "", settings.database_name("character")),
        "SELECT user_id, count(*) AS n, count(*) FILTER (WHERE source = 'scan') AS scanned "
        "FROM character_ownerships WHERE user_id = ANY($1::text[]) AND status = 'owned' "
        "GROUP BY user_id",
        users,
    )
    return {row["user_id"]: (row["n"], row["scanned"]) for row in rows}


async def owners(
    settings: Settings, users: list[str], rewarded: set[str], settle_s: float = SETTLE_S
) -> dict[str, tuple[int, int]]:
    """Each user's ownerships once every rewarded user owns a character earned by a scan (or
    when ``settle_s`` ran out): the grant is the saga's step after ``RewardGranted`` crossed the
    relay and the broker, so it comes later than the scan's completion."""
    deadline = time.monotonic() + settle_s
    while True:
        owned = await _owned(settings, users)
        waiting = [u for u in rewarded if owned.get(u, (0, 0))[1] == 0]
        if not waiting or time.monotonic() > deadline:
            return owned
        await asyncio.sleep(1.0)


async def _answers(settings: Settings, chats: list[str]) -> Counter[str]:
    rows = await _fetch(
        database_dsn(settings.db.url or "", settings.database_name("chat")),
        "SELECT job_id::text, count(*) AS n FROM chat_messages "
        "WHERE role = 'assistant' AND job_id = ANY($1::uuid[]) GROUP BY job_id",
        chats,
    )
    return Counter({row["job_id"]: row["n"] for row in rows})


async def _page(http: aiohttp.ClientSession, api: str, user: User) -> dict[str, Any] | None:
    try:
        async with http.get(f"{api}/api/v1/users/me/page", headers=user.headers) as answer:
            return dict(await answer.json()) if answer.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


async def read_models(
    http: aiohttp.ClientSession,
    api: str,
    expected: list[tuple[User, int, int]],
    settle_s: float = SETTLE_S,
) -> tuple[dict[str, Any], float]:
    """Wait until every user's my page counts the expected (scans, characters); the pages
    still off when ``settle_s`` ran out (``short``/``long`` by figure) and the seconds taken."""
    started = time.monotonic()
    while True:
        off: dict[str, Any] = {}
        for user, scans, characters in expected:
            page = await _page(http, api, user)
            got = (-1, -1) if page is None else (page["scans"], len(page["characters"]))
            if got != (scans, characters):
                off[user.user_id] = {"expected": [scans, characters], "page": list(got)}
        if not off or time.monotonic() - started > settle_s:
            return off, time.monotonic() - started
        await asyncio.sleep(1.0)


def _repeated_calls(stats: dict[str, Any], jobs: Iterable[Accepted]) -> dict[str, int]:
    """Call keys of these jobs whose model call completed more than once."""
    mine = {job.job_id for job in jobs}
    calls: dict[str, int] = stats.get("calls_by_key", {})
    return {k: n for k, n in calls.items() if n > 1 and k.split(":", 1)[0] in mine}


async def audit(
    settings: Settings,
    load: Load,
    http: aiohttp.ClientSession,
    *,
    model_stats: dict[str, Any] | None = None,
    settle_s: float = SETTLE_S,
) -> dict[str, Any]:
    """The figures of one run; ``lost`` and ``duplicates`` must both be 0."""
    accepted = load.accepted
    started = time.monotonic()
    rows = await final_states(settings, accepted, settle_s)
    statuses = Counter(f"{job.kind} {_status(rows, job)}" for job in accepted)
    lost = [job for job in accepted if _status(rows, job) not in ("completed", "failed")]
    reasons = Counter(
        str(rows[job.job_id]["error"] or "no reason")[:160]
        for job in accepted
        if _status(rows, job) == "failed"
    )
    done_scans = [j for j in accepted if j.kind == "scan" and _status(rows, j) == "completed"]
    done_chats = [j for j in accepted if j.kind == "chat" and _status(rows, j) == "completed"]

    rewards = await _rewards(settings, [j.job_id for j in done_scans])
    users = {j.user.user_id: j.user for j in done_scans}
    rewarded = {j.user.user_id for j in done_scans if rewards[j.job_id]}
    owned = await owners(settings, sorted(users), rewarded, settle_s)
    answers = await _answers(settings, [j.job_id for j in done_chats])
    scans_by_user = Counter(j.user.user_id for j in done_scans)
    expected = [(users[u], n, owned.get(u, (0, 0))[0]) for u, n in sorted(scans_by_user.items())]
    off, settled_s = await read_models(http, load.api, expected, settle_s)
    short = {u: v for u, v in off.items() if v["page"][0] < v["expected"][0]}

    repeated = _repeated_calls(model_stats or {}, accepted) if model_stats is not None else {}
    lost_figures = {
        "jobs_unfinished": len(lost),
        "rewards_missing": sum(1 for j in done_scans if rewards[j.job_id] == 0),
        "owners_missing": sum(1 for u in rewarded if owned.get(u, (0, 0))[1] == 0),
        "chat_answers_missing": sum(1 for j in done_chats if answers[j.job_id] == 0),
        "read_model_short": len(short),
    }
    duplicate_figures = {
        "rewards": sum(1 for j in done_scans if rewards[j.job_id] > 1),
        "chat_answers": sum(1 for j in done_chats if answers[j.job_id] > 1),
        "read_model_long": len(off) - len(short),
        "stage_calls_after_commit": len(repeated),
    }
    return {
        "accepted": {"scan": load.count("scan"), "chat": load.count("chat")},
        "final": dict(statuses),
        "dead_lettered": dict(reasons),
        "streams": dict(Counter(job.end for job in accepted)),
        "lost": sum(lost_figures.values()),
        "lost_by_kind": lost_figures,
        "duplicates": sum(duplicate_figures.values()),
        "duplicates_by_kind": duplicate_figures,
        "read_models_equal": not off,
        "read_models_off": dict(list(off.items())[:5]),
        "read_models_settled_s": round(settled_s, 1),
        "repeated_calls": dict(list(repeated.items())[:10]),
        "audit_s": round(time.monotonic() - started, 1),
        "unfinished_jobs": [j.job_id for j in lost][:10],
    }
