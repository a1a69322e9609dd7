"""The composition root of the chat ingress: every part of one replica's pipeline, wired once.

Data flows one way: ingress → :class:`~pipelines.chat.intake.ChatIntake` → store and
:class:`~pipelines.jobs.tasks.JobTasks` → :class:`~pipelines.chat.runner.ChatRunner` → stage
handles, tools, store, progress.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from eco2 import cache as valkey
from eco2.db import create_pool
from eco2.ratelimit import Quota, ValkeyRateLimiter
from eco2.settings import Settings
from pipelines.chat import views
from pipelines.chat.inputs import Inputs
from pipelines.chat.intake import ChatIntake
from pipelines.chat.machine import KIND, ChatJob
from pipelines.chat.runner import ChatRunner
from pipelines.chat.stages import ChatStages
from pipelines.chat.store import ChatStore
from pipelines.chat.tools import build_tools
from pipelines.jobs.admission import Admission, LatencyLimit
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.tasks import JobTasks
from pipelines.rules.rulebook import load_rulebook
from serve.intent_cache import IntentCache

POOL_SIZE = (2, 20)


@dataclass
class ChatPipeline:
    intake: ChatIntake
    jobs: JobTasks[ChatJob]
    store: ChatStore
    progress: ProgressBus
    pool: asyncpg.Pool
    http: httpx.AsyncClient
    inputs_client: Any

    async def close(self) -> None:
        await self.progress.close()
        await self.inputs_client.aclose()
        await self.http.aclose()
        await self.pool.close()


async def open_pipeline(
    settings: Settings, text: Any, vision: Any, text_stream: Any
) -> ChatPipeline:
    """Connect and wire the pipeline around the two stage handles (on the replica's loop)."""
    cache_url = settings.cache.require("the chat pipeline")
    pool = await create_pool(settings, KIND, min_size=POOL_SIZE[0], max_size=POOL_SIZE[1])
    progress = ProgressBus(
        valkey.connect(cache_url, max_connections=16), KIND, history_len=views.HISTORY_LEN
    )
    inputs_client = valkey.connect(cache_url, max_connections=64)
    owner = f"chat-ingress-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    store = ChatStore(pool, owner=owner, lease_s=settings.scan.lease_s)
    inputs = Inputs(inputs_client, store)
    http = httpx.AsyncClient(timeout=settings.services.call_timeout_s)
    tools = build_tools(settings, load_rulebook(), http)
    intents = IntentCache(inputs_client, settings.chat.intent_cache_s)
    stages = ChatStages(
        text,
        vision,
        text_stream,
        settings.model.request_timeout_s,
        intents,
        answer_attempts=settings.chat.answer_attempts,
    )
    runner = ChatRunner(store, stages, progress, tools, inputs, settings.chat)
    limit = LatencyLimit(settings.chat.admission, pipeline=KIND)
    jobs = JobTasks(
        store.leases, runner.run, every_s=settings.scan.reconcile_every_s, name=KIND, limit=limit
    )
    limits = settings.rate_limit
    quota = Quota(ValkeyRateLimiter(inputs_client), "chat", limits.chat, limits.timeout_s)
    intake = ChatIntake(
        settings.chat,
        settings.scan.allowed_image_hosts,
        store,
        progress,
        jobs,
        inputs,
        Admission(KIND, limit, quota),
    )
    return ChatPipeline(intake, jobs, store, progress, pool, http, inputs_client)
