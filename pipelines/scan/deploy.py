"""Deploy the scan application onto a running Ray cluster (Serve keeps it running).

``deploy()`` is what the local launcher calls, connected, right after starting Serve
(``cluster/serve_start.py``); ``python -m pipelines.scan.deploy [key=value ...]`` does the same on
its own (``ScanAppArgs`` fields, e.g. ``ingress_replicas=2``) with the stack's ``ECO2_*``
variables set. In Kubernetes the RayService's ``serveConfigV2`` imports
``pipelines.scan.app:build_app`` instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from eco2.settings import load_settings

APP_NAME = "scan"


def deploy(args: dict[str, Any] | None = None) -> None:
    """Deploy (or update) the scan app on the connected cluster; returns once it is running."""
    from ray import serve

    from pipelines.scan.app import build_app

    serve.run(build_app(args or {}), name=APP_NAME, route_prefix="/", blocking=False)


def main(argv: list[str]) -> int:
    import ray

    settings = load_settings()
    ray.init(address=settings.ray.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        deploy(dict(arg.split("=", 1) for arg in argv))
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
