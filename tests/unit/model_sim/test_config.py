from __future__ import annotations

import pytest
from pydantic import ValidationError

from model_sim.config import CallKind, Fault, SimConfig, preset
from model_sim.engine import Simulator, TokenBucket
from model_sim.lexicon import default_lexicon
from model_sim.request import parse_chat


def _chat(text: str = "안녕") -> dict[str, object]:
    return {"model": "gpt-5.2", "messages": [{"role": "user", "content": text}]}


def test_presets() -> None:
    assert preset("zero").for_kind(CallKind.VISION).fixed_ms == 0
    assert preset("fast").for_kind(CallKind.VISION).fixed_ms == 50
    assert preset("fast").for_kind(CallKind.ANSWER).fixed_ms == 80
    original = preset("original", seed=7)
    assert [original.for_kind(k).fixed_ms for k in CallKind] == [4500, 6700, 1500, 2000]
    assert original.seed == 7
    with pytest.raises(ValueError, match="unknown preset"):
        preset("slow")


def test_config_parses_from_json() -> None:
    config = SimConfig.model_validate(
        {
            "seed": 3,
            "kinds": {"vision": {"fixed_ms": 10, "rate_429": 0.5}},
            "retry_after_s": 2,
            "requests_per_minute": 60,
            "fail_next": [{"kind": "answer", "fault": "500", "count": 2}, {"fault": "hang"}],
        }
    )

    assert config.for_kind(CallKind.VISION).rate_429 == 0.5
    assert config.for_kind(CallKind.TEXT).fixed_ms == 0
    assert config.fail_next[0].fault is Fault.SERVER_ERROR
    assert config.fail_next[1].kind == "any"


@pytest.mark.parametrize(
    "bad",
    [
        {"kinds": {"vision": {"rate_500": 1.5}}},
        {"fail_next": [{"fault": "teapot"}]},
        {"fail_next": [{"fault": "500", "count": 0}]},
        {"unknown": 1},
    ],
)
def test_config_refuses_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SimConfig.model_validate(bad)


def _sim(config: SimConfig) -> Simulator:
    return Simulator(config, default_lexicon())


def test_fail_next_is_consumed_in_order_by_matching_kind() -> None:
    sim = _sim(
        SimConfig.model_validate(
            {"fail_next": [{"kind": "answer", "fault": "500"}, {"fault": "429", "count": 2}]}
        )
    )
    text = parse_chat(_chat())

    faults = [sim.plan(text).fault for _ in range(3)]

    assert faults == [Fault.RATE_LIMIT, Fault.RATE_LIMIT, None]
    assert [e.kind for e in sim.config.fail_next] == ["answer"]
    sim.reset()
    assert sim.config.fail_next == []


def test_random_faults_follow_the_seed() -> None:
    config = SimConfig.model_validate({"seed": 5, "kinds": {"text": {"rate_500": 0.5}}})
    req = parse_chat(_chat())

    first = [_sim(config).plan(req).fault for _ in range(1)]
    runs = [[sim.plan(req).fault for _ in range(20)] for sim in (_sim(config), _sim(config))]

    assert runs[0] == runs[1]
    assert {Fault.SERVER_ERROR, None} == set(runs[0])
    assert first[0] == runs[0][0]


def test_hang_plans_the_hang_delay() -> None:
    config = SimConfig.model_validate({"hang_s": 42, "kinds": {"text": {"rate_hang": 1}}})

    assert _sim(config).plan(parse_chat(_chat())).delay_s == 42


def test_request_rate_limit_gives_retry_after() -> None:
    sim = _sim(SimConfig(requests_per_minute=2))
    req = parse_chat(_chat())

    plans = [sim.plan(req) for _ in range(3)]

    assert [p.fault for p in plans] == [None, None, Fault.RATE_LIMIT]
    assert plans[2].retry_after_s >= 1


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])

    assert bucket.take(60) == 0
    assert bucket.take(1) == pytest.approx(1.0)
    now[0] = 2.0
    assert bucket.take(2) == 0


def test_same_request_same_content() -> None:
    sim = _sim(SimConfig())
    req = parse_chat(_chat("페트병 버리는 법"))

    assert sim.content(req) == sim.content(parse_chat(_chat("페트병 버리는 법")))
