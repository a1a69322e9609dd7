"""The chat pipeline's streamed answer: opened again while nothing of it reached the user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipelines.chat import stages as chat_stages
from pipelines.chat.stages import ChatStages
from serve.contracts import ModelCallFailed
from tests.unit.chat.factories import chat_job

HANG = "hang"
FAIL = "fail"
REFUSE = "refuse"


class _Stream:
    """One streamed call: its deltas, then an end as scripted (a hang, a failure)."""

    def __init__(self, deltas: list[str], end: str | None) -> None:
        self.deltas, self.end, self.cancelled = deltas, end, False

    def __aiter__(self) -> AsyncIterator[str]:
        return self._run()

    async def _run(self) -> AsyncIterator[str]:
        for delta in self.deltas:
            yield delta
        if self.end == HANG:
            await asyncio.sleep(3600)
        if self.end == FAIL:
            raise ModelCallFailed("text model stream broke off", retriable=True, kind="text")
        if self.end == REFUSE:
            raise ModelCallFailed("text model refused the request", retriable=False, kind="text")

    def cancel(self) -> None:
        self.cancelled = True


class _TextStream:
    """TextStage's streaming handle: each ``answer.remote`` opens the next scripted stream."""

    def __init__(self, *scripts: tuple[list[str], str | None]) -> None:
        self.scripts = list(scripts)
        self.opened: list[_Stream] = []

    def options(self, **_kwargs: Any) -> _TextStream:
        return self

    @property
    def answer(self) -> _TextStream:
        return self

    def remote(self, **_kwargs: Any) -> _Stream:
        stream = _Stream(*self.scripts[len(self.opened)])
        self.opened.append(stream)
        return stream


async def _answer(handle: _TextStream, attempts: int = 3) -> tuple[list[str], Exception | None]:
    stages = ChatStages(None, None, handle, idle_timeout_s=0.05, answer_attempts=attempts)
    got: list[str] = []
    try:
        async for delta in stages.answer(chat_job(), {}, [], None):
            got.append(delta)
    except ModelCallFailed as exc:
        return got, exc
    return got, None


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_stages, "ANSWER_RETRY_PAUSE_S", 0.0)


async def test_a_stream_that_hangs_or_breaks_before_its_first_token_is_opened_again() -> None:
    handle = _TextStream(([], HANG), ([], FAIL), (["페트병은 ", "비우고 버려요."], None))
    got, error = await _answer(handle)
    assert (got, error) == (["페트병은 ", "비우고 버려요."], None)
    assert [s.cancelled for s in handle.opened] == [True, True, False]


async def test_a_stream_that_fails_after_its_first_token_is_not_opened_again() -> None:
    handle = _TextStream((["페트병은 "], FAIL), (["다시"], None))
    got, error = await _answer(handle)
    assert got == ["페트병은 "]
    assert isinstance(error, ModelCallFailed)
    assert len(handle.opened) == 1


async def test_the_attempts_are_bounded_and_a_refusal_is_not_retried() -> None:
    handle = _TextStream(([], HANG), ([], HANG), ([], HANG), ([], None))
    got, error = await _answer(handle, attempts=3)
    assert got == []
    assert isinstance(error, ModelCallFailed)
    assert "silent" in str(error)
    assert len(handle.opened) == 3

    refused = _TextStream(([], REFUSE), ([], None))
    _, error = await _answer(refused)
    assert isinstance(error, ModelCallFailed)
    assert not error.retriable
    assert len(refused.opened) == 1
