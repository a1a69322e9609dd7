"""Deploy the chat application onto a running Ray cluster, beside scan (Serve keeps it running).

``deploy()`` is what the local launcher calls right after starting Serve; in Kubernetes the
RayService's ``serveConfigV2`` imports ``pipelines.chat.app:build_app`` instead.
"""

from __future__ import annotations

from typing import Any

APP_NAME = "chat"


def deploy(args: dict[str, Any] | None = None) -> None:
    from ray import serve

    from pipelines.chat.app import ROUTE_PREFIX, build_app

    serve.run(build_app(args or {}), name=APP_NAME, route_prefix=ROUTE_PREFIX, blocking=False)
