"""``eco2 chaos``: one scenario, or all of them in turn, against the running local stack.

Each scenario: careful signed-in users start their scans (and chat messages); once a third of
them were accepted the fault strikes while the rest are still coming; the load runs to its end;
then the audit (:mod:`devtools.chaos.audit`) checks every promise. The figures print as JSON;
the command exits 1 when any scenario lost or duplicated anything, or could not run its fault.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from cluster.running import api_url, running_settings, running_state
from cluster.state import StackState
from devtools.bench.machine import machine
from devtools.chaos import load as users
from devtools.chaos.audit import SETTLE_S, audit
from devtools.chaos.faults import SCENARIOS, Scenario, Stack, Struck, model_stats, put_model_config
from devtools.chaos.overload import overload, quantile
from eco2.settings import Settings

OVERLOAD, HOSTILE = "overload", "hostile"
NAMES = (*SCENARIOS, OVERLOAD, HOSTILE)
"""Every scenario ``all`` runs: the faults, twice the stack's capacity offered, then
schemathesis against every OpenAPI document (:mod:`devtools.hostile`)."""
HOSTILE_EXAMPLES, HOSTILE_S = 10, 480.0
STRIKE_AT = 1 / 3
"""The share of the jobs accepted before the fault strikes: work in flight when it does."""
BETWEEN_S = 5.0
"""A pause between scenarios of ``all``: the last one's restarts settle first."""


@dataclass(frozen=True)
class Options:
    scans: int
    chats: int
    users: int
    settle_s: float = SETTLE_S


async def _strike_when_loaded(
    stack: Stack, scenario: Scenario, load: users.Load, loading: asyncio.Task[None], at: int
) -> Struck:
    while len(load.accepted) < at and not loading.done():  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return await scenario.strike(stack)


def _served_again_s(load: users.Load, struck: Struck) -> float | None:
    """Seconds from the fault until a job accepted after it had completed for its user."""
    ends = [
        job.ended_at
        for job in load.accepted
        if job.end == "done" and job.ended_at and job.accepted_at >= struck.at
    ]
    return round(min(ends) - struck.at, 1) if ends else None


async def run_scenario(
    stack: Stack, settings: Settings, scenario: Scenario, options: Options
) -> dict[str, Any]:
    """One scenario's figures (``skipped`` with the reason where this stack cannot run it)."""
    why = scenario.needs(stack)
    if why is not None:
        return {"scenario": scenario.name, "skipped": why}
    load = users.Load(api_url(stack.state()))
    figures: dict[str, Any] = {"scenario": scenario.name, "fault": scenario.summary}
    before = model_stats(stack) if scenario.strict_calls else None
    started = time.monotonic()
    struck: Struck | None = None
    async with users.session() as http:
        loading = asyncio.create_task(
            users.run(
                load.api,
                scans=options.scans,
                chats=options.chats,
                users=options.users,
                http=http,
                load=load,
            )
        )
        at = max(1, round((options.scans + options.chats) * STRIKE_AT))
        try:
            struck = await _strike_when_loaded(stack, scenario, load, loading, at)
            figures["struck"] = struck.what
            figures["struck_after_s"] = round(struck.at - started, 1)
            healed = await stack.healed(struck)
            figures["healthy_after_s"] = None if healed is None else round(healed, 1)
        except Exception as exc:  # the fault or the recovery failed: said, and counted
            figures["error"] = f"{type(exc).__name__}: {exc}"
        try:
            await loading
        finally:
            restore = struck.details.get("restore") if struck else None
            if restore is not None:
                put_model_config(stack, restore)
        figures["load_s"] = round(time.monotonic() - started, 1)
        figures["served_again_s"] = _served_again_s(load, struck) if struck else None
        stats = model_stats(stack) if scenario.strict_calls else None
        figures |= await audit(settings, load, http, model_stats=stats, settle_s=options.settle_s)
    if stats is not None and before is not None:
        figures["model_calls"] = model_calls_between(before, stats)
    figures["submits_refused_ms_p99"] = quantile(load.submit_ms, 0.99)
    figures["client_saw"] = dict(load.seen.most_common())
    return figures


