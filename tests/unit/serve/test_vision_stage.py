"""VisionStage's shell (the class under Serve's decorator, no Ray running): the allow-list comes
from the settings it was built with, and an image refused at fetch never reaches the model."""

from __future__ import annotations

from typing import Any, cast

import pytest

from eco2.settings import Settings
from pipelines.scan.stages import vision_catalog
from serve.contracts import ModelCallFailed, VisionMeta, VisionResult
from serve.stages import VisionStage


class _Model:
    def __init__(self) -> None:
        self.messages: list[list[dict[str, Any]]] = []

    async def complete_json(self, **call: Any) -> tuple[VisionResult, float]:
        self.messages.append(call["messages"])
        return call["parse"](
            '{"classification": {"major_category": "미분류", "middle_category": "미분류"},'
            ' "situation_tags": [], "meta": {"user_input": ""}}'
        ), 1.0


@pytest.fixture
def stage() -> tuple[Any, _Model]:
    settings = Settings.model_validate(
        {
            "model": {"base_url": "http://127.0.0.1:9/v1"},
            "scan": {"allowed_image_hosts": ["img.eco2.example"]},
        }
    )
    built = cast(Any, VisionStage).func_or_class(settings, vision_catalog())
    model = _Model()
    built._client = model
    return built, model


async def _classify(stage: Any, image_url: str) -> tuple[dict[str, Any], float]:
    result: tuple[dict[str, Any], float] = await stage.classify(
        job_id="j1", image_url=image_url, user_input=None, model="m", traceparent=None
    )
    return result


async def test_an_allow_listed_url_reaches_the_model_as_it_is(stage: tuple[Any, _Model]) -> None:
    built, model = stage
    url = "https://img.eco2.example/scan/a.jpg"

    raw, _ = await _classify(built, url)

    assert VisionResult.model_validate(raw).meta == VisionMeta(
        user_input="이 폐기물을 어떻게 분리배출해야 하나요?"
    )
    assert model.messages[0][1]["content"][1]["image_url"]["url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://localhost/a.jpg",  # resolves to loopback (hosts file): refused at fetch
    ],
)
async def test_an_image_refused_at_fetch_fails_the_stage_before_any_model_call(
    stage: tuple[Any, _Model], url: str
) -> None:
    built, model = stage

    with pytest.raises(ModelCallFailed) as refused:
        await _classify(built, url)
    await built._fetcher.close()

    assert (refused.value.retriable, refused.value.kind) == (False, "image")
    assert model.messages == []


async def test_stopping_the_replica_closes_the_image_pool_and_the_model_client() -> None:
    settings = Settings.model_validate({"model": {"base_url": "http://127.0.0.1:9/v1"}})
    built = cast(Any, VisionStage).func_or_class(settings, vision_catalog())
    closed: list[str] = []

    class _Closes:
        def __init__(self, name: str) -> None:
            self.name = name

        async def close(self) -> None:
            closed.append(self.name)

    built._fetcher, built._client = _Closes("images"), _Closes("model")
    await built.aclose()
    assert closed == ["images", "model"]
