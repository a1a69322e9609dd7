"""What the supervisor reads to tell a busy process from a hung one: its CPU time advancing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from cluster.process import cpu_seconds


def test_a_spinning_process_uses_cpu_and_a_stopped_one_does_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        first = cpu_seconds(child.pid)
        time.sleep(0.5)
        second = cpu_seconds(child.pid)
        assert first is not None
        assert second is not None
        assert second - first >= 0.1
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(0.1)
        stopped = cpu_seconds(child.pid)
        time.sleep(0.5)
        assert cpu_seconds(child.pid) == stopped
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) is None
