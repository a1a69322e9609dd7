"""Schemathesis on the gateway's public OpenAPI document, signed in (issue 19): no 5xx and no
answer outside the document (status, content type, body schema, headers) for generated valid
and invalid requests. The CI subset of ``devtools.hostile``: a few examples per operation, a
fixed seed, bounded in time; ``eco2 chaos --scenario hostile`` runs the whole of it, the services
directly included."""

from __future__ import annotations

import httpx
import pytest

from devtools import hostile
from tests.conftest import StackUrls

pytestmark = pytest.mark.e2e

EXAMPLES = 3
SECONDS = 75.0
SEED = 19


def test_the_public_api_answers_every_generated_request_as_documented(stack: StackUrls) -> None:
    assert stack.api_url is not None
    document = httpx.get(f"{stack.api_url}/openapi.json", timeout=30).json()
    documented = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if (method.upper(), path) not in hostile.SIGNS_OUT
    }

    report = hostile.run(
        {hostile.GATEWAY: stack.api_url},
        examples=EXAMPLES,
        seconds=SECONDS,
        phases=("examples", "fuzzing"),
        seed=SEED,
    )

    gateway = report["targets"][hostile.GATEWAY]
    assert gateway["errors"] == [], gateway["errors"]
    assert report["failures"] == [], "\n".join(hostile.failure_lines(report))
    assert report["retry_later"] == [], report["retry_later"]  # a healthy stack sheds nothing
    untested = documented - set(gateway["tested"])
    assert not untested, f"not reached within {SECONDS:.0f} s: {sorted(untested)}"
