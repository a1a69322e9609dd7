"""Fixtures of the integration tier beyond the stack (``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.simulator_process import Sim, running_simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    """A model SIMULATOR of the module's own (no stack): ``python -m model_sim``."""
    with running_simulator() as server:
        yield server
