"""The Serve applications the local stack deploys: the ``serveConfigV2`` of ``ray-cluster.yaml``.

KubeRay hands a RayService's ``serveConfigV2`` to the cluster's dashboard (Serve's REST API,
``PUT /api/serve/applications/``); the local stack sends the same document to its own head the
same way, so what runs locally is what the manifest deploys. Only where to listen differs, because
every local node shares one address: see :data:`LOCAL_OVERRIDES`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.ports import HOST

MANIFEST = Path(__file__).resolve().parents[1] / "ray-cluster.yaml"
SERVICE_KIND = "RayService"

LOCAL_OVERRIDES = ("http_options.host", "http_options.port", "proxy_location")
"""What the local stack changes, and why: every local node has the one address 127.0.0.1, so
Serve's proxy runs on the head only (a proxy per node would want the same port) and listens on
the port the launcher picked, on loopback."""


class ServeConfigError(ValueError):
    """The manifest has no usable ``serveConfigV2``."""


def manifest_serve_config(path: Path = MANIFEST) -> dict[str, Any]:
    """The ``serveConfigV2`` of the RayService in ``path``, parsed."""
    if not path.is_file():
        raise ServeConfigError(
            f"{path} not found: the local stack deploys the Serve applications of its "
            "RayService (run from a checkout of the repository)"
        )
    services = [
        doc
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == SERVICE_KIND
    ]
    if len(services) != 1:
        raise ServeConfigError(f"{path}: expected one {SERVICE_KIND}, found {len(services)}")
    raw = services[0].get("spec", {}).get("serveConfigV2")
    if not isinstance(raw, str):
        raise ServeConfigError(f"{path}: the {SERVICE_KIND} has no spec.serveConfigV2 string")
    config = yaml.safe_load(raw)
    if not isinstance(config, dict) or not config.get("applications"):
        raise ServeConfigError(f"{path}: serveConfigV2 lists no applications")
    return config


def local_serve_config(port: int, path: Path = MANIFEST) -> dict[str, Any]:
    """The manifest's Serve config with :data:`LOCAL_OVERRIDES` applied."""
    config = copy.deepcopy(manifest_serve_config(path))
    config["http_options"] = {**config.get("http_options", {}), "host": HOST, "port": port}
    config["proxy_location"] = "HeadOnly"
    return config
