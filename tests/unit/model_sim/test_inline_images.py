"""The simulator answers an image sent inline (a ``data:`` URL, as the vision stage sends an
image it fetched itself) from the image's bytes, the same way every time."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_from_bytes

from model_sim.config import SimConfig
from model_sim.engine import Simulator
from model_sim.lexicon import default_lexicon
from model_sim.request import parse_chat
from pipelines.scan.stages import vision_catalog
from serve.vision import VisionTask, response_format

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _data_url(body: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(body).decode()}"


def _classification(image_url: str, text: str = "") -> dict[str, object]:
    result = default_lexicon().classify([image_url], text)
    classification: dict[str, object] = result["classification"]
    return classification


def test_the_same_bytes_give_the_same_class_whatever_their_type_or_encoding() -> None:
    first = _classification(_data_url(PNG))

    assert first["major_category"] != "미분류"
    assert _classification(_data_url(PNG, "image/jpeg")) == first
    assert _classification("data:image/png," + quote_from_bytes(PNG)) == first


def test_different_images_spread_over_the_classes() -> None:
    classes = {
        str(_classification(_data_url(PNG + bytes([i]))).get("middle_category")) for i in range(40)
    }
    assert len(classes) > 5


def test_words_in_the_users_text_still_decide() -> None:
    assert _classification(_data_url(PNG), "소주병")["middle_category"] == "유리병"


def test_a_vision_request_with_an_inline_image_is_answered_deterministically() -> None:
    task = VisionTask(vision_catalog())
    body = {
        "model": "gpt-4o-mini",
        "messages": task.messages(_data_url(PNG), None),
        "response_format": response_format(),
    }
    request = parse_chat(json.loads(json.dumps(body)))
    simulator = Simulator(SimConfig())

    answer = json.loads(simulator.content(request))

    assert request.kind.value == "vision"
    assert answer["classification"] == _classification(_data_url(PNG))
    assert json.loads(Simulator(SimConfig()).content(request)) == answer


def test_an_inline_image_counts_as_one_image_not_as_its_base64_text() -> None:
    task = VisionTask(vision_catalog())

    def tokens(image_url: str) -> int:
        body = {"model": "m", "messages": task.messages(image_url, None)}
        return parse_chat(body).prompt_tokens

    big = _data_url(PNG + bytes(300_000))
    assert tokens(big) <= tokens("https://cdn.eco2.local/scan/a.png")
