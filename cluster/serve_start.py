"""Start Ray Serve's HTTP entry on a running cluster, deploy the applications, then exit.

Usage: ``python -m cluster.serve_start <ray-address> <http-port> [module:function ...]``. Each
``module:function`` is called (with no arguments) while connected, to deploy one application;
Serve keeps everything running after this driver exits. One driver does all of it, so the stack
pays for one interpreter start and one Ray connection; the launcher itself never connects to Ray.
"""

from __future__ import annotations

import importlib
import logging
import sys

from cluster.ports import HOST


def main(argv: list[str]) -> int:
    address, port, deployers = argv[0], int(argv[1]), argv[2:]
    import ray
    from ray import serve

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        serve.start(http_options={"host": HOST, "port": port})
        for target in deployers:
            module, _, function = target.partition(":")
            getattr(importlib.import_module(module), function)()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
