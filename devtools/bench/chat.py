"""``eco2 bench chat``: concurrent conversations through the gateway against the running stack.

Each virtual user signs in, opens a chat and then, in a closed loop, posts a message (with its
position, so no one waits for ``needs_input``), follows the answer's stream to ``done`` and
thinks ``--think`` seconds (reading the answer, typing the next question) before the next one;
``--think 0`` is a saturation test instead. The messages cycle through every intent and one
multi-tool message. Figures:

* first-token overhead: from the post to the first ``token`` event, minus what the simulated
  parts spent — the model simulator's first-token latency and, unless the classification came
  from the cache (its ``latency_ms.intent`` is 0), its intent latency (both as configured: fixed
  plus the mean jitter),
  and the slowest tool of the job (the fakes take their upstream's time,
  ``chat.fake_latency_ms``);
* completed chats per minute, failed, stack CPU per chat (per process);
* for the multi-tool message: the tool phase's wall time against its slowest tool and the sum.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
import httpx
import typer

import eco2.loop
from cluster.running import api_url, running_state
from devtools.bench import loadgen
from devtools.bench.machine import machine
from devtools.bench.scan import (
    cpu_by_process,
    cpu_ms_per_unit,
    rate_limited,
    stack_rate_limits,
    stack_tracing,
)

SEOUL = {"latitude": 37.5665, "longitude": 126.978}
MESSAGES = (
    "무색페트병 어떻게 버려?",
    "서울에서 캔 시세 얼마야?",
    "소파 버리려면 어떻게 해?",
    "폐건전지 수거함 어디 있어?",
    "페트병으로 무슨 캐릭터 받아?",
    "요즘 분리배출 정책 뉴스 알려줘",
    "오늘 날씨에 종이 내놔도 돼?",
    "안녕 이코!",
)
MULTI_TOOL = "근처 재활용센터 어디야? 캔 가격이랑 날씨도 알려줘"


@dataclass(frozen=True)
class SimLatency:
    """The simulator's configured latencies (ms) before an answer's first token."""

    intent_ms: float
    first_token_ms: float


@dataclass
class Tally:
    first_token_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    done_s: list[float] = field(default_factory=list)
    tool_phases: list[dict[str, float]] = field(default_factory=list)
    chunks: list[float] = field(default_factory=list)
    """``token`` events per answer."""
    failures: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    all_completed: int = 0
    """Including the ramp (for CPU per chat over the whole run)."""
    measuring: bool = False


def _sim_ms(kind: dict[str, Any]) -> float:
    """A call kind's configured latency: fixed plus the mean of its uniform jitter."""
    return float(kind["fixed_ms"]) + float(kind.get("jitter_ms", 0.0)) / 2


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1], 1)


async def _one_message(
    session: aiohttp.ClientSession,
    api: str,
    user: loadgen.User,
    chat_id: str,
    message: str,
    model: SimLatency,
    tally: Tally,
) -> None:
    body = {"message": message, "user_location": SEOUL}
    started = time.perf_counter()
    url = f"{api}/api/v1/chat/{chat_id}/messages"
    async with session.post(url, json=body, headers=user.headers) as response:
        if response.status != 202:
            tally.failures[await _refusal(response)] += 1
            return
        job = await response.json()
    first: float | None = None
    chunks = 0
    result: dict[str, Any] | None = None
    async with session.get(f"{api}{job['stream_url']}", headers=user.headers) as stream:
        name = ""
        async for raw in stream.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
                if name == "token":
                    chunks += 1
                    if first is None:
                        first = (time.perf_counter() - started) * 1000
            elif line.startswith("data:") and name in ("done", "error"):
                data = json.loads(line.split(":", 1)[1])
                result = data.get("result") if name == "done" else None
                break
    if result is None or result.get("status") != "completed" or first is None:
        tally.failures["stream_error" if result is None else f"done_{result.get('status')}"] += 1
        return
    tally.all_completed += 1
    if not tally.measuring:
        return
    tally.completed += 1
    latency = result.get("latency_ms") or {}
    tally.first_token_ms.append(first)
    intent_ms = model.intent_ms if float(latency.get("intent", 0.0)) > 0 else 0.0
    simulated = intent_ms + model.first_token_ms + float(latency.get("tools_slowest", 0.0))
    tally.overhead_ms.append(first - simulated)
    tally.chunks.append(chunks)
    tally.done_s.append(time.perf_counter() - started)
    if message == MULTI_TOOL and latency.get("tools_sum"):
        tally.tool_phases.append(
            {k: float(latency[k]) for k in ("tools_wall", "tools_slowest", "tools_sum")}
        )


