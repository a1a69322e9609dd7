"""Shared fixtures: the embedded stack, started once per test session for the integration and
e2e tiers (``python -m cluster up --detach``).

Set ``ECO2_TEST_STACK_RUN_DIR`` to the run dir of a stack you already started
(``ECO2_RUN_DIR=... eco2 up --detach``, with :data:`TEST_STACK_ENV` in its environment) to
reuse it across test runs: then the fixture neither starts nor stops anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cluster.state import StackState, read_state
from eco2.migrations import database_dsn, migrate_all_async
from eco2.settings import Settings

REPO = Path(__file__).resolve().parents[1]
UP_TIMEOUT_S = 600  # eco2 up's own deadlines end it sooner; this only bounds a hang


@dataclass(frozen=True)
class StackUrls:
    """Where the parts of a running test stack answer."""

    run_dir: Path
    db_url: str
    """Server DSN (database ``postgres``); domain databases via ``eco2.migrations.database_dsn``."""
    cache_url: str
    kafka_bootstrap: str
    ray_address: str
    model_base_url: str
    api_url: str | None
    dashboard_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    """The ``ECO2_*`` variables a child process of this stack would get."""

    @classmethod
    def from_state(cls, state: StackState) -> StackUrls:
        env = state.env
        return cls(
            run_dir=Path(state.run_dir),
            db_url=env["ECO2_DB__URL"],
            cache_url=env["ECO2_CACHE__URL"],
            kafka_bootstrap=env["ECO2_KAFKA__BOOTSTRAP"],
            ray_address=env["ECO2_RAY__ADDRESS"],
            model_base_url=env["ECO2_MODEL__BASE_URL"],
            api_url=state.api_url,
            dashboard_url=state.dashboard_url,
            env=dict(env),
        )


def short_run_dir(prefix: str) -> Path:
    """A run dir short enough for Ray's and PostgreSQL's unix sockets to live inside it."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


UNREACHABLE_RATE_RULE = '{"limit": 1000000, "period_s": 60, "burst": 100000}'
TEST_STACK_ENV = {
    "ECO2_CHAT__INPUT_TIMEOUT_S": "5",
    **{
        f"ECO2_RATE_LIMIT__{action}": UNREACHABLE_RATE_RULE for action in ("SCAN", "CHAT", "UPLOAD")
    },
}
"""Settings of the test stack that differ from a developer's: a chat job waits 5 s (not 30) for
the user's reply to ``needs_input``, so the timeout test is quick; the per-user rate limits are
raised out of reach (a few virtual users submit far faster than people do) but stay on, so every
submit still goes through the limiter. A stack reused through ``ECO2_TEST_STACK_RUN_DIR`` needs
the same variables when it is started."""


def cluster_cli(
    run_dir: Path, *args: str, timeout: float = UP_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cluster <args>`` against ``run_dir``."""
    env = {**os.environ, **TEST_STACK_ENV, "ECO2_RUN_DIR": str(run_dir)}
    return subprocess.run(
        [sys.executable, "-m", "cluster", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_stack(run_dir: Path, *up_args: str) -> StackUrls:
    result = cluster_cli(run_dir, "up", "--detach", *up_args)
    if result.returncode != 0:
        cluster_cli(run_dir, "down")
        pytest.fail(f"eco2 up --detach failed:\n{result.stdout}\n{result.stderr}")
    state = read_state(run_dir)
    assert state is not None, result.stdout
    assert state.phase == "up", result.stdout
    return StackUrls.from_state(state)


OWN_STACK_FIRST = "own_stack_first"
FIRST_ON_STACK, LAST_ON_STACK = "first_on_stack", "last_on_stack"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``own_stack_first`` start a stack of their own and run before any other,
    so no second stack shares the two cores while theirs starts (beside a busy session stack,
    Ray's head once missed its own 30 s for the raylet to register). Then tests marked
    ``first_on_stack``, so they meet the session stack the moment ``eco2 up`` returned (the
    stack fixture starts on first use); tests marked ``last_on_stack`` run after every other,
    because they restart the stack."""

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker(OWN_STACK_FIRST) is not None:
            return -1
        if item.get_closest_marker(FIRST_ON_STACK) is not None:
            return 0
        return 2 if item.get_closest_marker(LAST_ON_STACK) is not None else 1

    items.sort(key=order)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    reuse = os.environ.get("ECO2_TEST_STACK_RUN_DIR")
    if reuse:
        state = read_state(Path(reuse).resolve())
        if state is None or state.phase != "up":
            pytest.fail(f"ECO2_TEST_STACK_RUN_DIR={reuse}: no stack is up there")
        yield StackUrls.from_state(state)
        return
    run_dir = short_run_dir("e2s-")
    try:
        yield start_stack(run_dir)
    finally:
        cluster_cli(run_dir, "down")
        shutil.rmtree(run_dir, ignore_errors=True)


class ByRoute(httpx.AsyncBaseTransport):
    """Sends each request straight to the service the gateway's route table names (Ray Serve for
    commands, the read side for streams and results), past the gateway and its sign-in check;
    paths the gateway never routes (``/api/v1/admin``) go to Ray Serve."""

    def __init__(self, urls: dict[str, str]) -> None:
        self._urls = {name: httpx.URL(url) for name, url in urls.items()}
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from runtime.routes import route_of

        route = route_of(request.url.path)
        base = self._urls[route.service if route else "serve"]
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def pipeline_client(stack: StackUrls) -> httpx.AsyncClient:
    """A client of ``stack``'s pipelines past the gateway (Ray Serve for commands, the read side
    for streams and results): its callers send X-User-ID themselves."""
    urls = {name: stack.env[f"ECO2_SERVICES__{name.upper()}_URL"] for name in ("serve", "streams")}
    return httpx.AsyncClient(base_url="http://pipeline", transport=ByRoute(urls), timeout=30)


@pytest.fixture(scope="session")
async def scan_api(stack: StackUrls) -> AsyncIterator[httpx.AsyncClient]:
    async with pipeline_client(stack) as client:
        yield client


@pytest.fixture(scope="session")
async def simulator(stack: StackUrls) -> AsyncIterator[httpx.AsyncClient]:
    base = stack.model_base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def scan_db_dsn(stack: StackUrls) -> str:
    return database_dsn(stack.db_url, "eco2_scan")


def stack_settings(stack: StackUrls, **overrides: object) -> Settings:
    """Settings as a child process of ``stack`` would load them, with ``overrides`` on top.

    Tests build settings explicitly (style.md habit 8) instead of reading the environment.
    """
    values: dict[str, object] = {
        "environment": "test",
        "run_dir": stack.run_dir,
        "db": {"url": stack.db_url},
        "cache": {"url": stack.cache_url},
        "kafka": {"bootstrap": stack.kafka_bootstrap},
        "ray": {"address": stack.ray_address},
        "model": {"base_url": stack.model_base_url},
        "services": {
            key.removeprefix("ECO2_SERVICES__").lower(): value
            for key, value in stack.env.items()
            if key.startswith("ECO2_SERVICES__") and key.endswith("_URL")
        },
    }
    for section, value in overrides.items():
        current = values.get(section)
        if isinstance(current, dict) and isinstance(value, dict):
            values[section] = {**current, **value}
        else:
            values[section] = value
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def settings(stack: StackUrls) -> Settings:
    """The stack's settings, with every domain database migrated to this checkout's schema
    (a reused stack may predate a migration)."""
    built = stack_settings(stack)
    await migrate_all_async(stack.db_url, built)
    return built
