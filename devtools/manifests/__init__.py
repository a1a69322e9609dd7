"""Offline validation of the project's Kubernetes manifests (``ray-cluster.yaml``, ``k8s/``) and
of the one image they run (``Dockerfile``), with no cluster and no daemon.

:func:`validate` loads every YAML document of a file and returns a list of problems, empty when
the file is fine; :mod:`~devtools.manifests.kinds` sends each document to the checks of its kind:

- :mod:`~devtools.manifests.kuberay`: ``RayService``, ``RayCluster``, ``RayJob`` against the
  KubeRay CRDs' ``v1`` schema (the shared folder, see :func:`default_crd_dir`), unknown fields
  refused as by the API server's strict field validation;
- :mod:`~devtools.manifests.serve_config` and :mod:`~devtools.manifests.placement`: a
  RayService's ``serveConfigV2`` (valid Serve config, import paths that import and build, args
  the args model accepts, overrides that name built deployments, custom resources that fit on
  one node of some group);
- :mod:`~devtools.manifests.core`: Deployment, Service, HorizontalPodAutoscaler, Job, CronJob,
  Role, RoleBinding strictly by ``kubernetes-validate``; ConfigMap and Secret structurally, with
  their ``ECO2_*`` keys checked by :mod:`~devtools.manifests.settings`;
- :mod:`~devtools.manifests.strimzi`: ``KafkaConnect`` / ``KafkaConnector`` structurally;
- :mod:`~devtools.manifests.entry_points`: every ``python -m <module>`` a container or a
  RayJob's ``entrypoint`` runs must import (a package must have a ``__main__``).

:func:`dockerfile_problems` (:mod:`~devtools.manifests.dockerfile`) reads a Dockerfile: copied
paths exist and are in the build context, directories keep their folder, and every module the
manifests run comes from a package the image copies.

Usage: ``python -m devtools.manifests [--dockerfile Dockerfile] ray-cluster.yaml k8s/*.yaml``
(exit status 1 when there are problems).
"""

from devtools.manifests.cli import main
from devtools.manifests.dockerfile import (
    dockerfile_copies,
    dockerfile_instructions,
    dockerfile_problems,
)
from devtools.manifests.entry_points import entry_modules, module_problem, python_modules
from devtools.manifests.kinds import validate
from devtools.manifests.kuberay import CRD_DIR_ENV, KUBERAY_CRDS, crd_schema, default_crd_dir
from devtools.manifests.settings import settings_problems

__all__ = [
    "CRD_DIR_ENV",
    "KUBERAY_CRDS",
    "crd_schema",
    "default_crd_dir",
    "dockerfile_copies",
    "dockerfile_instructions",
    "dockerfile_problems",
    "entry_modules",
    "main",
    "module_problem",
    "python_modules",
    "settings_problems",
    "validate",
]
