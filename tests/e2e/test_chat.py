"""Chat through the gateway, as the web client does it (cookies only): one conversation per
intent with the simulator and the offline tools, the tools overlapping, streamed answers that are
stored whole, human in the loop, resuming a stream, multi-turn summaries, bad input, and one
user never reaching another's chats."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from eco2.migrations import database_dsn
from tests.conftest import StackUrls
from tests.e2e.saga_support import eventually, sign_in
from tests.sse import Event, read_events

pytestmark = pytest.mark.e2e
SEOUL = {"latitude": 37.5665, "longitude": 126.978}


@pytest.fixture
async def browser(browser: httpx.AsyncClient) -> httpx.AsyncClient:
    """The gateway client, signed in as a new user."""
    await sign_in(browser, f"chat-{uuid.uuid4().hex[:6]}")
    return browser


async def new_chat(client: httpx.AsyncClient, title: str | None = None) -> str:
    created = await client.post("/api/v1/chat", json={"title": title} if title else {})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def post(client: httpx.AsyncClient, chat_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/chat/{chat_id}/messages", json=body)


async def ask(
    client: httpx.AsyncClient, chat_id: str, **body: Any
) -> tuple[dict[str, Any], list[Event]]:
    """Post and follow the stream to its end; returns the submit answer and the events."""
    submitted = await post(client, chat_id, **body)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    return job, await read_events(client, job["stream_url"])


def tokens_of(events: list[Event]) -> str:
    return "".join(data["content"] for _, name, data in events if name == "token")


def done_of(events: list[Event]) -> dict[str, Any]:
    assert events[-1][1] == "done", events[-3:]
    result: dict[str, Any] = events[-1][2]["result"]
    return result


INTENT_MESSAGES = [
    ("waste", "무색페트병 어떻게 버려?", {"waste", "weather"}),
    ("character", "페트병 모으면 무슨 캐릭터 받아?", {"character"}),
    ("location", "근처 재활용센터 알려줘", {"location", "weather"}),
    ("bulk_waste", "소파 버리려면 어떻게 해?", {"bulk_waste", "weather"}),
    ("recyclable_price", "캔 시세 얼마야?", {"recyclable_price"}),
    ("collection_point", "폐건전지 수거함 알려줘", {"collection_point"}),
    ("weather", "오늘 날씨 어때?", {"weather"}),
    ("web_search", "분리배출 최신 뉴스 알려줘", {"web_search"}),
    ("image_generation", "페티 그림 그려줘", {"image_generation"}),
    ("general", "안녕 이코!", {"general"}),
]


@pytest.mark.parametrize(("intent", "message", "tools"), INTENT_MESSAGES)
async def test_each_intent_runs_its_tools_streams_and_stores_the_answer(
    browser: httpx.AsyncClient, intent: str, message: str, tools: set[str]
) -> None:
    chat_id = await new_chat(browser)
    job, events = await ask(browser, chat_id, message=message, user_location=SEOUL)
    assert job["stream_url"] == f"/api/v1/chat/{job['job_id']}/events"
    assert job["status"] == "submitted"
    result = done_of(events)
    assert result["status"] == "completed"
    assert result["intent"] == intent
    assert tools <= set(result["tools"]), result["tools"]
    streamed = tokens_of(events)
    assert streamed
    assert streamed == result["answer"]
    names = [name for _, name, _ in events]
    assert names[:2] == ["queued", "intent"]
    assert "aggregator" in names
    assert "answer" in names
    detail = (await browser.get(f"/api/v1/chat/{chat_id}")).json()
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", message),
        ("assistant", streamed),
    ]
    assert detail["messages"][1]["intent"] == intent
    listed = (await browser.get("/api/v1/chat")).json()["chats"]
    mine = next(c for c in listed if c["id"] == chat_id)
    assert (mine["message_count"], mine["preview"][:5]) == (2, streamed[:5])


async def test_a_multi_tool_message_runs_its_tools_at_once(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser)
    message = "근처 재활용센터 어디야? 캔 가격이랑 날씨도 알려줘"
    _, events = await ask(browser, chat_id, message=message, user_location=SEOUL)
    result = done_of(events)
    assert {"location", "recyclable_price", "weather"} <= set(result["tools"])
    latency = result["latency_ms"]
    assert latency["tools_sum"] > latency["tools_slowest"]
    assert latency["tools_wall"] < latency["tools_sum"]  # overlapped, not one after another
    assert "180" in result["answer"] or "1200" in result["answer"]  # the price reached the answer


async def test_a_location_question_without_a_position_asks_and_continues_with_the_reply(
    browser: httpx.AsyncClient,
) -> None:
    chat_id = await new_chat(browser)
    submitted = (await post(browser, chat_id, message="근처 재활용센터 알려줘")).json()
    asked = await read_events(
        browser, submitted["stream_url"], stop=lambda ev: ev[-1][1] == "needs_input"
    )
    question = asked[-1][2]
    assert (question["type"], question["input_url"]) == (
        "location",
        f"/api/v1/chat/{submitted['job_id']}/input",
    )
    reply = await browser.post(question["input_url"], json={"type": "location", "data": SEOUL})
    assert reply.json() == {"status": "received", "job_id": submitted["job_id"]}
    again = await browser.post(question["input_url"], json={"type": "location", "data": SEOUL})
    assert again.status_code == 409
    rest = await read_events(browser, submitted["stream_url"], last_event_id=asked[-1][0])
    result = done_of(rest)
    assert result["tools"]["location"]["status"] == "ok"
    assert result["missing"] == []


async def test_no_reply_within_the_timeout_answers_without_the_position_and_says_so(
    browser: httpx.AsyncClient,
) -> None:
    chat_id = await new_chat(browser)
    _, events = await ask(browser, chat_id, message="근처 재활용센터 알려줘")
    assert "needs_input" in [name for _, name, _ in events]
    result = done_of(events)
    assert result["status"] == "completed"
    assert any("위치" in m for m in result["missing"]), result["missing"]
    assert "알 수 없어요" in result["answer"]


async def test_cancel_ends_the_job_without_an_answer(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser)
    submitted = (await post(browser, chat_id, message="근처 재활용센터 알려줘")).json()
    asked = await read_events(
        browser, submitted["stream_url"], stop=lambda ev: ev[-1][1] == "needs_input"
    )
    input_url = asked[-1][2]["input_url"]
    assert (await browser.post(input_url, json={"type": "cancel"})).status_code == 200
    rest = await read_events(browser, submitted["stream_url"], last_event_id=asked[-1][0])
    assert done_of(rest)["status"] == "cancelled"
    detail = (await browser.get(f"/api/v1/chat/{chat_id}")).json()
    assert [m["role"] for m in detail["messages"]] == ["user"]


async def test_a_dropped_stream_resumes_with_the_answer_so_far(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser)
    submitted = (await post(browser, chat_id, message="캔 시세 얼마야?")).json()
    first = await read_events(
        browser,
        submitted["stream_url"],
        stop=lambda ev: sum(1 for _, name, _ in ev if name == "token") == 2,
    )
    rest = await read_events(browser, submitted["stream_url"], last_event_id=first[-1][0])
    names = [name for _, name, _ in rest]
    assert names[0] in ("token_recovery", "token", "answer", "done"), names
    result = done_of(rest)
    if names[0] == "token_recovery":
        recovered = rest[0][2]["accumulated"] + tokens_of(rest)
    else:
        recovered = tokens_of(first) + tokens_of(rest)
    assert recovered == result["answer"]
    ids = [event_id for event_id, _, _ in first + rest]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))


async def test_older_turns_are_summarised_once_past_the_threshold(
    browser: httpx.AsyncClient, stack: StackUrls
) -> None:
    chat_id = await new_chat(browser)
    long = "분리배출 이야기 " * 110  # ~1,000 characters
    summarised: list[str] = []
    for turn in range(8):
        _, events = await ask(browser, chat_id, message=f"{turn}번째 질문: {long}"[:1000])
        done_of(events)
        if any(name == "summarize" for _, name, _ in events):
            summarised.append(str(turn))
    assert summarised, "no turn summarised the older ones"
    conn = await asyncpg.connect(database_dsn(stack.db_url, "eco2_chat"))
    try:
        row = await conn.fetchrow(
            "SELECT summary, summarised_upto FROM chats WHERE chat_id = $1", uuid.UUID(chat_id)
        )
        kinds = await conn.fetch(
            "SELECT event_type FROM event_store WHERE aggregate_id = $1 ORDER BY aggregate_version",
            chat_id,
        )
    finally:
        await conn.close()
    assert row["summary"]
    assert row["summarised_upto"] > 0
    assert "ChatSummarised" in [k["event_type"] for k in kinds]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": "   "}, 400, "empty_message"),
        ({"message": "가" * 1001}, 400, "message_too_long"),
        ({"message": "hi", "user_location": {"latitude": 91, "longitude": 0}}, 400, "bad_location"),
        ({"message": "hi", "model": "gpt-99"}, 422, "unknown_model"),
        ({"message": "hi", "image_url": "http://10.0.0.1/a.png"}, 400, "invalid_image_url"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    browser: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    chat_id = await new_chat(browser)
    refused = await post(browser, chat_id, **body)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["code"] == code
    assert refused.json()["error"]["message"]
    detail = (await browser.get(f"/api/v1/chat/{chat_id}")).json()
    assert detail["messages"] == []


async def test_the_client_models_are_accepted(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser)
    for model in ("gpt-5.2", "gemini-3-flash-preview"):
        _, events = await ask(browser, chat_id, message="안녕", model=model)
        assert done_of(events)["model"] == model


async def test_a_retried_message_is_stored_once(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser)
    headers = {"X-Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    url = f"/api/v1/chat/{chat_id}/messages"
    first = await browser.post(url, json={"message": "안녕"}, headers=headers)
    second = await browser.post(url, json={"message": "안녕"}, headers=headers)
    assert first.json()["job_id"] == second.json()["job_id"]
    await read_events(browser, first.json()["stream_url"])
    detail = (await browser.get(f"/api/v1/chat/{chat_id}")).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]


async def test_one_user_never_reaches_another_users_chats_or_jobs(stack: StackUrls) -> None:
    assert stack.api_url is not None
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=30) as alice,
        httpx.AsyncClient(base_url=stack.api_url, timeout=30) as bob,
    ):
        await sign_in(alice, "alice")
        await sign_in(bob, "bob")
        chat_id = await new_chat(alice, "앨리스의 대화")
        job, _ = await ask(alice, chat_id, message="안녕")
        refusals = [
            await bob.get(f"/api/v1/chat/{chat_id}"),
            await bob.patch(f"/api/v1/chat/{chat_id}", json={"title": "훔침"}),
            await bob.delete(f"/api/v1/chat/{chat_id}"),
            await post(bob, chat_id, message="끼어들기"),
            await bob.get(job["stream_url"]),
            await bob.get(f"/api/v1/chat/{job['job_id']}/result"),
            await bob.post(f"/api/v1/chat/{job['job_id']}/input", json={"type": "cancel"}),
        ]
        assert [r.status_code for r in refusals] == [404] * len(refusals)
        assert all(chat_id not in c["id"] for c in (await bob.get("/api/v1/chat")).json()["chats"])
        mine = (await alice.get(f"/api/v1/chat/{chat_id}")).json()
        assert mine["title"] == "앨리스의 대화"
        assert len(mine["messages"]) == 2


async def test_rename_delete_and_the_searchable_index(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser, "처음 제목")
    await ask(browser, chat_id, message="알루미늄캔 시세 알려줘")
    assert (
        await browser.patch(f"/api/v1/chat/{chat_id}", json={"title": "캔 팔기"})
    ).status_code == 204

    async def found(query: str) -> list[str] | None:
        items = (await browser.get("/api/v1/chat/search", params={"q": query})).json()["items"]
        ids = [i["id"] for i in items]
        return ids if chat_id in ids else None

    await eventually(lambda: found("알루미늄"), "the chat found by a word of its message")
    await eventually(lambda: found("캔 팔기"), "the chat found by its new title")
    assert (await browser.delete(f"/api/v1/chat/{chat_id}")).status_code == 204
    assert (await browser.get(f"/api/v1/chat/{chat_id}")).status_code == 404

    async def gone() -> bool | None:
        items = (await browser.get("/api/v1/chat/search", params={"q": "알루미늄"})).json()["items"]
        return True if chat_id not in [i["id"] for i in items] else None

    await eventually(gone, "a deleted chat is no longer found")


async def test_the_same_question_is_classified_once_an_hour(browser: httpx.AsyncClient) -> None:
    chat_id = await new_chat(browser)
    message = f"페트병 버리는 법 {uuid.uuid4().hex[:6]}"
    cached = []
    for _ in range(2):
        _, events = await ask(browser, chat_id, message=message)
        intent = next(d for _, n, d in events if n == "intent" and d["status"] == "completed")
        cached.append(intent["cached"])
    assert cached == [False, True]


async def test_the_model_breaking_off_mid_answer_ends_in_error_and_the_message_says_so(
    browser: httpx.AsyncClient, stack: StackUrls
) -> None:
    sim = stack.model_base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=sim, timeout=10) as control:
        config = (await control.get("/sim/config")).raise_for_status().json()
        config["fail_next"] = [{"kind": "text", "fault": "break", "count": 1}]
        (await control.put("/sim/config", json=config)).raise_for_status()
        try:
            chat_id = await new_chat(browser)
            _, events = await ask(browser, chat_id, message="안녕 이코! 오늘 뭐 버릴까?")
        finally:
            config["fail_next"] = []
            (await control.put("/sim/config", json=config)).raise_for_status()
    names = [name for _, name, _ in events]
    assert names[-1] == "error", names
    assert events[-1][2]["stage"] == "answer"
    detail = (await browser.get(f"/api/v1/chat/{chat_id}")).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    stored = detail["messages"][-1]["content"]
    assert stored.startswith(tokens_of(events))
    assert "끝까지" in stored
