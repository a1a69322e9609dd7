"""One trace per scan and per chat message, stored in the stack's trace backend (Phoenix) and
rendered by ``eco2 trace``: every hop from the gateway to the last saga consumer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, StackUrls
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in
from tests.e2e.test_chat import SEOUL, ask, done_of, new_chat

pytestmark = pytest.mark.e2e


@pytest.fixture
async def browser(browser: httpx.AsyncClient) -> httpx.AsyncClient:
    """The gateway client, signed in as a new user."""
    await sign_in(browser, f"trace-{uuid.uuid4().hex[:6]}")
    return browser


def eco2_trace(stack: StackUrls, ref: str) -> tuple[int, dict[str, Any] | None, str]:
    """``python -m cluster trace REF --json`` against the stack's run dir."""
    env = {**os.environ, "ECO2_RUN_DIR": str(stack.run_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "cluster", "trace", ref, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else None, done.stderr


async def trace_with(stack: StackUrls, ref: str, *names: str) -> dict[str, Any]:
    """The trace of ``ref`` once a span named by each of ``names`` (prefixes; a name given
    twice needs two spans) has arrived."""

    async def complete() -> dict[str, Any] | None:
        code, body, _ = await asyncio.to_thread(eco2_trace, stack, ref)
        if code != 0 or body is None:
            return None
        seen = [span["name"] for span in body["spans"]]
        wanted = {n: names.count(n) for n in names}
        arrived = all(sum(s.startswith(n) for s in seen) >= k for n, k in wanted.items())
        return body if arrived else None

    # Phoenix stores spans behind the stack's load: minutes behind on two loaded cores.
    return await eventually(complete, f"the spans {names} of {ref} in eco2 trace", 180.0)


def by_name(trace: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [span for span in trace["spans"] if span["name"].startswith(prefix)]


async def test_one_scan_is_one_trace_from_the_gateway_to_the_saga_consumers(
    stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    result = await rewarded_scan(browser)
    job_id = result["task_id"]

    trace = await trace_with(
        stack,
        job_id,
        "POST /api/v1/scan",  # the gateway's span,
        "POST /api/v1/scan",  # and the ingress's own request span under it
        "scan.submit",
        "scan.vision",
        "model.vision",
        "scan.answer",
        "model.answer",
        "commit scan_jobs",
        "publish outbox.event.scan",
        "consume character.rewards",  # the saga's step in the character domain
        "publish outbox.event.character",
        "consume readmodel.scan_history",
    )

    assert result["reward"] is not None
    roots = [span for span in trace["spans"] if span["depth"] == 0]
    assert [span["name"] for span in roots] == ["POST /api/v1/scan"]  # everything under it
    # The gateway verified the token; ext-authz was asked unless it allowed it a moment ago
    # (this user's earlier request), and then its check is in the trace, under the gateway.
    said = roots[0]["attributes"]["eco2.authz"]
    checks = [span["parent_id"] for span in by_name(trace, "POST /check")]
    assert (said, checks) in (("asked", [roots[0]["span_id"]]), ("remembered", []))
    stages = {
        span["attributes"]["eco2.stage"]: span
        for span in by_name(trace, "scan.")
        if "eco2.stage" in span["attributes"]
    }
    assert stages["vision"]["attributes"]["eco2.job_id"] == job_id
    model = by_name(trace, "model.vision")[0]
    assert model["parent_id"] == stages["vision"]["span_id"]  # the model call nests in its stage
    assert model["attributes"]["gen_ai.usage.input_tokens"] > 0
    consumed = by_name(trace, "consume character.rewards")[0]
    assert consumed["attributes"]["eco2.inbox"] == "miss"
    publishes = {span["span_id"] for span in by_name(trace, "publish ")}
    assert consumed["parent_id"] in publishes  # each event handled under its publish
    assert all(span["duration_ms"] >= 0 for span in trace["spans"])

    code, _, stderr = await asyncio.to_thread(eco2_trace, stack, str(uuid.uuid4()))
    assert code == 1
    assert "no scan or chat job" in stderr


async def test_a_chat_message_s_tools_are_sibling_spans_under_its_gather_step(
    stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    chat_id = await new_chat(browser)
    message = "근처 재활용센터 어디야? 캔 가격이랑 날씨도 알려줘"
    job, events = await ask(browser, chat_id, message=message, user_location=SEOUL)
    done_of(events)

    trace = await trace_with(
        stack, job["job_id"], "chat.classify", "chat.gather", "chat.answer", "tool ", "model."
    )

    gather = by_name(trace, "chat.gather")[0]
    tools = by_name(trace, "tool ")
    assert len(tools) >= 3
    assert {tool["parent_id"] for tool in tools} == {gather["span_id"]}
    starts = sorted(tool["offset_ms"] for tool in tools)
    shortest = min(tool["duration_ms"] for tool in tools)
    assert starts[-1] - starts[0] < shortest  # they ran at once, not one after another
