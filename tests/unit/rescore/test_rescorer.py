"""One scan rescored through the real prompts, parsers, rule lookup and reward policy, with a
fake model client that answers canned JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from eco2 import url_guard
from pipelines.jobs.status import JobStatus
from pipelines.rescore.budget import Budget, Usage
from pipelines.rescore.options import Plan
from pipelines.rescore.rescorer import Rescorer, stored_outcome
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.machine import Policy
from pipelines.scan.stages import vision_catalog
from serve.contracts import ModelCallFailed
from serve.model_client import BatchCall, ModelClient
from serve.vision import ImageGate, VisionTask
from tests.unit.scan.factories import clean_answer, job, vision

STAGES = ("vision", "answer")
PET_VISION = {
    "classification": {"major_category": "재활용폐기물", "middle_category": "무색페트병"},
    "situation_tags": ["내용물_없음"],
    "meta": {"user_input": "x"},
}
CLEAN_ANSWER = {"disposal_steps": {"단계1": "비워요"}, "insufficiencies": [], "user_answer": "좋아"}


def _canned(kind: str) -> str:
    return json.dumps(PET_VISION if kind == "vision" else CLEAN_ANSWER)


class FakeModel:
    """Answers each kind with canned JSON through the caller's own parser; a batch line whose
    custom_id is in ``spoiled`` comes back malformed, one in ``refused`` as a failed line."""

    def __init__(
        self, spoiled: frozenset[str] = frozenset(), refused: frozenset[str] = frozenset()
    ) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.batches: list[tuple[str, list[str]]] = []
        self.images: list[str] = []
        """Every image URL a vision call was handed."""
        self.spoiled, self.refused = spoiled, refused

    async def complete_json(
        self,
        *,
        kind: str,
        parse: Callable[[str], Any],
        call_key: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> tuple[Any, float]:
        self.calls.append((kind, call_key))
        self.images += _image_urls(messages)
        return parse(_canned(kind)), 1.0

    async def complete_batch(
        self, *, kind: str, calls: list[BatchCall]
    ) -> dict[str, str | ModelCallFailed]:
        self.batches.append((kind, [call.custom_id for call in calls]))
        for call in calls:
            self.images += _image_urls(call.messages)
        answers: dict[str, str | ModelCallFailed] = {}
        for call in calls:
            if call.custom_id in self.refused:
                answers[call.custom_id] = ModelCallFailed("500", retriable=True, kind=kind)
            else:
                text = _canned(kind)
                answers[call.custom_id] = text[:10] if call.custom_id in self.spoiled else text
        return answers


def _image_urls(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["image_url"]["url"]] if value.get("type") == "image_url" else []
        return found + [url for item in value.values() for url in _image_urls(item)]
    if isinstance(value, list):
        return [url for item in value for url in _image_urls(item)]
    return []


class FakeFetch:
    """The gate's fetch: ``data:`` URLs for the hosts it serves, a refusal for the rest."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    async def __call__(self, url: str) -> str:
        self.fetched.append(url)
        if url.startswith("https://photos.example/"):
            return "data:image/png;base64,AAAA"
        raise url_guard.refusal("image_url host resolves to a private address")


def _stored_plastic_job(**fields: Any) -> Any:
    rules = load_rulebook()
    stored = vision(middle="플라스틱류").model_dump(mode="json")
    return job(
        status=JobStatus.COMPLETED,
        stage="done",
        vision_result=stored,
        rule_id="재활용폐기물_플라스틱류" if "재활용폐기물_플라스틱류" in rules.rules else None,
        answer_result=clean_answer().model_dump(mode="json"),
        reward=None,
        **fields,
    )


def _rescorer(
    stages: tuple[str, ...],
    model: FakeModel,
    fetch: FakeFetch | None = None,
    *,
    catalog: bool = True,
) -> Rescorer:
    rules = load_rulebook()
    plan = Plan(run_id="rs-test", stages=stages, model=None, rules_version=rules.version)
    rescorer = Rescorer(cast(ModelClient, model), Policy(rules=rules), plan, Budget(None, None))
    if catalog:
        gate = ImageGate(("cdn.eco2.local",), fetch or FakeFetch(), backoff_s=0)
        rescorer.use_catalog(VisionTask(vision_catalog()), gate)
    return rescorer


def test_a_reclassified_scan_gets_the_new_rule_and_reward_and_says_what_changed() -> None:
    model, usage = FakeModel(), Usage()
    stored = _stored_plastic_job()
    rescored = asyncio.run(_rescorer(("vision", "answer"), model).rescore(stored, usage))
    assert rescored.previous == stored_outcome(stored)
    assert rescored.current.label == "재활용폐기물/무색페트병"
    assert rescored.current.rule_id == "재활용폐기물_무색페트병"
    assert rescored.current.reward == "char-petty"
    assert set(rescored.changed) == {"label", "rule", "reward"}
    assert [kind for kind, _ in model.calls] == ["vision", "answer"]
    assert all(key and key.startswith(f"rs-test:{stored.job_id}:") for _, key in model.calls)
    assert usage.requests == 2
    assert usage.tokens > 0


