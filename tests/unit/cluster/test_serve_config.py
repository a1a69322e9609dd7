"""The local stack deploys ray-cluster.yaml's serveConfigV2; only where it listens differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster import serve_config
from cluster.serve_config import ServeConfigError, local_serve_config, manifest_serve_config


def _without_overrides(config: dict[str, Any]) -> dict[str, Any]:
    stripped = {k: v for k, v in config.items() if k != "proxy_location"}
    stripped["http_options"] = {
        k: v for k, v in config.get("http_options", {}).items() if k not in ("host", "port")
    }
    return stripped


def test_the_local_config_is_the_manifests_but_for_where_it_listens() -> None:
    manifest = manifest_serve_config()
    local = local_serve_config(45123)

    assert _without_overrides(local) == _without_overrides(manifest)
    assert local["http_options"]["host"] == "127.0.0.1"
    assert local["http_options"]["port"] == 45123
    assert local["proxy_location"] == "HeadOnly"
    assert manifest_serve_config() == manifest  # the manifest's copy is left untouched
    assert serve_config.LOCAL_OVERRIDES == (
        "http_options.host",
        "http_options.port",
        "proxy_location",
    )


def test_the_manifest_deploys_scan_and_chat_from_their_build_functions() -> None:
    apps = {app["name"]: app for app in manifest_serve_config()["applications"]}

    assert apps["scan"]["import_path"] == "pipelines.scan.app:build_app"
    assert apps["chat"]["import_path"] == "pipelines.chat.app:build_app"
    assert {name: app.get("route_prefix", "/") for name, app in apps.items()} == {
        "scan": "/",
        "chat": "/api/v1/chat",
    }


def _write(tmp_path: Path, *docs: dict[str, Any]) -> Path:
    path = tmp_path / "ray.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_a_manifest_without_a_usable_serve_config_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ServeConfigError, match="not found"):
        manifest_serve_config(tmp_path / "missing.yaml")
    with pytest.raises(ServeConfigError, match="expected one RayService, found 0"):
        manifest_serve_config(_write(tmp_path, {"kind": "ConfigMap"}))
    with pytest.raises(ServeConfigError, match=r"no spec\.serveConfigV2"):
        manifest_serve_config(_write(tmp_path, {"kind": "RayService", "spec": {}}))
    empty = {"kind": "RayService", "spec": {"serveConfigV2": "applications: []"}}
    with pytest.raises(ServeConfigError, match="lists no applications"):
        manifest_serve_config(_write(tmp_path, empty))
