"""The gathering phase: every routed intent's tool at once, each under its budget and policy, and
the aggregator that checks each intent's required context (domain.md §9.1-9.2).

The tools run concurrently, so the phase takes about as long as its slowest tool (each capped by
its budget), not the sum. What a failed or late tool means is its intent's policy
(:mod:`pipelines.chat.intents`): nothing (fail-open), a note in ``missing`` that the answer must
mention (fallback), or the end of the job (fail-close, :class:`ClosedFailure`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eco2 import telemetry
from pipelines.chat.intents import INTENTS, IntentSpec, Policy
from pipelines.chat.tools import Tool, ToolFailed, ToolRequest

_tracer = telemetry.tracer(__name__)

Status = Literal["ok", "failed", "timeout", "no_tool"]

MISSING = {
    "waste": "이 물건의 배출 규정",
    "location": "주변 재활용센터·제로웨이스트 가게 (위치를 알 수 없어요)",
    "bulk_waste": "대형폐기물 신고 방법과 수수료",
    "recyclable_price": "재활용품 시세",
    "collection_point": "가까운 수거함 위치",
    "web_search": "최신 검색 결과",
}


class ClosedFailure(Exception):
    """A fail-close intent's tool failed: the job cannot be answered."""


@dataclass(frozen=True)
class Outcome:
    intent: str
    status: Status
    ms: float
    key: str | None = None
    data: dict[str, Any] | None = None
    reason: str | None = None


async def run_tool(
    intent: str, spec: IntentSpec, tool: Tool | None, request: ToolRequest
) -> Outcome:
    """One intent's tool under its budget; never raises (the policy is applied afterwards)."""
    if tool is None:
        return Outcome(intent, "no_tool", 0.0)
    with _tracer.start_as_current_span(
        f"tool {tool.name}",
        attributes={"eco2.intent": intent, "eco2.tool.budget_s": spec.budget_s},
    ) as span:
        outcome = await _timed(intent, spec, tool, request)
        span.set_attribute("eco2.tool.status", outcome.status)
        if outcome.reason:
            span.set_attribute("eco2.tool.reason", outcome.reason)
        return outcome


async def _timed(intent: str, spec: IntentSpec, tool: Tool, request: ToolRequest) -> Outcome:
    started = time.perf_counter()
    try:
        data = await asyncio.wait_for(tool.run(request), spec.budget_s)
    except TimeoutError:
        ms = (time.perf_counter() - started) * 1000
        return Outcome(
            intent, "timeout", ms, tool.name, reason=f"over its {spec.budget_s:g} s budget"
        )
    except ToolFailed as exc:
        ms = (time.perf_counter() - started) * 1000
        return Outcome(intent, "failed", ms, tool.name, reason=str(exc)[:300])
    return Outcome(intent, "ok", (time.perf_counter() - started) * 1000, tool.name, data)


def aggregate(
    intents: Sequence[str],
    outcomes: Sequence[Outcome],
    specs: Mapping[str, IntentSpec] = INTENTS,
) -> dict[str, Any]:
    """The answer's context: the facts gathered, each tool's outcome, and what is missing.

    Raises :class:`ClosedFailure` when a fail-close intent's tool failed."""
    facts: dict[str, Any] = {}
    tools: dict[str, Any] = {}
    missing: list[str] = []
    noted: set[str] = set()
    for outcome in outcomes:
        spec = specs[outcome.intent]
        tools[outcome.intent] = {"status": outcome.status, "ms": round(outcome.ms, 1)}
        if outcome.reason:
            tools[outcome.intent]["reason"] = outcome.reason
        if outcome.status == "ok" and outcome.key is not None:
            facts[outcome.key] = outcome.data
        elif outcome.status in ("failed", "timeout"):
            if spec.policy is Policy.FAIL_CLOSE:
                raise ClosedFailure(f"{outcome.intent}: {outcome.reason}")
            if spec.policy is Policy.FALLBACK:
                missing.append(MISSING.get(outcome.intent, outcome.intent))
                noted.add(outcome.intent)
    for intent in intents:
        required = specs[intent].required
        if required and required not in facts and intent not in noted:
            missing.append(MISSING.get(intent, required))
    return {"intents": list(intents), "facts": facts, "tools": tools, "missing": missing}


def phase_timings(wall_ms: float, outcomes: Sequence[Outcome]) -> dict[str, float]:
    """The tool phase's wall time beside its slowest tool and the sum of all of them."""
    times = [o.ms for o in outcomes if o.status != "no_tool"]
    return {
        "tools_wall": wall_ms,
        "tools_slowest": max(times, default=0.0),
        "tools_sum": sum(times),
    }
