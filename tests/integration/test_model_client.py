"""The pipeline's one model path (:class:`serve.model_client.ModelClient`) against the SIMULATOR.

Real HTTP through the ``openai`` SDK, no Ray: what a stage replica relies on — the parsed
result, the call key, retries that honour ``Retry-After``, one repair of malformed output, and
which failures a later attempt may pass.
"""

from __future__ import annotations

import time

import pytest

from eco2.settings import ModelSettings
from pipelines.scan.stages import vision_catalog
from serve import vision
from serve.contracts import MalformedModelOutput, ModelCallFailed, VisionResult
from serve.model_client import BatchCall, ModelClient
from tests.integration.simulator_process import Sim

TASK = vision.VisionTask(vision_catalog())

pytestmark = pytest.mark.integration

IMAGE = "https://cdn.example/scan/clear-pet-bottle-label.jpg"


@pytest.fixture(autouse=True)
def zero_config(sim: Sim) -> None:
    sim.configure(preset="zero", retry_after_s=1)


async def _classify(sim: Sim, key: str, *, max_retries: int = 3) -> tuple[VisionResult, float]:
    client = ModelClient(ModelSettings(max_retries=max_retries), f"{sim.base}/v1")
    try:
        return await client.complete_json(
            kind="vision",
            model="gpt-5.2",
            messages=TASK.messages(IMAGE, "어떻게 버려?"),
            response_format=vision.response_format(),
            parse=lambda text: TASK.parse(text, "어떻게 버려?"),
            call_key=key,
        )
    finally:
        await client.close()


async def test_a_call_returns_the_parsed_result_and_carries_its_key(sim: Sim) -> None:
    result, elapsed_ms = await _classify(sim, "job-1:vision")

    assert result.classification.major_category == "재활용폐기물"
    assert result.meta.user_input == "어떻게 버려?"
    assert elapsed_ms > 0
    assert sim.stats()["calls_by_key"] == {"job-1:vision": 1}


async def test_a_429_is_retried_after_its_retry_after(sim: Sim) -> None:
    sim.add_faults({"kind": "vision", "fault": "429"})

    started = time.monotonic()
    result, _ = await _classify(sim, "job-2:vision")

    assert result.classification.major_category == "재활용폐기물"
    assert time.monotonic() - started >= 0.9  # Retry-After: 1
    vision_stats = sim.stats()["kinds"]["vision"]
    assert vision_stats["faults"]["429"] == 1
    assert vision_stats["requests"] == 2


async def test_server_errors_beyond_the_retries_fail_as_retriable(sim: Sim) -> None:
    sim.add_faults({"kind": "vision", "fault": "500", "count": 2})

    with pytest.raises(ModelCallFailed) as caught:
        await _classify(sim, "job-3:vision", max_retries=1)

    assert caught.value.retriable is True
    assert "InternalServerError" in str(caught.value)
    assert sim.stats()["kinds"]["vision"]["requests"] == 2


async def test_malformed_output_gets_one_repair(sim: Sim) -> None:
    sim.add_faults({"kind": "vision", "fault": "malformed"})

    result, _ = await _classify(sim, "job-4:vision")

    assert result.classification.major_category == "재활용폐기물"
    assert sim.stats()["kinds"]["vision"]["requests"] == 2


async def test_malformed_output_twice_fails_for_good(sim: Sim) -> None:
    sim.add_faults({"kind": "vision", "fault": "malformed", "count": 2})

    with pytest.raises(ModelCallFailed) as caught:
        await _classify(sim, "job-5:vision")

    assert caught.value.retriable is False
    assert "malformed after one repair" in str(caught.value)
    assert sim.stats()["kinds"]["vision"]["requests"] == 2


def _batch_calls(*keys: str) -> list[BatchCall]:
    return [
        BatchCall(key, "gpt-5.2", TASK.messages(IMAGE, "어떻게 버려?"), vision.response_format())
        for key in keys
    ]


async def test_a_batch_answers_every_line_once_and_leaves_no_file_behind(sim: Sim) -> None:
    client = ModelClient(ModelSettings(), f"{sim.base}/v1")
    try:
        answers = await client.complete_batch(kind="vision", calls=_batch_calls("b-1", "b-2"))
        files = await sim.async_client().files.list()
    finally:
        await client.close()

    assert set(answers) == {"b-1", "b-2"}
    for text in answers.values():
        assert isinstance(text, str)
        parsed = TASK.parse(text, "어떻게 버려?")
        assert parsed.classification.middle_category == "무색페트병"
    assert sim.stats()["calls_by_key"] == {"b-1": 1, "b-2": 1}
    assert files.data == []


async def test_a_failed_batch_line_is_that_line_s_failure_and_says_if_it_may_pass_later(
    sim: Sim,
) -> None:
    sim.add_faults({"kind": "vision", "fault": "429"}, {"kind": "vision", "fault": "malformed"})
    client = ModelClient(ModelSettings(), f"{sim.base}/v1")
    try:
        answers = await client.complete_batch(
            kind="vision", calls=_batch_calls("f-1", "f-2", "f-3")
        )
    finally:
        await client.close()

    throttled, malformed, fine = answers["f-1"], answers["f-2"], answers["f-3"]
    assert isinstance(throttled, ModelCallFailed)
    assert throttled.retriable
    assert "429" in str(throttled)
    assert isinstance(malformed, str)  # a 200 whose text the caller's parser refuses
    with pytest.raises(MalformedModelOutput):
        TASK.parse(malformed, "")
    assert isinstance(fine, str)
    assert sim.stats()["calls_by_key"] == {"f-3": 1}


ANSWER_MESSAGES = [
    {"role": "system", "content": "분리배출 도우미로 짧게 답하세요."},
    {"role": "user", "content": "캔은 어떻게 버려?"},
]


async def _stream(sim: Sim, key: str, *, max_retries: int = 3) -> list[str]:
    client = ModelClient(ModelSettings(max_retries=max_retries), f"{sim.base}/v1")
    try:
        return [
            delta
            async for delta in client.stream_text(
                kind="text", model="gpt-5.2", messages=ANSWER_MESSAGES, call_key=key
            )
        ]
    finally:
        await client.close()


async def test_a_streamed_answer_is_the_same_text_as_the_whole_one_delta_by_delta(
    sim: Sim,
) -> None:
    deltas = await _stream(sim, "job-s1:answer:1")
    client = ModelClient(ModelSettings(), f"{sim.base}/v1")
    try:
        whole, _ = await client.complete_text(
            kind="text", model="gpt-5.2", messages=ANSWER_MESSAGES, call_key="job-s1:whole"
        )
    finally:
        await client.close()

    assert len(deltas) > 1
    assert "".join(deltas) == whole
    assert sim.stats()["calls_by_key"]["job-s1:answer:1"] == 1


async def test_a_stream_that_fails_to_open_is_retried_like_any_call(sim: Sim) -> None:
    sim.add_faults({"kind": "text", "fault": "500"})

    deltas = await _stream(sim, "job-s2:answer:1")

    assert "".join(deltas)
    assert sim.stats()["kinds"]["text"]["requests"] == 2


async def test_a_stream_broken_off_after_it_opened_fails_as_retriable(sim: Sim) -> None:
    sim.add_faults({"kind": "text", "fault": "break"})

    with pytest.raises(ModelCallFailed) as caught:
        await _stream(sim, "job-s3:answer:1")

    assert caught.value.retriable is True
    assert "broke off" in str(caught.value)
    assert sim.stats()["kinds"]["text"]["requests"] == 1
