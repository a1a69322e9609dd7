"""One scan rescored through the real prompts, parsers, rule lookup and reward policy, with a
fake model client that answers canned JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

from pipelines.jobs.status import JobStatus
from pipelines.rescore.budget import Budget, Usage
from pipelines.rescore.options import Plan
from pipelines.rescore.rescorer import Rescorer, stored_outcome
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.machine import Policy
from pipelines.scan.stages import vision_catalog
from serve.model_client import ModelClient
from serve.vision import VisionTask
from tests.unit.scan.factories import clean_answer, job, vision

PET_VISION = {
    "classification": {"major_category": "재활용폐기물", "middle_category": "무색페트병"},
    "situation_tags": ["내용물_없음"],
    "meta": {"user_input": "x"},
}
CLEAN_ANSWER = {"disposal_steps": {"단계1": "비워요"}, "insufficiencies": [], "user_answer": "좋아"}


class FakeModel:
    """Answers each kind with canned JSON through the caller's own parser."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    async def complete_json(
        self, *, kind: str, parse: Callable[[str], Any], call_key: str | None = None, **_: Any
    ) -> tuple[Any, float]:
        self.calls.append((kind, call_key))
        return parse(json.dumps(PET_VISION if kind == "vision" else CLEAN_ANSWER)), 1.0


def _stored_plastic_job() -> Any:
    rules = load_rulebook()
    stored = vision(middle="플라스틱류").model_dump(mode="json")
    return job(
        status=JobStatus.COMPLETED,
        stage="done",
        vision_result=stored,
        rule_id="재활용폐기물_플라스틱류" if "재활용폐기물_플라스틱류" in rules.rules else None,
        answer_result=clean_answer().model_dump(mode="json"),
        reward=None,
    )


def _rescorer(stages: tuple[str, ...], model: FakeModel) -> Rescorer:
    rules = load_rulebook()
    plan = Plan(run_id="rs-test", stages=stages, model=None, rules_version=rules.version)
    rescorer = Rescorer(cast(ModelClient, model), Policy(rules=rules), plan, Budget(None, None))
    rescorer.use_catalog(VisionTask(vision_catalog()))
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
