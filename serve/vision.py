"""Vision stage logic: what the model is shown of the image, the classification prompt and the
parsing of the model's answer.

Plain Python (no Ray, no HTTP client: :class:`ImageGate` is handed the fetch): the Serve
deployment and the unit tests share it. What the model may answer (the category listing and the
situation tags) is a :class:`VisionCatalog` the composing pipeline hands in; this package knows
no dataset itself.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from eco2 import url_guard
from eco2.errors import Eco2Error
from serve import contracts
from serve.contracts import (
    DEFAULT_QUESTION,
    Classification,
    MalformedModelOutput,
    ModelCallFailed,
    VisionMeta,
    VisionResult,
    json_schema_for,
)

SCHEMA_NAME = "vision_result"


@dataclass(frozen=True)
class VisionCatalog:
    """The labels the vision model chooses from (domain.md §3-4), kept byte for byte."""

    categories: Mapping[str, Any]
    """Major → its middles (recyclables: middle → items) or its items, as the prompt lists them."""
    situation_tags: tuple[str, ...]
    unclassified: str
    """The major (and middle) for something that cannot be classified."""


FETCH_ATTEMPTS = 3
FETCH_BACKOFF_S = 0.5


class ImageGate:
    """Turns a job's ``image_url`` into what the model may be handed, checked just now.

    A URL on an allow-listed host (our own CDN) goes to the model as it is: a prefix match on
    the canonical ``http(s)://host/`` forms, else one parse. Any other URL is fetched by
    ``inline`` (in production :meth:`eco2.safe_fetch.ImageFetcher.data_url`, which checks the
    addresses it connects to and every redirect) and the model gets the bytes as a ``data:``
    URL, so it never fetches a URL checked only at submit (DNS rebinding, redirects).

    :meth:`for_model` raises :class:`ModelCallFailed` (``kind="image"``) when the URL is
    refused or cannot be fetched: not retriable when the same URL would be refused again
    (bad shape, private address, redirect loop, not an image, too large), retriable when the
    fetch may pass later (timeouts, 5xx).
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        inline: Callable[[str], Awaitable[str]],
        *,
        attempts: int = FETCH_ATTEMPTS,
        backoff_s: float = FETCH_BACKOFF_S,
    ):
        self._allowed = frozenset(h.lower() for h in allowed_hosts)
        self._direct = tuple(
            f"{s}://{h}/" for h in sorted(self._allowed) for s in ("https", "http")
        )
        self._inline = inline
        self._attempts, self._backoff_s = attempts, backoff_s

    async def for_model(self, image_url: str) -> str:
        if image_url.startswith(self._direct):
            return image_url
        try:
            _, allow_listed = url_guard.check_shape(image_url, self._allowed)
            if allow_listed:
                return image_url
            # A fetch that may pass later (a timeout, 5xx, a resolver failing for now) is tried
            # again here: the stage call is not, and the job would be dead-lettered at once.
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential_jitter(initial=self._backoff_s, max=4 * self._backoff_s),
                retry=retry_if_exception(lambda e: isinstance(e, Eco2Error) and e.retriable),
                reraise=True,
            ):
                with attempt:
                    return await self._inline(image_url)
        except Eco2Error as exc:
            raise ModelCallFailed(
                f"image not fetched: {exc}", retriable=exc.retriable, kind="image"
            ) from exc
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover


def _system_prompt(catalog: VisionCatalog) -> str:
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    return "\n".join(
        [
            "당신은 한국 생활폐기물 분리배출 기준에 맞춰 사진 속 물건을 분류하는 분류기입니다.",
            "정확히 네 가지만 하세요:",
            "1) 아래 목록에서 대분류(major_category)와 중분류(middle_category)를 고르고, "
            "소분류(minor_category)는 보이는 품목 이름으로 적되 모르면 null.",
            "   재활용폐기물이 아니면 중분류는 대분류와 같게 적습니다.",
            "2) 상황 태그(situation_tags)는 아래 목록에 있는 것 중 "
            "사진에서 확인되는 것만 고릅니다.",
            "3) 사용자의 말을 meta.user_input 에 그대로 옮깁니다.",
            "4) 설명 없이 JSON 하나만 답합니다.",
            "물건이 불분명하거나 여러 개가 찍혔으면 미분류_소분류 태그를 붙이고, "
            f"판단할 수 없으면 대분류와 중분류를 {catalog.unclassified}로 둡니다.",
            "",
            "[분류 목록]",
            json.dumps(dict(catalog.categories), **compact),  # type: ignore[arg-type]
            "",
            "[상황 태그 목록]",
            json.dumps(list(catalog.situation_tags), **compact),  # type: ignore[arg-type]
        ]
    )


def user_question(user_input: str | None) -> str:
    text = (user_input or "").strip()
    return text or DEFAULT_QUESTION


def response_format() -> dict[str, Any]:
    return contracts.response_format(SCHEMA_NAME, json_schema_for(VisionResult))


class VisionTask:
    """Prompt and parser for one catalog (the system prompt is built once)."""

    def __init__(self, catalog: VisionCatalog) -> None:
        self.catalog = catalog
        self._system = _system_prompt(catalog)
        self._known_tags = frozenset(catalog.situation_tags)

    def messages(self, image_url: str, user_input: str | None) -> list[dict[str, Any]]:
        """Chat-completions messages for one classification (image at ``detail: low``)."""
        return [
            {"role": "system", "content": self._system},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": user_question(user_input)},
                    {"type": "image_url", "image_url": {"url": image_url, "detail": "low"}},
                ],
            },
        ]

    def parse(self, text: str, user_input: str | None) -> VisionResult:
        """The typed result of the model's ``text``.

        Unknown tags are dropped and an empty major becomes the catalog's unclassified label
        (spelling variants are left to the pipeline's rule lookup, which finds no rule for a
        class it does not know); the echoed user text is always the user's own. Raises
        :class:`MalformedModelOutput` when the text is not a JSON object of the expected shape.
        """
        try:
            # One parser that raises only ValidationError: json.loads also lets RecursionError
            # (deep nesting) and ValueError (over-long integers) escape.
            result = VisionResult.model_validate_json(text)
        except ValidationError as exc:
            raise MalformedModelOutput(
                f"vision output is not a valid {SCHEMA_NAME}: {exc}"
            ) from exc
        tags = list(dict.fromkeys(t for t in result.situation_tags if t in self._known_tags))
        c = result.classification
        classification = Classification(
            major_category=c.major_category.strip() or self.catalog.unclassified,
            middle_category=c.middle_category.strip(),
            minor_category=(c.minor_category or "").strip() or None,
        )
        return VisionResult(
            classification=classification,
            situation_tags=tags,
            meta=VisionMeta(user_input=user_question(user_input)),
        )
