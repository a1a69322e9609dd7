"""Hostile HTTP input: schemathesis against the gateway's public OpenAPI document (signed in)
and against each service's own document, directly.

:func:`run` is the whole of it: it fetches each document, lets schemathesis (its engine, the
same one the ``st run`` CLI drives) send up to ``examples`` generated requests per operation and
phase, valid and invalid, within ``seconds`` for everything, and returns a JSON-able dict of
figures and of what failed, each failure with a ``curl`` that reproduces it.

What fails a request:

* ``not_a_server_error`` — any 5xx, except a 503 that carries ``Retry-After``: that is the
  documented answer of a service whose dependency is down or that sheds load (docs/reliability.md),
  a retry later succeeds, and it is reported apart as ``retry_later`` (a healthy stack under
  this little load should show none; a run that does deserves a look, not a red build);
* ``status_code_conformance`` — a status the operation does not document;
* ``content_type_conformance``, ``response_schema_conformance``,
  ``response_headers_conformance`` — a body or header other than documented;
* ``negative_data_rejection`` — a request that breaks the documented schema answered 2xx (only
  with ``strict=True``: some routes are lenient on purpose, e.g. an optional body they cannot
  read is taken as none, and FastAPI reads JSON whatever its declared content type);
* ``ignored_auth`` (gateway only) — a signed-in operation answering without the credentials.

Operations that end the fuzzing user's session (``POST /api/v1/auth/logout``, ``DELETE
/api/v1/users/me``) are left out: they would sign the run out half way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, ServerError
from schemathesis.engine import events
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.schemas import BaseSchema

GATEWAY = "gateway"
"""The ``urls`` key of the gateway; every other key names a service reached directly."""
OPENAPI_PATH = "/openapi.json"
USER_HEADER = "X-User-ID"
"""Set by the gateway after its sign-in check; a service reached directly trusts it."""
SIGNS_OUT = (("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/users/me"))
PHASES = ("examples", "coverage", "fuzzing")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
STRICT_CHECKS = ("negative_data_rejection",)
GATEWAY_CHECKS = ("ignored_auth",)
REQUEST_TIMEOUT_S = 10
MAX_SAMPLES = 3
"""Reproducing curls kept per distinct failure."""
MAX_CURL_CHARS = 2000
"""A generated body can be megabytes; a curl longer than this is cut (the failure's message and
status still say what happened)."""


@dataclass
class _Tally:
    """What one target's run saw."""

    operations: set[str] = field(default_factory=set)
    examples: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    retry_later: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop_reason: str = ""


