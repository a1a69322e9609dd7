from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from eco2 import telemetry
from eco2.settings import TelemetrySettings


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the process's configured log handler writes, during one test (the handler is bound
    to one stream when the process configures telemetry, once)."""
    telemetry.configure("unit-test", TelemetrySettings())
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)
