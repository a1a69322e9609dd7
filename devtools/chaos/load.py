"""Signed-in virtual users scanning and chatting through the gateway, as careful clients.

A careful client keeps what the service promised visible: a submit refused for now (429, 503)
or dropped on the way is sent again with the same ``X-Idempotency-Key`` (a dropped answer may
hide an accepted job: the key returns the same job), and a job's stream is followed to its
``done`` or ``error`` across dropped connections with ``Last-Event-ID``. Every accepted job is
recorded with how its stream ended, for the audit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from runtime.throttle import SHED_HEADER

SCAN_IMAGE = "https://cdn.eco2.local/scan/clear-pet-bottle-nolabel-empty.jpg"
"""A correctly prepared clear PET bottle: every completed scan of it earns a character."""
CHAT_MESSAGE = "무색 페트병은 어떻게 버려?"
"""A question answered without asking the user anything back (no location needed)."""
STREAM_DEADLINE_S = 240.0
"""A client's patience with one job's stream: a job accepted just before the Ray head died
finishes once the head, Serve and the application are back."""
RETRY_PAUSE_S = 1.0
MAX_RETRY_AFTER_S = 30.0
GIVE_UP_AFTER = 3
"""Submits in a row never accepted before a user gives up (the run then reports fewer jobs
accepted than asked for, and the client's tally says why)."""
TERMINAL = ("done", "error")

Kind = Literal["scan", "chat"]


@dataclass(frozen=True)
class User:
    user_id: str
    headers: dict[str, str]
    """The signed-in cookie, sent with every request."""


@dataclass
class Accepted:
    """One job the service accepted (202), and how its stream ended for the client."""

    kind: Kind
    job_id: str
    user: User
    result_url: str | None
    accepted_at: float
    end: str = "following"
    """``done`` | ``error`` | ``hanging`` (no end within the client's patience)."""
    ended_at: float | None = None
    chat_id: str | None = None

    async def followed(self, http: aiohttp.ClientSession, load: Load, stream_url: str) -> None:
        self.end = await follow(http, load.api, stream_url, self.user, load)
        self.ended_at = time.monotonic()


@dataclass
class Load:
    """What the users saw: the accepted jobs and a tally of every other answer."""

    api: str
    accepted: list[Accepted] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    users: list[User] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)

    def count(self, kind: Kind) -> int:
        return sum(1 for job in self.accepted if job.kind == kind)


def session(concurrency: int = 0) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=STREAM_DEADLINE_S + 30, sock_connect=10)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout)


async def sign_in(http: aiohttp.ClientSession, api: str, prefix: str = "chaos") -> User:
    """A new user through the dev login (retried while the auth service is coming back)."""
    key = f"{prefix}-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + STREAM_DEADLINE_S
    while True:
        try:
            async with http.post(
                f"{api}/api/v1/auth/dev-login", json={"nickname": key[-12:], "user_key": key}
            ) as login:
                if login.status == 200:
                    body = await login.json()
                    cookie = {"Cookie": f"s_access={body['access_token']}"}
                    return User(str(body["user_id"]), cookie)
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not sign in at {api} within {STREAM_DEADLINE_S:.0f} s")
        await asyncio.sleep(RETRY_PAUSE_S)


def _retry_after(value: str | None) -> float:
    """The pause a refusal asks for (seconds), within reason."""
    try:
        return min(MAX_RETRY_AFTER_S, max(RETRY_PAUSE_S, float(value or RETRY_PAUSE_S)))
    except ValueError:
        return RETRY_PAUSE_S


@dataclass(frozen=True)
class Answer:
    """One submit's answer: status (0 when dropped), how long it took, what came back."""

    status: int
    ms: float
    retry_after: str | None = None
    body: Any = None
    shed_by: str | None = None
    """``gateway`` when the gateway's throttle refused it (the service never saw it)."""


async def submit_once(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Answer:
    started = time.perf_counter()
    try:
        async with http.post(url, json=body, headers=headers) as answer:
            payload = await answer.json() if answer.content_type == "application/json" else None
            return Answer(
                answer.status,
                (time.perf_counter() - started) * 1000,
                answer.headers.get("Retry-After"),
                payload,
                answer.headers.get(SHED_HEADER),
            )
    except (aiohttp.ClientError, TimeoutError):
        return Answer(0, (time.perf_counter() - started) * 1000)


async def _submitted(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], user: User, load: Load, kind: Kind
) -> dict[str, Any] | None:
    """POST until accepted (the same key each time), or None when refused for good."""
    headers = {**user.headers, "X-Idempotency-Key": uuid.uuid4().hex}
    deadline = time.monotonic() + STREAM_DEADLINE_S
    while time.monotonic() < deadline:
        answer = await submit_once(http, url, body, headers)
        load.seen[f"{kind} submit {answer.status or 'dropped'}"] += 1
        pause = RETRY_PAUSE_S
        if answer.status in (429, 503):
            load.submit_ms.append(answer.ms)
            pause = _retry_after(answer.retry_after)
        if answer.status == 202:
            return dict(answer.body)
        if 400 <= answer.status < 500 and answer.status != 429:
            load.seen[f"{kind} refused: {str(answer.body)[:120]}"] += 1
            return None  # refused for good: nothing was accepted
        await asyncio.sleep(pause)
    load.seen[f"{kind} never accepted"] += 1
    return None


