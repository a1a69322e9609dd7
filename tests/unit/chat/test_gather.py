"""Tools run at once, each under its budget; their failures follow their intent's policy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pipelines.chat.gather import ClosedFailure, aggregate, phase_timings, run_tool
from pipelines.chat.intents import IntentSpec, Policy
from pipelines.chat.tools import ToolFailed, ToolRequest

REQUEST = ToolRequest("페트병 어떻게 버려?", "waste")


class Slow:
    def __init__(self, name: str, seconds: float, fail: bool = False) -> None:
        self.name, self.seconds, self.fail = name, seconds, fail

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        await asyncio.sleep(self.seconds)
        if self.fail:
            raise ToolFailed("upstream said 500")
        return {"ok": True}


SPECS = {
    "open": IntentSpec("open", 0.2, Policy.FAIL_OPEN),
    "fallback": IntentSpec("fallback", 0.2, Policy.FALLBACK, required="fallback_ctx"),
    "close": IntentSpec("close", 0.2, Policy.FAIL_CLOSE),
}


async def _gathered(tools: dict[str, Slow]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(run_tool(name, SPECS[name], tool, REQUEST) for name, tool in tools.items())
    )
    wall = time.perf_counter() - started
    return aggregate(list(tools), outcomes, SPECS), wall


async def test_tools_overlap_so_the_phase_takes_the_slowest_not_the_sum() -> None:
    tools = {
        "open": Slow("open_ctx", 0.15),
        "fallback": Slow("fallback_ctx", 0.15),
    }
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(run_tool(name, SPECS[name], tool, REQUEST) for name, tool in tools.items())
    )
    wall_ms = (time.perf_counter() - started) * 1000
    timings = phase_timings(wall_ms, outcomes)
    assert timings["tools_sum"] >= 290
    assert wall_ms < timings["tools_slowest"] * 1.5  # together, not one after the other


@pytest.mark.parametrize("slow", [True, False], ids=["slow", "failing"])
async def test_fail_open_goes_on_without_a_word(slow: bool) -> None:
    tool = Slow("open_ctx", 1.0) if slow else Slow("open_ctx", 0.0, fail=True)
    context, wall = await _gathered({"open": tool})
    assert context["tools"]["open"]["status"] == ("timeout" if slow else "failed")
    assert context["missing"] == []
    assert context["facts"] == {}
    assert wall < 0.5  # the budget cut the slow one


@pytest.mark.parametrize("slow", [True, False], ids=["slow", "failing"])
async def test_fallback_goes_on_and_says_what_is_missing(slow: bool) -> None:
    tool = Slow("fallback_ctx", 1.0) if slow else Slow("fallback_ctx", 0.0, fail=True)
    context, _ = await _gathered({"fallback": tool})
    assert context["missing"] == ["fallback"]
    assert "reason" in context["tools"]["fallback"]


@pytest.mark.parametrize("slow", [True, False], ids=["slow", "failing"])
async def test_fail_close_ends_the_job(slow: bool) -> None:
    tool = Slow("close_ctx", 1.0) if slow else Slow("close_ctx", 0.0, fail=True)
    with pytest.raises(ClosedFailure, match="close"):
        await _gathered({"close": tool})


async def test_facts_of_tools_that_answered_are_kept_by_their_context_key() -> None:
    context, _ = await _gathered(
        {"open": Slow("open_ctx", 0.0), "fallback": Slow("fallback_ctx", 0)}
    )
    assert context["facts"] == {"open_ctx": {"ok": True}, "fallback_ctx": {"ok": True}}
    assert context["missing"] == []
    assert {t["status"] for t in context["tools"].values()} == {"ok"}