async def _refusal(response: aiohttp.ClientResponse) -> str:
    """``post_<status>[_<error code>]``: the code says who refused (``rate_limited``: the
    per-user limit; ``overloaded``: the replica)."""
    try:
        code = (await response.json(content_type=None))["error"]["code"]
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        code = None
    return f"post_{response.status}" + (f"_{code}" if code else "")


async def _user(
    api: str,
    user: loadgen.User,
    index: int,
    deadline: float,
    model: SimLatency,
    think_s: float,
    tally: Tally,
) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(f"{api}/api/v1/chat", json={}, headers=user.headers) as created:
            chat_id = (await created.json())["id"]
        n = index
        while time.monotonic() < deadline:
            message = MULTI_TOOL if n % 3 == 0 else MESSAGES[n % len(MESSAGES)]
            n += 1
            try:
                await _one_message(session, api, user, chat_id, message, model, tally)
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.failures[type(exc).__name__] += 1
            if think_s:
                # Spread the users over the think time, so they do not move in lockstep.
                await asyncio.sleep(think_s * (0.5 + (n * 0.618) % 1.0))


async def _drive(
    api: str,
    users: list[loadgen.User],
    duration_s: float,
    ramp_s: float,
    model: SimLatency,
    think_s: float,
) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.monotonic() + ramp_s + duration_s
    tasks = []
    for i, user in enumerate(users):
        tasks.append(asyncio.create_task(_user(api, user, i, deadline, model, think_s, tally)))
        if ramp_s:
            await asyncio.sleep(ramp_s / len(users))
    tally.measuring = True
    measured_from = time.monotonic()
    await asyncio.gather(*tasks)
    return tally, time.monotonic() - measured_from


def bench_chat(
    users: Annotated[int, typer.Option(min=1, max=2000)] = 200,
    duration: Annotated[float, typer.Option(min=5, max=900, help="Measured seconds.")] = 60,
    ramp: Annotated[float, typer.Option(min=0, max=300, help="Ramp-up seconds.")] = 10,
    think: Annotated[
        float, typer.Option(min=0, max=120, help="Mean seconds a user thinks between messages.")
    ] = 10,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Concurrent conversations through the gateway (simulated model, offline tools)."""
    state = running_state()
    api = api_url(state)
    sim = state.env["ECO2_MODEL__BASE_URL"].removesuffix("/v1")
    kinds = httpx.get(f"{sim}/sim/config").raise_for_status().json()["kinds"]
    model = SimLatency(_sim_ms(kinds["intent"]), _sim_ms(kinds["text"]))
    virtual_users = loadgen.prepare(api, users, "gateway")
    host = machine()
    cpu_before = cpu_by_process(state)
    tally, elapsed = eco2.loop.run(_drive(api, virtual_users, duration, ramp, model, think))
    phases = tally.tool_phases
    result = {
        "command": (
            f"eco2 bench chat --users {users} --duration {duration:g} --ramp {ramp:g} "
            f"--think {think:g} --json"
        ),
        "users": users,
        "think_s": think,
        "elapsed_s": round(elapsed, 1),
        "completed": tally.completed,
        "completed_per_min": round(tally.completed / elapsed * 60, 1),
        "failed": sum(tally.failures.values()),
        "failures": dict(tally.failures),
        "rate_limited": rate_limited(tally.failures),
        "failed_not_rate_limited": sum(tally.failures.values()) - rate_limited(tally.failures),
        "simulated_model_ms": {
            "intent": model.intent_ms,
            "first_token": model.first_token_ms,
            "token_gap": float(kinds["text"].get("token_delay_ms", 0.0)),
        },
        "token_events_per_answer_p50": _q(tally.chunks, 0.5),
        "first_token_ms": {
            "p50": _q(tally.first_token_ms, 0.5),
            "p95": _q(tally.first_token_ms, 0.95),
        },
        "first_token_overhead_ms": {
            "p50": _q(tally.overhead_ms, 0.5),
            "p95": _q(tally.overhead_ms, 0.95),
        },
        "done_s": {"p50": _q(tally.done_s, 0.5), "p95": _q(tally.done_s, 0.95)},
        "multi_tool_phase_ms": {
            "messages": len(phases),
            "wall_p50": _q([p["tools_wall"] for p in phases], 0.5),
            "slowest_tool_p50": _q([p["tools_slowest"] for p in phases], 0.5),
            "sum_of_tools_p50": _q([p["tools_sum"] for p in phases], 0.5),
            "wall_over_slowest_p50": _q(
                [p["tools_wall"] / p["tools_slowest"] for p in phases if p["tools_slowest"]], 0.5
            ),
        },
        "stack_cpu_ms_per_chat": cpu_ms_per_unit(
            cpu_before, cpu_by_process(state), tally.all_completed
        ),
        "tracing": stack_tracing(state),
        "rate_limits": stack_rate_limits(state),
        "machine": host,
    }
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
