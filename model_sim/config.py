"""Simulator configuration: latency, fault rates, rate limits and deterministic fault injection."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PresetName = Literal["zero", "fast", "original"]
PRESETS: tuple[PresetName, ...] = ("zero", "fast", "original")


class CallKind(StrEnum):
    """What a request is for; decides the answer generator and the latency/fault profile."""

    VISION = "vision"
    ANSWER = "answer"
    INTENT = "intent"
    TEXT = "text"


class Fault(StrEnum):
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    HANG = "hang"
    MALFORMED = "malformed"
    BREAK = "break"
    """A streamed answer stops half-way: the connection closes before ``[DONE]`` (a call that
    does not stream gets a 500 instead)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KindConfig(_Strict):
    """Latency and random fault rates for one call kind (rates are probabilities 0..1)."""

    fixed_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)
    token_delay_ms: float = Field(default=0.0, ge=0)
    """Streamed answers: the gap between two deltas (the first comes after ``fixed_ms``).
    0 spreads the whole latency over the stream instead."""
    rate_429: float = Field(default=0.0, ge=0, le=1)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_hang: float = Field(default=0.0, ge=0, le=1)
    rate_malformed: float = Field(default=0.0, ge=0, le=1)
    rate_break: float = Field(default=0.0, ge=0, le=1)


class FaultInjection(_Strict):
    """Fail the next ``count`` calls of ``kind`` (or of any kind) with ``fault``."""

    kind: CallKind | Literal["any"] = "any"
    fault: Fault
    count: int = Field(default=1, ge=1)


def _kinds(**fixed_ms: float) -> dict[CallKind, KindConfig]:
    return {kind: KindConfig(fixed_ms=fixed_ms.get(kind.value, 0.0)) for kind in CallKind}


class SimConfig(_Strict):
    """Everything the simulator varies; replaced as a whole by ``PUT /sim/config``.

    ``seed`` fixes the jitter and random-fault sequence; answer bodies never depend on it being
    random (they are functions of the request). ``fail_next`` entries are consumed in order: a
    call takes the first entry whose kind matches it (or ``any``).
    """

    preset: PresetName | Literal["custom"] = "custom"
    seed: int = 0
    kinds: dict[CallKind, KindConfig] = Field(default_factory=_kinds)
    retry_after_s: int = Field(default=1, ge=0)
    hang_s: float = Field(default=600.0, ge=0)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    fail_next: list[FaultInjection] = Field(default_factory=list)

    def for_kind(self, kind: CallKind) -> KindConfig:
        return self.kinds.get(kind) or KindConfig()


def preset(name: str, seed: int = 0) -> SimConfig:
    """The named latency preset: ``zero`` (no delay), ``fast`` or ``original`` (the old service)."""
    if name == "zero":
        kinds = _kinds()
    elif name == "fast":
        kinds = _kinds(vision=50, answer=80, intent=20, text=20)
        for cfg in kinds.values():
            cfg.jitter_ms = 5
        kinds[CallKind.TEXT].token_delay_ms = 2
    elif name == "original":
        kinds = _kinds(vision=4500, answer=6700, intent=1500, text=2000)
        for kind, cfg in kinds.items():
            cfg.jitter_ms = 300 if kind in (CallKind.VISION, CallKind.ANSWER) else 100
        kinds[CallKind.TEXT].token_delay_ms = 40
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return SimConfig(preset=name, seed=seed, kinds=kinds)