def run(
    urls: Mapping[str, str],
    *,
    examples: int = 20,
    seconds: float = 600.0,
    token: str | None = None,
    phases: Sequence[str] = PHASES,
    strict: bool = False,
    seed: int | None = None,
) -> dict[str, Any]:
    """Fuzz each target of ``urls`` (name → base URL; ``"gateway"`` is the gateway, every other
    name a service whose document is at ``<base>/openapi.json``) and return the figures.

    ``examples``: at most this many generated requests per operation and phase. ``seconds``:
    the budget for all targets, shared out evenly among those not yet run. ``token``: an access
    token for the gateway (``None``: a new user signs in with dev-login); the services get that
    user's id in ``X-User-ID``. Never raises for what the API answers; a document that cannot be
    fetched is listed under the target's ``errors``.

    Returns ``{"targets": {name: {...}}, "operations", "examples", "failures", "failed_checks",
    "retry_later", "seconds"}``; each failure (and each 503 with ``Retry-After`` under
    ``retry_later``) is ``{"target", "operation", "check", "title", "message", "status",
    "count", "curl": [...]}``.
    """
    started = time.monotonic()
    user_id, token = _signed_in(urls, token)
    report: dict[str, Any] = {"targets": {}, "failures": [], "retry_later": []}
    names = sorted(urls, key=lambda n: n != GATEWAY)  # the gateway first
    for left, name in zip(range(len(names), 0, -1), names, strict=True):
        budget = max(1, int((seconds - (time.monotonic() - started)) / left))
        # The gateway's document names its sign-in (bearer); a service trusts X-User-ID.
        signed_in: dict[str, Any] = (
            {"auth": {"openapi": {"bearer": {"bearer": token}}}}
            if name == GATEWAY
            else {"headers": {USER_HEADER: user_id}}
        )
        tally = _fuzz(
            urls[name],
            signed_in,
            examples=examples,
            seconds=budget,
            phases=phases,
            checks=_checks_of(name, strict=strict),
            seed=seed,
        )
        report["targets"][name] = _figures(tally)
        report["failures"] += [{"target": name, **f} for f in tally.failures.values()]
        report["retry_later"] += [{"target": name, **f} for f in tally.retry_later.values()]
    report["operations"] = sum(t["operations"] for t in report["targets"].values())
    report["examples"] = sum(t["examples"] for t in report["targets"].values())
    report["failed_checks"] = _by_check(report["failures"])
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def stack_urls(env: Mapping[str, str], api_url: str | None) -> dict[str, str]:
    """``urls`` for :func:`run` from a stack's environment (``cluster.state.StackState.env``):
    the gateway and every ``ECO2_SERVICES__<NAME>_URL``; Ray Serve twice, its root application
    (scan) and the chat application under its route prefix."""
    urls = {GATEWAY: api_url} if api_url else {}
    for key, value in env.items():
        if key.startswith("ECO2_SERVICES__") and key.endswith("_URL"):
            urls[key.removeprefix("ECO2_SERVICES__").removesuffix("_URL").lower()] = value
    if "serve" in urls:
        urls["serve.chat"] = f"{urls['serve']}/api/v1/chat"
    return urls


def _checks_of(name: str, *, strict: bool) -> tuple[str, ...]:
    return CHECKS + (STRICT_CHECKS if strict else ()) + (GATEWAY_CHECKS if name == GATEWAY else ())


def _signed_in(urls: Mapping[str, str], token: str | None) -> tuple[str, str]:
    """The fuzzing user's id and access token: ``token``'s subject, or a new dev-login user."""
    if token is not None:
        import jwt

        return str(jwt.decode(token, options={"verify_signature": False})["sub"]), token
    base = urls.get(GATEWAY) or urls.get("auth")
    if base is None:  # services alone: any id will do, nobody checks a token
        return str(uuid.uuid4()), ""
    nickname = f"fuzz-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(f"{base}/api/v1/auth/dev-login", json={"nickname": nickname}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    return str(body["user_id"]), str(body["access_token"])


def _config(
    base_url: str,
    signed_in: Mapping[str, Any],
    *,
    examples: int,
    seconds: int,
    phases: Sequence[str],
    checks: Sequence[str],
    seed: int | None,
) -> SchemathesisConfig:
    data: dict[str, Any] = {
        "base-url": base_url,
        **signed_in,
        "max-time": seconds,
        "workers": 1,
        "request-timeout": REQUEST_TIMEOUT_S,
        "max-stream-events": 1,  # an SSE stream runs on; its first event (or none) is enough
        "generation": {"max-examples": examples, "database": "none", "mode": "all"},
        "phases": {name: {"enabled": name in phases} for name in (*PHASES, "stateful")},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
    }
    if seed is not None:
        data["seed"] = seed
    return SchemathesisConfig.from_dict(data)


