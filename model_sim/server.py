"""Running the simulator: a blocking ``run`` and the ``eco2 model-sim`` command."""

from __future__ import annotations

import asyncio
import socket
import sys

from aiohttp import web

import eco2.loop
from eco2 import telemetry
from eco2.settings import load_settings
from model_sim.app import create_app
from model_sim.config import SimConfig
from model_sim.config import preset as preset_config

BANNER = (
    "Eco² model SIMULATOR (not a real model) listening on http://{host}:{port}/v1 (preset {preset})"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def start(host: str, port: int, config: SimConfig) -> tuple[web.AppRunner, int]:
    """Start serving on the running loop; returns the runner (call ``cleanup``) and the port."""
    runner = web.AppRunner(create_app(config), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve_forever(host: str, port: int, config: SimConfig) -> None:
    runner, bound = await start(host, port, config)
    print(BANNER.format(host=host, port=bound, preset=config.preset), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(host: str, port: int, config: SimConfig) -> None:
    """Serve until interrupted (blocking). Port 0 lets the OS choose; the banner shows it."""
    telemetry.configure("model-simulator", load_settings().telemetry)
    try:
        eco2.loop.run(serve_forever(host, port, config))
    except KeyboardInterrupt:
        print("Eco² model SIMULATOR stopped", file=sys.stderr, flush=True)


def model_sim_command(
    host: str = "127.0.0.1", port: int = 0, preset: str = "fast", seed: int = 0
) -> None:
    """Start the Eco² model SIMULATOR (an OpenAI-compatible fake for development and load tests)."""
    run(host, port, preset_config(preset, seed))
