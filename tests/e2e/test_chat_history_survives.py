"""A conversation outlives the stack: after ``eco2 down && eco2 up`` the chat and its messages
are still there (PostgreSQL), and the chat index rebuilt from the event stores finds them again.
Runs last: it restarts the session stack (its ports change; later tests would see stale URLs)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from cluster.state import read_state
from tests.conftest import REPO, TEST_STACK_ENV, StackUrls, cluster_cli
from tests.e2e.saga_support import eventually
from tests.sse import read_events

pytestmark = [pytest.mark.e2e, pytest.mark.last_on_stack]


def _cdc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eco2.cli", "cdc", *args],
        cwd=REPO,
        env={**os.environ, **TEST_STACK_ENV, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def _sign_in(browser: httpx.AsyncClient, key: str) -> None:
    login = await browser.post(
        "/api/v1/auth/dev-login", json={"nickname": "survivor", "user_key": key}
    )
    assert login.status_code == 200, login.text


async def test_history_survives_a_restart_and_a_read_model_rebuild(stack: StackUrls) -> None:
    if os.environ.get("ECO2_TEST_STACK_RUN_DIR"):
        pytest.skip("a reused stack (ECO2_TEST_STACK_RUN_DIR) is not restarted by the tests")
    word, key = f"단어{uuid.uuid4().hex[:6]}", f"survivor-{uuid.uuid4().hex[:8]}"
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as browser:
        await _sign_in(browser, key)
        created = await browser.post("/api/v1/chat", json={"title": f"{word} 대화"})
        chat_id = created.json()["id"]
        job = await browser.post(f"/api/v1/chat/{chat_id}/messages", json={"message": "캔 시세?"})
        await read_events(browser, job.json()["stream_url"])
        before = (await browser.get(f"/api/v1/chat/{chat_id}")).json()["messages"]
    assert [m["role"] for m in before] == ["user", "assistant"]

    assert cluster_cli(stack.run_dir, "down").returncode == 0
    up = cluster_cli(stack.run_dir, "up", "--detach")
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(stack.run_dir)
    assert state is not None
    assert state.api_url is not None

    async with httpx.AsyncClient(base_url=state.api_url, timeout=30) as browser:
        await _sign_in(browser, key)
        after = (await browser.get(f"/api/v1/chat/{chat_id}")).json()["messages"]
        assert after == before
        rebuilt = _cdc({**state.env, "ECO2_RUN_DIR": str(stack.run_dir)}, "rebuild", "chat_index")
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr

        async def found() -> list[str] | None:
            items = (await browser.get("/api/v1/chat/search", params={"q": word})).json()["items"]
            ids = [i["id"] for i in items]
            return ids if chat_id in ids else None

        await eventually(found, "the chat found in the rebuilt index")