def test_answer_alone_keeps_the_stored_classification() -> None:
    model = FakeModel()
    stored = _stored_plastic_job()
    rescored = asyncio.run(_rescorer(("answer",), model).rescore(stored, Usage()))
    assert rescored.current.label == "재활용폐기물/플라스틱류"
    assert "label" not in rescored.changed
    assert all(kind == "answer" for kind, _ in model.calls)


def test_vision_alone_decides_from_the_stored_answer_without_an_answer_call() -> None:
    model = FakeModel()
    rescored = asyncio.run(_rescorer(("vision",), model).rescore(_stored_plastic_job(), Usage()))
    assert [kind for kind, _ in model.calls] == ["vision"]
    assert rescored.current.reward == "char-petty"  # the stored answer had no insufficiency


def test_a_batch_rescores_each_row_as_the_online_path_does_with_one_job_per_stage() -> None:
    rows = [_stored_plastic_job() for _ in range(3)]
    online = [asyncio.run(_rescorer(STAGES, FakeModel()).rescore(r, Usage())) for r in rows]
    model = FakeModel()
    usages = {str(r.job_id): Usage() for r in rows}

    batched = asyncio.run(_rescorer(STAGES, model).rescore_batch(rows, usages))

    assert [b.current for b in batched] == [o.current for o in online]  # type: ignore[union-attr]
    assert [kind for kind, _ in model.batches] == ["vision", "answer"]
    assert all(len(keys) == 3 for _, keys in model.batches)
    assert model.calls == []  # nothing online
    assert all(u.requests == 2 and u.last_at is not None for u in usages.values())


def test_rescoring_vision_without_its_catalog_says_so_on_both_paths() -> None:
    model = FakeModel()
    bare = _rescorer(STAGES, model, catalog=False)
    row = _stored_plastic_job()
    with pytest.raises(RuntimeError, match="use_catalog"):
        asyncio.run(bare.rescore(row, Usage()))
    with pytest.raises(RuntimeError, match="use_catalog"):
        asyncio.run(bare.rescore_batch([row], {str(row.job_id): Usage()}))
    assert model.calls == []
    assert model.batches == []


def test_a_batch_line_that_failed_or_does_not_parse_is_called_online_for_that_row_only() -> None:
    rows = [_stored_plastic_job() for _ in range(3)]
    spoiled, refused = f"rs-test:{rows[0].job_id}:vision", f"rs-test:{rows[1].job_id}:answer"
    model = FakeModel(spoiled=frozenset({spoiled}), refused=frozenset({refused}))
    usages = {str(r.job_id): Usage() for r in rows}

    batched = asyncio.run(_rescorer(STAGES, model).rescore_batch(rows, usages))

    assert all(b.current.reward == "char-petty" for b in batched)  # type: ignore[union-attr]
    assert sorted(key or "" for _, key in model.calls) == sorted([spoiled, refused])
    assert usages[str(rows[0].job_id)].requests == 3  # two lines and one online call
    assert usages[str(rows[2].job_id)].requests == 2


def test_a_stored_image_passes_the_gate_again_before_a_model_sees_it() -> None:
    # Our CDN's URL goes as it is; any other is fetched through the guard and inlined, once.
    fetch, cdn = FakeFetch(), _stored_plastic_job()
    elsewhere = _stored_plastic_job(image_url="https://photos.example/a.png")
    for batch in (False, True):
        model = FakeModel()
        rescorer = _rescorer(STAGES, model, fetch)
        if batch:
            usages = {str(j.job_id): Usage() for j in (cdn, elsewhere)}
            results = asyncio.run(rescorer.rescore_batch([cdn, elsewhere], usages))
            assert not any(isinstance(r, ModelCallFailed) for r in results)
        else:
            for row in (cdn, elsewhere):
                asyncio.run(rescorer.rescore(row, Usage()))
        assert model.images == [cdn.image_url, "data:image/png;base64,AAAA"], batch
    assert fetch.fetched == [elsewhere.image_url, elsewhere.image_url]


def test_a_row_whose_image_is_refused_fails_with_the_reason_and_calls_no_model() -> None:
    fetch, good = FakeFetch(), _stored_plastic_job()
    private = _stored_plastic_job(image_url="https://rebind.example/a.png")
    model = FakeModel()
    with pytest.raises(ModelCallFailed, match="private address") as refused:
        asyncio.run(_rescorer(STAGES, model, fetch).rescore(private, Usage()))
    assert (refused.value.kind, refused.value.retriable) == ("image", False)
    assert model.calls == []

    usages = {str(j.job_id): Usage() for j in (private, good)}
    results = asyncio.run(_rescorer(STAGES, model, fetch).rescore_batch([private, good], usages))
    assert isinstance(results[0], ModelCallFailed)
    assert "private address" in str(results[0])
    assert not isinstance(results[1], ModelCallFailed)
    assert model.batches[0] == ("vision", [f"rs-test:{good.job_id}:vision"])
    assert fetch.fetched == [private.image_url, private.image_url]  # once per call, not per use
