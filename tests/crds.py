"""The KubeRay CRD schemas live beside the repository (``../shared/kuberay-crds``), not in it:
tests that validate Ray manifests against them skip, saying why, where a checkout has none."""

from __future__ import annotations

import pytest

from devtools import manifests

CRD_DIR = manifests.default_crd_dir()

needs_kuberay_crds = pytest.mark.skipif(
    not all((CRD_DIR / name).is_file() for name in manifests.KUBERAY_CRDS.values()),
    reason=f"KubeRay CRDs not found in {CRD_DIR} (set {manifests.CRD_DIR_ENV} to their folder)",
)
