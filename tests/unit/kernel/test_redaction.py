"""No secret reaches a log line: every kind of secret through every kind of logger, as the
configured JSON handler writes it."""

from __future__ import annotations

import io
import json
import logging

from eco2 import telemetry
from eco2.redact import MASK, redact, redact_text

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjF9.c2lnbmF0dXJlLWJ5dGVz"
SECRETS = {
    "jwt": JWT,
    "bearer": "Bearer opaque-0123456789abcdef",
    "api_key": "sk-proj-Zx81kQ0p4vLm2NbT",
    "dsn_password": "postgresql://eco2:Hunter2Secret@127.0.0.1:55432/eco2_scan",
    "signed_url": (
        "https://cdn.eco2.local/scan/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20261206&X-Amz-Signature=5f3c9e0d1a2b"
        "&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE"
    ),
    "cookie": "Cookie: s_access=opaque-cookie-value; s_refresh=another-opaque-value",
    "password_pair": "login failed for user=alice password=CorrectHorse9",
}
LEAKS = (
    JWT,
    "opaque-0123456789abcdef",
    "sk-proj-Zx81kQ0p4vLm2NbT",
    "Hunter2Secret",
    "AKIAEXAMPLE",
    "5f3c9e0d1a2b",
    "FQoGZXIvYXdzEXAMPLE",
    "opaque-cookie-value",
    "another-opaque-value",
    "CorrectHorse9",
)


def _records(log_output: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in log_output.getvalue().strip().splitlines()]


def _assert_clean(records: list[dict[str, object]]) -> None:
    text = json.dumps(records, ensure_ascii=False)
    assert MASK in text
    for leak in LEAKS:
        assert leak not in text, leak


def test_our_structured_logger_masks_secrets_in_the_message_and_in_every_field(
    log_output: io.StringIO,
) -> None:
    log = telemetry.get_logger("eco2.test")
    for kind, secret in SECRETS.items():
        log.info(f"saw {secret}", kind=kind, detail={"nested": [secret]}, url=secret)
    log.info("by key", password="CorrectHorse9", api_key="sk-proj-Zx81kQ0p4vLm2NbT", token=JWT)
    records = _records(log_output)
    assert len(records) == len(SECRETS) + 1
    _assert_clean(records)
    assert records[-1]["password"] == MASK


def test_a_library_logger_through_the_standard_logging_module_is_masked_too(
    log_output: io.StringIO,
) -> None:
    for name in ("aiohttp.server", "asyncpg", "uvicorn.error", "ray.serve"):
        for secret in SECRETS.values():
            logging.getLogger(name).warning("request failed: %s", secret)
    _assert_clean(_records(log_output))


def test_an_exception_s_text_and_traceback_are_masked(log_output: io.StringIO) -> None:
    log = telemetry.get_logger("eco2.test")
    for secret in SECRETS.values():
        try:
            raise ConnectionError(f"could not reach {secret}")
        except ConnectionError:
            log.exception("call failed")
            logging.getLogger("some.library").exception("call failed")
    records = _records(log_output)
    assert all("exception" in r for r in records)
    _assert_clean(records)


def test_what_is_not_a_secret_stays_readable() -> None:
    assert redact({"tokens_in": 12, "prompt_tokens": 30, "session_count": 2}) == {
        "tokens_in": 12,
        "prompt_tokens": 30,
        "session_count": 2,
    }
    url = "https://cdn.eco2.local/scan/a.jpg?width=300&design=blue"
    assert redact_text(url) == url
    masked = redact_text(SECRETS["dsn_password"])
    assert masked == f"postgresql://eco2:{MASK}@127.0.0.1:55432/eco2_scan"
    assert redact_text("streamed tokens=42") == "streamed tokens=42"
