"""Runs regular services: each one's HTTP app on its own port, plus the event reactions.

In Kubernetes each service is its own Deployment running ``python -m runtime.domain_host --host
0.0.0.0 --serve <name>=8000 --consumers <name>``; the local launcher co-hosts several in one
process (one event loop, one uvicorn server per service, so each keeps its own port, lifespan and
database pool exactly as in the cluster). The services are the domains, the read-model API and
the pipelines' read side (job streams and results); consumers are the domains' reactions, the
scan domain's saga compensation and the read-model projectors. The consumers of one process
share Kafka consumers (:func:`cdc.consumers.runtime.feeds`): one per store kind and fetch wait.

Stops on SIGTERM/SIGINT: servers finish their requests, consumers their batch in progress.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

import eco2.loop
from cdc.consumers.runtime import ConsumerSpec, feeds, run_consumers_async
from eco2.settings import Settings, load_settings
from eco2.telemetry import configure, get_logger
from runtime import LOOPBACK

log = get_logger(__name__)

SERVICES: dict[str, str] = {
    "auth": "domains.auth.service",
    "authz": "domains.authz.service",
    "character": "domains.character.service",
    "chat": "domains.chat.service",
    "my": "domains.my.service",
    "notification": "domains.notification.service",
    "location": "domains.location.service",
    "image": "domains.image.service",
    "readmodels": "cdc.readmodels.api",
    "streams": "pipelines.read_service",
}
"""Service → module with ``create_app(settings)`` (domains also have ``consumers(settings)``)."""

OTHER_CONSUMERS: dict[str, str] = {"scan": "pipelines.scan.reactions:consumers"}
"""``(settings) -> list[ConsumerSpec]`` of consumers without a service here: the scan domain's
saga compensation (its HTTP API is the Ray Serve app)."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the host (several share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _load(ref: str) -> Any:
    module_name, _, attribute = ref.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def consumer_specs(names: list[str], settings: Settings) -> list[ConsumerSpec]:
    """The consumers of ``names`` (services with ``consumers()``, or OTHER_CONSUMERS entries)."""
    specs: list[ConsumerSpec] = []
    for name in names:
        if name in SERVICES:
            module = _load(SERVICES[name])
            factory: Callable[[Settings], list[ConsumerSpec]] | None = getattr(
                module, "consumers", None
            )
            specs += factory(settings) if factory else []
        elif name in OTHER_CONSUMERS:
            specs += _load(OTHER_CONSUMERS[name])(settings)
        else:
            known = sorted({*SERVICES, *OTHER_CONSUMERS})
            raise SystemExit(f"unknown consumer group {name!r}; known: {', '.join(known)}")
    return specs


IDLE_KEEPALIVE_S = 75
"""How long a service keeps an idle client connection open: longer than the gateway keeps one
in its pool (``runtime.gateway.POOL_IDLE_S``), so the gateway never sends a request on a
connection the service is closing at that moment (uvicorn's default of 5 s against aiohttp's 15 s
did, and the gateway answered 502)."""


def _server(name: str, host: str, port: int, settings: Settings) -> _Server:
    app = _load(SERVICES[name]).create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=IDLE_KEEPALIVE_S,
    )
    return _Server(config)


async def run(
    serve: dict[str, int], consumers: list[str], settings: Settings, host: str = LOOPBACK
) -> None:
    servers = [_server(name, host, port, settings) for name, port in serve.items()]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        stop.set()
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    specs = consumer_specs(consumers, settings)
    log.info("domain host starting", services=sorted(serve), consumers=[s.name for s in specs])
    tasks = [
        asyncio.create_task(s.serve(), name=f"http:{n}")
        for s, n in zip(servers, serve, strict=True)
    ]
    tasks += [
        asyncio.create_task(
            run_consumers_async(feed, settings, stop),
            name=f"consumers:{','.join(spec.name for spec in feed)}",
        )
        for feed in feeds(specs)
    ]
    done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():  # a part ended on its own: a failure; stop the rest and report it
        for task in done:
            if task.exception() is not None:
                log.error(
                    "domain host part failed", part=task.get_name(), error=str(task.exception())
                )
        shutdown()
    await asyncio.gather(*tasks, return_exceptions=True)


def _port_pair(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or name not in SERVICES or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected <service>=<port> with service in {sorted(SERVICES)}"
        )
    return name, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runtime.domain_host", description=__doc__)
    parser.add_argument("--serve", type=_port_pair, action="append", default=[])
    parser.add_argument(
        "--host",
        default=LOOPBACK,
        help="address to bind (default loopback; 0.0.0.0 in a Pod, so its Service reaches it)",
    )
    parser.add_argument(
        "--consumers", nargs="*", default=[], help="consumer groups, or 'all' for every one"
    )
    args = parser.parse_args(argv)
    consumers: list[str] = args.consumers
    if consumers == ["all"]:
        consumers = [*SERVICES, *OTHER_CONSUMERS]
    settings = load_settings()
    configure("domain-host", settings.telemetry)
    eco2.loop.run(run(dict(args.serve), consumers, settings, args.host))


if __name__ == "__main__":
    main()
