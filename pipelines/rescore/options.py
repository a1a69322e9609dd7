"""What a rescoring run is: its stages, model, rules version and selection, and its run id.

**Run identity.** A run is identified by its ``run_id``. Unless given, it is derived from
what decides the outcome of a row — the stages, the model, the rules version — and from the
selection (``since``, ``until``, filters, ``limit``): the same command line gives the same run
id, so running it again resumes the run (finished rows are skipped). The budget, the worker
count and the report folder are not part of it: a run may be resumed under another budget.

Every check here raises :class:`InvalidRescore` with a message naming the bad value; the CLI turns
it into exit code 2.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipelines.rules.rulebook import RULES_DATA_VERSION, RuleBook

STAGES = ("vision", "answer")


class InvalidRescore(ValueError):
    """A rescoring option that cannot be run; the message names it."""


@dataclass(frozen=True)
class Filter:
    """One ``key=value`` condition on the stored scans (see :data:`FILTER_KEYS`)."""

    key: str
    value: str


FILTER_KEYS = {
    "major": "the stored major category",
    "middle": "the stored middle category",
    "rule": "the stored rule id (`none`: no rule matched)",
    "reward": "the stored reward's character code (`none`: no reward)",
    "user": "the user id",
    "model": "the model the scan was made with",
}


@dataclass(frozen=True)
class Selection:
    """Which completed scans a run covers."""

    since: datetime | None = None
    until: datetime | None = None
    filters: tuple[Filter, ...] = ()
    limit: int | None = None
    """At most this many scans, oldest first (a sample)."""


@dataclass(frozen=True)
class Plan:
    """What each row is rescored with. ``model`` None keeps each scan's own model."""

    run_id: str
    stages: tuple[str, ...]
    model: str | None
    rules_version: str


def parse_stages(text: str) -> tuple[str, ...]:
    """``vision,answer`` → the stages in pipeline order; unknown or none → InvalidRescore."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in STAGES]
    if unknown or not names:
        raise InvalidRescore(
            f"unknown stage(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(STAGES)}"
        )
    return tuple(stage for stage in STAGES if stage in names)


def parse_filters(items: Sequence[str]) -> tuple[Filter, ...]:
    """``key=value`` items; an unknown key or a missing ``=`` → InvalidRescore."""
    filters = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in FILTER_KEYS or not value.strip():
            known = ", ".join(f"{k}=…" for k in FILTER_KEYS)
            raise InvalidRescore(f"bad filter {item!r}: use one of {known}")
        filters.append(Filter(key.strip(), value.strip()))
    return tuple(sorted(filters, key=lambda f: (f.key, f.value)))


def check_model(model: str | None, supported: Sequence[str]) -> str | None:
    if model is not None and model not in supported:
        raise InvalidRescore(f"unknown model {model!r}; supported: {', '.join(supported)}")
    return model


def check_rules_version(requested: str | None, rules: RuleBook) -> str:
    """The rule book's full version. Only the shipped rule book can be loaded, so the request
    must name it (its full version, or its data version without the content hash)."""
    if requested is None or requested in (rules.version, RULES_DATA_VERSION):
        return rules.version
    raise InvalidRescore(
        f"unknown rules version {requested!r}; available: {rules.version} ({RULES_DATA_VERSION})"
    )


def check_budget(value: int | None, name: str) -> int | None:
    if value is not None and value <= 0:
        raise InvalidRescore(f"{name} must be a positive number (got {value}); omit it for none")
    return value


def derive_run_id(
    stages: Sequence[str], model: str | None, rules_version: str, selection: Selection
) -> str:
    """``rs-`` + 12 hex digits of a hash over what decides the outcome and the selection."""
    identity = {
        "stages": list(stages),
        "model": model,
        "rules_version": rules_version,
        "since": selection.since.isoformat() if selection.since else None,
        "until": selection.until.isoformat() if selection.until else None,
        "filters": [[f.key, f.value] for f in selection.filters],
        "limit": selection.limit,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"rs-{digest[:12]}"
