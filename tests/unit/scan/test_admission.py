import uuid
from typing import Any, cast

import pytest

from eco2.errors import InvalidInput, Overloaded
from eco2.settings import load_settings
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.intake import ScanIntake, ScanRequest
from pipelines.scan.machine import Job, Policy


class _BusyJobs:
    inflight = 10

    def start(self, job: Job) -> None:
        raise AssertionError("must not start anything")

    async def run_inline(self, job: Job) -> Job:
        raise AssertionError("must not run anything")

    async def reprocess(self, job_id: uuid.UUID | None) -> list[Job]:
        return []


def _service(**scan: Any) -> ScanIntake:
    settings = load_settings(scan={"admission": {"enabled": False, "max_inflight": 10, **scan}})
    # The store and the progress bus are never reached when the request is refused up front.
    jobs = cast(Any, _BusyJobs())
    policy = Policy(load_rulebook())
    return ScanIntake(settings, cast(Any, None), cast(Any, None), jobs, policy)


async def test_a_full_replica_refuses_new_scans_at_once_with_retry_after() -> None:
    request = ScanRequest(image_url="https://cdn.eco2.local/scan/a.jpg")
    with pytest.raises(Overloaded) as refused:
        await _service().submit("user-1", request, None, None)
    assert refused.value.retry_after_s > 0


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({"image_url": "gopher://cdn.eco2.local/a.jpg"}, "invalid_image_url"),
        ({"image_url": "https://10.0.0.7/a.jpg"}, "invalid_image_url"),
        ({"image_url": "https://user:pw@cdn.eco2.local/a.jpg"}, "invalid_image_url"),
        ({"image_url": "https://cdn.eco2.local/a.jpg", "model": "nope"}, "unknown_model"),
        (
            {"image_url": "https://cdn.eco2.local/a.jpg", "user_input": "가" * 501},
            "user_input_too_long",
        ),
    ],
)
async def test_bad_input_is_refused_before_anything_is_stored(
    request_body: dict[str, str], code: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await _service(max_inflight=1000).submit("user-1", ScanRequest(**request_body), None, None)
    assert refused.value.code == code
    assert refused.value.message