def model_calls_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The simulator's requests, completions and faults by call kind during the run (its
    counters are the process's totals)."""
    calls: dict[str, Any] = {}
    for kind, now in after["kinds"].items():
        then = before["kinds"].get(kind, {})
        requests = now["requests"] - then.get("requests", 0)
        if not requests:
            continue
        faults = {
            name: n - then.get("faults", {}).get(name, 0) for name, n in now["faults"].items()
        }
        calls[kind] = {
            "requests": requests,
            "completed": now["completed"] - then.get("completed", 0),
            "faults": {name: n for name, n in faults.items() if n},
        }
    return calls


def failed(figures: dict[str, Any]) -> bool:
    """A scenario fails on a loss, a duplicate, or a fault it could not strike or heal from."""
    if "skipped" in figures:
        return False
    if figures.get("error"):
        return True
    if figures["scenario"] == HOSTILE:
        errors = any(t.get("errors") for t in figures.get("targets", {}).values())
        return bool(figures["failures"]) or errors or not figures.get("operations")
    return bool(figures["lost"] or figures["duplicates"])


async def run(names: list[str], options: Options) -> list[dict[str, Any]]:
    state = running_state()
    stack = Stack(state.run_dir)
    settings = running_settings()
    results = []
    for i, name in enumerate(names):
        if i:
            await asyncio.sleep(BETWEEN_S)
        try:
            results.append(await _one(name, state, stack, settings, options))
        except Exception as exc:  # said and counted; the other scenarios still run
            results.append({"scenario": name, "error": f"{type(exc).__name__}: {exc}"})
    return results


async def _one(
    name: str, state: StackState, stack: Stack, settings: Settings, options: Options
) -> dict[str, Any]:
    if name == OVERLOAD:
        return {"scenario": OVERLOAD, **await overload(settings, api_url(state), options.users)}
    if name == HOSTILE:
        from devtools import hostile  # schemathesis: only where this scenario runs

        urls = hostile.stack_urls(state.env, state.api_url)
        report = await asyncio.to_thread(
            hostile.run, urls, examples=HOSTILE_EXAMPLES, seconds=HOSTILE_S
        )
        return {"scenario": HOSTILE, **report}
    return await run_scenario(stack, settings, SCENARIOS[name], options)


def _scenario_names(value: str) -> list[str]:
    if value == "all":
        return list(NAMES)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in NAMES]
    if unknown or not names:
        known = ", ".join(NAMES)
        raise typer.BadParameter(f"unknown scenario {', '.join(unknown)!r}; use all or: {known}")
    return names


def chaos_command(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help=f"all, or one or more (comma-separated) of: {', '.join(NAMES)}.",
        ),
    ] = "all",
    scans: Annotated[int, typer.Option("--scans", min=1, help="Scans per scenario.")] = 200,
    chats: Annotated[int, typer.Option("--chats", min=0, help="Chat messages per scenario.")] = 0,
    users_: Annotated[
        int, typer.Option("--users", min=1, help="Signed-in users sharing the work.")
    ] = 20,
    settle_s: Annotated[
        float, typer.Option("--settle", min=1, help="Seconds the audit waits for stragglers.")
    ] = SETTLE_S,
    json_output: Annotated[bool, typer.Option("--json/--no-json", help="Print JSON.")] = True,
) -> None:
    """Faults against the running local stack under a signed-in load; exit 1 when anything
    accepted was lost or done twice."""
    names = _scenario_names(scenario)
    options = Options(scans=scans, chats=chats, users=users_, settle_s=settle_s)
    results = asyncio.run(run(names, options))
    bad = [r["scenario"] for r in results if failed(r)]
    report = {
        "command": "eco2 chaos "
        f"--scenario {scenario} --scans {scans} --chats {chats} --users {users_}",
        "machine": machine(),
        "scenarios": results,
        "failed": bad,
    }
    if json_output:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        for r in results:
            verdict = "skipped" if "skipped" in r else ("FAILED" if failed(r) else "ok")
            typer.echo(f"{r['scenario']:15} {verdict}  {json.dumps(r, ensure_ascii=False)[:300]}")
    if bad:
        raise typer.Exit(1)
