"""Deploy the Serve applications of ``ray-cluster.yaml`` onto the local head, then exit.

Usage: ``python -m cluster.serve_start <dashboard-url> <http-port>``. The config goes to the
dashboard's Serve REST API (``PUT /api/serve/applications/``), as KubeRay sends a RayService's
``serveConfigV2``; Serve starts its proxy and builds the applications on the cluster and keeps
them running after this command exits. The launcher itself never connects to Ray.
"""

from __future__ import annotations

import sys

import httpx

from cluster.serve_config import local_serve_config

DEPLOY_PATH = "/api/serve/applications/"
TIMEOUT_S = 60.0


def deploy(dashboard_url: str, port: int) -> None:
    """Send the local Serve config; raises with Serve's own message when it is refused."""
    response = httpx.put(
        f"{dashboard_url}{DEPLOY_PATH}", json=local_serve_config(port), timeout=TIMEOUT_S
    )
    if response.status_code != 200:
        raise RuntimeError(
            f"Serve refused the applications of ray-cluster.yaml (HTTP {response.status_code}): "
            f"{response.text[:2000]}"
        )


def main(argv: list[str]) -> int:
    dashboard_url, port = argv[0], int(argv[1])
    deploy(dashboard_url, port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