async def follow(http: aiohttp.ClientSession, api: str, url: str, user: User, load: Load) -> str:
    """Read a job's stream to its terminal event as a browser does (``Last-Event-ID`` on every
    reconnect); ``hanging`` when it never ends within the client's patience."""
    last_id: str | None = None
    deadline = time.monotonic() + STREAM_DEADLINE_S
    while time.monotonic() < deadline:
        headers = {**user.headers, **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            async with http.get(f"{api}{url}", headers=headers) as stream:
                if stream.status != 200:
                    load.seen[f"stream {stream.status}"] += 1
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                async for raw in stream.content:
                    line = raw.decode().strip()
                    if line.startswith("id:"):
                        last_id = line.removeprefix("id:").strip()
                    elif line.startswith("event:") and line[6:].strip() in TERMINAL:
                        return line[6:].strip()
                load.seen["stream ended early"] += 1
        except (aiohttp.ClientError, TimeoutError):
            load.seen["stream dropped"] += 1
            await asyncio.sleep(RETRY_PAUSE_S)
    return "hanging"


async def _scan_once(http: aiohttp.ClientSession, user: User, load: Load) -> bool:
    job = await _submitted(
        http, f"{load.api}/api/v1/scan", {"image_url": SCAN_IMAGE}, user, load, "scan"
    )
    if job is None:
        return False
    accepted = Accepted("scan", job["job_id"], user, job["result_url"], time.monotonic())
    load.accepted.append(accepted)
    await accepted.followed(http, load, job["stream_url"])
    return True


async def _new_chat(http: aiohttp.ClientSession, user: User, load: Load) -> str | None:
    deadline = time.monotonic() + STREAM_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            async with http.post(
                f"{load.api}/api/v1/chat", json={}, headers=user.headers
            ) as created:
                load.seen[f"chat create {created.status}"] += 1
                if created.status == 201:
                    return str((await created.json())["id"])
        except (aiohttp.ClientError, TimeoutError):
            load.seen["chat create dropped"] += 1
        await asyncio.sleep(RETRY_PAUSE_S)
    return None


async def _chat_once(http: aiohttp.ClientSession, user: User, chat_id: str, load: Load) -> bool:
    url = f"{load.api}/api/v1/chat/{chat_id}/messages"
    job = await _submitted(http, url, {"message": CHAT_MESSAGE}, user, load, "chat")
    if job is None:
        return False
    accepted = Accepted("chat", job["job_id"], user, None, time.monotonic(), chat_id=chat_id)
    load.accepted.append(accepted)
    await accepted.followed(http, load, job["stream_url"])
    return True


@dataclass
class Quota:
    """How many jobs of each kind the users still start; ``take`` claims one."""

    left: dict[Kind, int]

    def take(self, kind: Kind) -> bool:
        if self.left.get(kind, 0) <= 0:
            return False
        self.left[kind] -= 1
        return True

    def give_back(self, kind: Kind) -> None:
        if self.left[kind] >= 0:
            self.left[kind] += 1

    def stop(self) -> None:
        """No new job from now on (the ones started run to their ends)."""
        self.left = {kind: -1 for kind in self.left}


UNTIL_STOPPED = 2**62
"""A quota for users that work until :meth:`Quota.stop`."""


async def user(http: aiohttp.ClientSession, load: Load, quota: Quota, kind: Kind) -> None:
    """One user: jobs of ``kind`` one after another (each followed to its end) while the quota
    lasts. A chat user keeps one conversation."""
    me = await sign_in(http, load.api)
    load.users.append(me)
    chat_id = await _new_chat(http, me, load) if kind == "chat" else None
    if kind == "chat" and chat_id is None:
        return
    failures = 0
    while failures < GIVE_UP_AFTER and quota.take(kind):
        if kind == "scan":
            ok = await _scan_once(http, me, load)
        else:
            assert chat_id is not None
            ok = await _chat_once(http, me, chat_id, load)
        failures = 0 if ok else failures + 1
        if not ok:
            quota.give_back(kind)
            await asyncio.sleep(RETRY_PAUSE_S)
    if failures:
        load.seen[f"{kind} user gave up"] += 1


async def run(
    api: str, *, scans: int, chats: int, users: int, http: aiohttp.ClientSession, load: Load
) -> None:
    """``users`` users (chat users in proportion to the chats asked for) until ``scans`` scans
    and ``chats`` chat messages were accepted and followed to their ends."""
    quota = Quota({"scan": scans, "chat": chats})
    chat_users = 0 if not chats else max(1, round(users * chats / max(1, scans + chats)))
    scan_users = 0 if not scans else max(1, users - chat_users)
    await asyncio.gather(
        *(user(http, load, quota, "scan") for _ in range(scan_users)),
        *(user(http, load, quota, "chat") for _ in range(chat_users)),
    )