def _fuzz(
    base_url: str,
    signed_in: Mapping[str, Any],
    *,
    examples: int,
    seconds: int,
    phases: Sequence[str],
    checks: Sequence[str],
    seed: int | None,
) -> _Tally:
    tally = _Tally()
    try:
        document = httpx.get(f"{base_url}{OPENAPI_PATH}", timeout=30).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        tally.errors.append(f"{OPENAPI_PATH}: {type(exc).__name__}: {exc}")
        return tally
    document.pop("servers", None)  # the base URL says where the operations are
    config = _config(
        base_url,
        signed_in,
        examples=examples,
        seconds=seconds,
        phases=phases,
        checks=checks,
        seed=seed,
    )
    schema: BaseSchema = schemathesis.openapi.from_dict(document, config=config)
    for method, path in SIGNS_OUT:
        schema = schema.exclude(method=method, path=path)
    for event in schemathesis.engine.from_schema(schema).execute():
        _take(event, tally)
    return tally


def _take(event: events.EngineEvent, tally: _Tally) -> None:
    if isinstance(event, events.ScenarioFinished) and event.skip_reason is None:
        tally.operations.add(event.recorder.label)
        _record(event.recorder, tally)
    elif isinstance(event, events.NonFatalError):
        tally.errors.append(f"{event.label}: {event.info.message}"[:500])
    elif isinstance(event, events.FatalError):
        tally.errors.append(f"fatal: {event.exception!r}"[:500])
    elif isinstance(event, events.EngineFinished):
        tally.stop_reason = str(event.stop_reason)


def _record(recorder: ScenarioRecorder, tally: _Tally) -> None:
    for interaction in recorder.interactions.values():
        tally.examples += 1
        answered = str(interaction.response.status_code) if interaction.response else "none"
        tally.statuses[answered] = tally.statuses.get(answered, 0) + 1
    for case_id, nodes in recorder.checks.items():
        for node in nodes:
            if node.failure_info is None:
                continue
            failure, curl = node.failure_info.failure, node.failure_info.code_sample
            response = recorder.find_response(case_id=case_id)
            status = response.status_code if response is not None else None
            kept = tally.retry_later if _retry_later(failure, response) else tally.failures
            _add_failure(kept, recorder.label, node.name, failure, status, curl)


def _retry_later(failure: Failure, response: Any) -> bool:
    """A 503 with ``Retry-After``: a dependency is down or load is shed, as documented."""
    return (
        isinstance(failure, ServerError)
        and failure.status_code == 503
        and response is not None
        and any(name.lower() == "retry-after" for name in response.headers)
    )


def _add_failure(
    kept: dict[tuple[str, str, str], dict[str, Any]],
    operation: str,
    check: str,
    failure: Failure,
    status: int | None,
    curl: str,
) -> None:
    key = (operation, check, failure.title)
    seen = kept.setdefault(
        key,
        {
            "operation": operation,
            "check": check,
            "title": failure.title,
            "message": failure.message[:600],
            "status": status,
            "count": 0,
            "curl": [],
        },
    )
    seen["count"] += 1
    curl = curl if len(curl) <= MAX_CURL_CHARS else f"{curl[:MAX_CURL_CHARS]} …(cut)"
    if len(seen["curl"]) < MAX_SAMPLES and curl not in seen["curl"]:
        seen["curl"].append(curl)


def _figures(tally: _Tally) -> dict[str, Any]:
    return {
        "operations": len(tally.operations),
        "tested": sorted(tally.operations),
        "examples": tally.examples,
        "statuses": dict(sorted(tally.statuses.items())),
        "failures": sum(f["count"] for f in tally.failures.values()),
        "retry_later": sum(f["count"] for f in tally.retry_later.values()),
        "errors": tally.errors,
        "stop_reason": tally.stop_reason,
    }


def _by_check(failures: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for failure in failures:
        counts[failure["check"]] = counts.get(failure["check"], 0) + failure["count"]
    return dict(sorted(counts.items()))


def failure_lines(report: Mapping[str, Any]) -> Iterator[str]:
    """One readable line per distinct failure (for a test's assertion message or a CLI)."""
    for f in report["failures"]:
        yield (
            f"{f['target']} {f['operation']} [{f['check']}] {f['title']} "
            f"(status {f['status']}, x{f['count']}): {f['curl'][0][:300] if f['curl'] else ''}"
        )
