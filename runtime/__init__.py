"""The production runtime outside Ray: the process that hosts domain services and their event
reactions (:mod:`runtime.domain_host`, the entry point of every domain Pod) and the gateway with
its route table (:mod:`runtime.gateway`, :mod:`runtime.routes`), which Envoy replaces in
Kubernetes with the same routes."""

LOOPBACK = "127.0.0.1"
"""Where the runtime binds by default: loopback locally; a Pod passes ``--host 0.0.0.0``."""
