"""Kubernetes manifests of everything outside Ray, and of the Debezium alternative to the CDC
relay, rendered from the same tables the local launcher uses, so the cluster and ``eco2 up``
cannot drift apart. What is rendered, and from which table:

* :mod:`~cluster.k8s.services`: per service of ``runtime.domain_host.SERVICES`` a Deployment
  (HTTP only), a Service and a HorizontalPodAutoscaler;
* :mod:`~cluster.k8s.consumers`: one Deployment per consumer group (``SERVICES`` and
  ``runtime.domain_host.OTHER_CONSUMERS``), and one CDC relay Deployment per domain database
  (``eco2.settings.DOMAIN_DATABASES``) carrying ``cluster.topology.EVENT_REGISTRIES``;
* :mod:`~cluster.k8s.migration`: the ``eco2-migrate-<image tag>`` Job (``python -m
  eco2.migrations``), which every Pod that opens a database waits for in an init container;
* :mod:`~cluster.k8s.gateway`: Envoy with ext_authz against ``eco2-authz``, one route per entry
  of ``runtime.routes.ROUTES``;
* :mod:`~cluster.k8s.debezium`: a Strimzi KafkaConnect and one KafkaConnector per domain
  database (``DOMAIN_DATABASES``), its headers from ``cdc.outbox``.

:mod:`~cluster.k8s.objects` holds what they share (the image's Python container with the
``eco2-config`` ConfigMap and ``eco2-secrets`` Secret of ``ray-cluster.yaml``, the
wait-for-migrations init container, Deployment, Service); :mod:`~cluster.k8s.files` writes the
documents into the files of ``k8s/``. ``python -m cluster.k8s --write k8s`` renders every file of
:data:`FILES` (``python -m cluster.k8s [FILE]`` prints one, ``domains.yaml`` by default); a test
checks that the committed files are the current render and valid. docs/kubernetes.md explains
the choices.
"""

from cluster.k8s.files import FILES, render

__all__ = ["FILES", "render"]
