"""Deploy the scan application onto a running Ray cluster, then exit (Serve keeps it running).

Usage: ``python -m pipelines.scan.deploy [key=value ...]`` (``ScanAppArgs`` fields, e.g.
``ingress_replicas=1``) with the stack's ``ECO2_*`` variables set; the launcher
runs it as the ``scan_app`` component's one-shot setup. In Kubernetes the RayService's
``serveConfigV2`` imports ``pipelines.scan.app:build_app`` instead.
"""

from __future__ import annotations

import logging
import sys

from eco2.settings import load_settings

APP_NAME = "scan"


def main(argv: list[str]) -> int:
    import ray
    from ray import serve

    from pipelines.scan.app import build_app

    settings = load_settings()
    ray.init(address=settings.ray.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        args = dict(arg.split("=", 1) for arg in argv)
        serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
