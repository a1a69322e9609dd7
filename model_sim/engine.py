"""The simulator's state: which fault or delay a call gets, its answer text, and the counters.

One :class:`Simulator` per process, used from one event loop (no locks needed). Fault and jitter
draws come from one ``random.Random(seed)`` in arrival order; answers depend on the request only.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from model_sim import answers
from model_sim.config import CallKind, Fault, SimConfig
from model_sim.lexicon import Lexicon, default_lexicon
from model_sim.request import CallRequest

_FAULT_ORDER = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.HANG, Fault.MALFORMED, Fault.BREAK)


@dataclass
class KindStats:
    requests: int = 0
    completed: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "faults": {f.value: self.faults[f.value] for f in Fault},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


class TokenBucket:
    """``per_minute`` units, refilled continuously; ``take`` returns the seconds to wait or 0."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.stamp = clock()

    def take(self, amount: float) -> float:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


@dataclass(frozen=True)
class Plan:
    """What happens to one call: a fault (or None) and the delay before answering."""

    fault: Fault | None
    delay_s: float
    retry_after_s: int = 0
    token_gap_s: float = 0.0
    """Between two streamed deltas (0: the delay is spread over the stream)."""


ANSWER_CACHE_SIZE = 4096


class Simulator:
    def __init__(self, config: SimConfig, lexicon: Lexicon | None = None) -> None:
        self._lexicon = lexicon
        self._answers: dict[str, str] = {}
        self.stats = {kind: KindStats() for kind in CallKind}
        self.calls_by_key: Counter[str] = Counter()
        self.replace(config)

    def replace(self, config: SimConfig) -> None:
        """Install a new configuration: new RNG from its seed, new rate limits; stats are kept."""
        self.config = config.model_copy(deep=True)
        self.rng = random.Random(config.seed)
        rpm, tpm = config.requests_per_minute, config.tokens_per_minute
        self.request_bucket = TokenBucket(rpm) if rpm else None
        self.token_bucket = TokenBucket(tpm) if tpm else None

    def reset(self) -> None:
        """Zero the counters and drop the pending ``fail_next`` injections."""
        self.stats = {kind: KindStats() for kind in CallKind}
        self.calls_by_key = Counter()
        self.config.fail_next.clear()

    @property
    def lexicon(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = default_lexicon()
        return self._lexicon

    # ---- deciding ----
    def plan(self, req: CallRequest, *, rate_limited: bool = True) -> Plan:
        """Count the call and decide its fault and delay (rate limits first, then injections).
        A batch line is not rate limited (``rate_limited=False``): batches queue apart."""
        kind = req.kind
        self.stats[kind].requests += 1
        wait = self._rate_limited(req) if rate_limited else 0.0
        if wait > 0:
            return Plan(Fault.RATE_LIMIT, 0.0, max(1, math.ceil(wait)))
        cfg = self.config.for_kind(kind)
        delay = (cfg.fixed_ms + self.rng.uniform(0, cfg.jitter_ms)) / 1000
        fault = self._injected(kind) or self._rolled(kind)
        if fault is Fault.HANG:
            delay = self.config.hang_s
        return Plan(
            fault,
            0.0 if fault is Fault.RATE_LIMIT else delay,
            self.config.retry_after_s,
            cfg.token_delay_ms / 1000,
        )

    def _rate_limited(self, req: CallRequest) -> float:
        waits = [0.0]
        if self.request_bucket:
            waits.append(self.request_bucket.take(1))
        if self.token_bucket and waits[-1] == 0:
            waits.append(self.token_bucket.take(req.prompt_tokens))
        return max(waits)

    def _injected(self, kind: CallKind) -> Fault | None:
        for i, entry in enumerate(self.config.fail_next):
            if entry.kind in ("any", kind):
                entry.count -= 1
                if entry.count == 0:
                    del self.config.fail_next[i]
                return entry.fault
        return None

    def _rolled(self, kind: CallKind) -> Fault | None:
        cfg = self.config.for_kind(kind)
        rates = (cfg.rate_429, cfg.rate_500, cfg.rate_hang, cfg.rate_malformed, cfg.rate_break)
        if not any(rates):
            return None
        draw, edge = self.rng.random(), 0.0
        for fault, rate in zip(_FAULT_ORDER, rates, strict=True):
            edge += rate
            if draw < edge:
                return fault
        return None

    # ---- answering ----
    def content(self, req: CallRequest) -> str:
        """The answer text: JSON for schema / tool / json_object calls, else a Korean sentence.

        A pure function of the request body, so answers are remembered by the body's digest
        (the lexicon search was a fifth of the simulator's CPU under load, py-spy)."""
        if not req.digest:
            return self._content(req)
        cached = self._answers.get(req.digest)
        if cached is None:
            cached = self._answers[req.digest] = self._content(req)
            if len(self._answers) > ANSWER_CACHE_SIZE:
                del self._answers[next(iter(self._answers))]
        return cached

    def _content(self, req: CallRequest) -> str:
        value = self._answer(req)
        if req.schema is not None:
            value = answers.fit_to_schema(value, req.schema)
        if isinstance(value, str) and not (req.json_object or req.schema is not None):
            return value
        return json.dumps(value, ensure_ascii=False)

    def _answer(self, req: CallRequest) -> Any:
        kind = req.kind
        user_input = "\n".join(t for t in req.user_texts if t.strip())
        if kind is CallKind.VISION:
            return self.lexicon.classify(req.image_urls, user_input)
        if kind is CallKind.ANSWER:
            return answers.disposal_answer(req.user_texts)
        if kind is CallKind.INTENT:
            return answers.intent_of(user_input)
        context = answers.find_chat_context(req.user_texts)
        reply = answers.chat_answer(context) if context else answers.text_reply(user_input)
        return {"reply": reply} if req.json_object or req.schema is not None else reply

    # ---- counting ----
    @contextmanager
    def in_flight(self, kind: CallKind) -> Iterator[None]:
        stats = self.stats[kind]
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            yield
        finally:
            stats.in_flight -= 1

    def record(self, kind: CallKind, fault: Fault | None, call_key: str | None) -> None:
        if fault is not None:
            self.stats[kind].faults[fault.value] += 1
            return
        self.stats[kind].completed += 1
        if call_key:
            self.calls_by_key[call_key] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "simulator": True,
            "kinds": {kind.value: s.as_dict() for kind, s in self.stats.items()},
            "calls_by_key": dict(self.calls_by_key),
        }
