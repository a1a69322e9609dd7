"""The model SIMULATOR as a subprocess for tests that talk to it directly (no stack)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai


class Sim:
    def __init__(self, process: subprocess.Popen[str], base: str) -> None:
        self.process = process
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=10)

    def configure(self, **config: Any) -> None:
        """Zero the counters, then install ``config`` (reset also drops pending injections)."""
        self.http.post("/sim/reset").raise_for_status()
        self.http.put("/sim/config", json=config).raise_for_status()

    def add_faults(self, *entries: dict[str, Any]) -> None:
        config = self.http.get("/sim/config").json()
        config["fail_next"] = list(entries)
        self.http.put("/sim/config", json=config).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/stats").json())

    def client(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/v1", api_key="sim", max_retries=0, **options)

    def async_client(self, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base}/v1", api_key="sim", max_retries=0, **options
        )


@contextmanager
def running_simulator() -> Iterator[Sim]:
    """``python -m model_sim`` on a free 127.0.0.1 port, stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "model_sim", "--port", "0", "--preset", "zero"],
        stdout=subprocess.PIPE,
        text=True,
    )
    sim: Sim | None = None
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(
            r"SIMULATOR \(not a real model\) listening on (http://127\.0\.0\.1:\d+)", banner
        )
        assert match, banner
        sim = Sim(process, match.group(1))
        yield sim
    finally:
        if sim is not None:
            sim.http.close()
        process.terminate()
        process.wait(timeout=10)
