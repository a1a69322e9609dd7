"""The one image: no container daemon here, so the Dockerfile is read, not built. Every path it
copies exists and is in the build context, and every module the manifests run (``python -m``,
serveConfigV2 import paths) imports and lives in a package the image copies."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from cluster.k8s.objects import IMAGE
from devtools import manifests
from tests.crds import needs_kuberay_crds

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
MANIFESTS = [REPO / "ray-cluster.yaml", *sorted((REPO / "k8s").glob("*.yaml"))]
BASE_IMAGE = "rayproject/ray:2.60.0-py311"


def test_the_dockerfile_copies_what_exists_and_every_entry_point_it_needs() -> None:
    modules = manifests.entry_modules(MANIFESTS)
    assert {"runtime.domain_host", "cdc.relay", "eco2.migrations", "pipelines.scan.app"} <= set(
        modules
    )
    assert manifests.dockerfile_problems(DOCKERFILE, modules) == []


@needs_kuberay_crds
def test_the_dockerfile_and_every_manifest_pass_the_validator_together() -> None:
    assert manifests.main(["--dockerfile", str(DOCKERFILE), *map(str, MANIFESTS)]) == 0


@pytest.mark.parametrize("module", manifests.entry_modules(MANIFESTS))
def test_every_entry_point_imports(module: str) -> None:
    assert manifests.module_problem(module) is None


def test_base_image_is_the_clusters_ray() -> None:
    instructions = manifests.dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    froms = [args for name, args in instructions if name == "FROM"]
    assert froms == [[BASE_IMAGE]]
    service = next(yaml.safe_load_all((REPO / "ray-cluster.yaml").read_text(encoding="utf-8")))
    ray_version = service["spec"]["rayClusterConfig"]["rayVersion"]
    assert BASE_IMAGE.split(":")[1].startswith(f"{ray_version}-")
    assert BASE_IMAGE in (REPO / "ray-cluster.yaml").read_text(encoding="utf-8")


def test_every_manifest_runs_the_image_the_dockerfile_builds() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in MANIFESTS)
    images = {line.split("image:")[1].strip() for line in text.splitlines() if "image:" in line}
    ours = {i for i in images if i.startswith("ghcr.io/eco2/eco2-on-ray")}
    assert ours == {IMAGE}


def _context(tmp_path: Path, dockerfile: str, ignore: str = "") -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".dockerignore").write_text(ignore)
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    return path


def test_a_good_context_passes(tmp_path: Path) -> None:
    path = _context(tmp_path, "FROM x\nCOPY --chown=a:b pyproject.toml \\\n  ./\nCOPY pkg/ pkg/\n")
    assert manifests.dockerfile_problems(path, ["pkg.main"]) == []


def test_a_missing_path_is_reported(tmp_path: Path) -> None:
    path = _context(tmp_path, "FROM x\n# COPY nothing.txt ./\nCOPY missing.txt ./\n")
    (problem,) = manifests.dockerfile_problems(path)
    assert "COPY missing.txt: no such path" in problem


def test_a_directory_copied_into_a_folder_of_another_name_is_reported(tmp_path: Path) -> None:
    path = _context(tmp_path, 'FROM x\nCOPY ["pyproject.toml", "pkg", "/app/"]\n')
    (problem,) = manifests.dockerfile_problems(path)
    assert "COPY pkg /app/: a directory's contents land in /app/" in problem


def test_a_path_left_out_of_the_context_is_reported(tmp_path: Path) -> None:
    path = _context(tmp_path, "FROM x\nCOPY pkg/ pkg/\n", ignore="# comment\npkg/\n")
    (problem,) = manifests.dockerfile_problems(path)
    assert "COPY pkg/: excluded by .dockerignore" in problem


def test_a_module_outside_the_copied_packages_is_reported(tmp_path: Path) -> None:
    path = _context(tmp_path, "FROM x\nCOPY pkg/ pkg/\nCOPY --from=build /a /b\n")
    (problem,) = manifests.dockerfile_problems(path, ["pkg.a", "devtools.manifests"])
    assert "python -m devtools.manifests: package 'devtools' is not copied" in problem
