"""A child can be started with its session weighted (Linux's autogroup nice value); where the
kernel has none or refuses the value, the child still starts and runs at the default."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from cluster import process
from cluster.process import Launch

HAS_AUTOGROUP = Path("/proc/self/autogroup").exists()


def _nice_of_session(pid: int) -> int:
    # "/autogroup-123 nice 5"
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def _sleeper(session_nice: int | None) -> Launch:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    return Launch(argv, session_nice=session_nice)


@pytest.mark.skipif(not HAS_AUTOGROUP, reason="this kernel has no autogroups (/proc/*/autogroup)")
def test_a_child_started_with_a_session_nice_value_runs_in_a_session_of_that_weight(
    tmp_path: Path,
) -> None:
    # A value above 0 needs no privilege, so this holds for any user.
    child = process.spawn(_sleeper(7), tmp_path / "child.log")
    plain = process.spawn(_sleeper(None), tmp_path / "plain.log")
    try:
        assert _nice_of_session(child.pid) == 7
        assert _nice_of_session(plain.pid) == 0
    finally:
        for each in (child, plain):
            each.kill()
            each.wait()


def test_a_refused_session_nice_value_is_a_warning_and_the_child_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: Path, data: str) -> int:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    with caplog.at_level(logging.WARNING, logger="cluster.process"):
        child = process.spawn(_sleeper(-10), tmp_path / "child.log")
    try:
        assert child.poll() is None
        assert "stays at nice 0, not -10" in caplog.text
    finally:
        child.kill()
        child.wait()


def test_without_autogroups_the_value_is_not_applied() -> None:
    assert process.set_session_nice(2**22 + 12345, 5) is False  # no such pid: no /proc entry
