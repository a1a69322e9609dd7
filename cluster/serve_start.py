"""Start Ray Serve's HTTP proxy on a running cluster, then exit (the proxy stays, as an actor).

Usage: ``python -m cluster.serve_start <ray-address> <http-port>``. Run by the launcher as the
``serve`` component's one-shot setup so that the launcher never holds a Ray connection itself.
"""

from __future__ import annotations

import logging
import sys

from cluster.ports import HOST


def main(argv: list[str]) -> int:
    address, port = argv[0], int(argv[1])
    import ray
    from ray import serve

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        serve.start(http_options={"host": HOST, "port": port})
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
