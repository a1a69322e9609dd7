"""Free 127.0.0.1 ports for the local stack, never the standard ports a developer's servers hold."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator

FORBIDDEN_PORTS: frozenset[int] = frozenset({5432, 6379, 5672, 9092, 8000, 8265, 10001})
"""PostgreSQL, Redis, RabbitMQ, Kafka; Ray Serve, dashboard and client defaults: not ours."""

HOST = "127.0.0.1"

# Ray's worker port range is taken below the kernel's ephemeral range (32768+ on Linux) so that
# ports handed out by ``bind(0)`` elsewhere rarely land inside it.
_RANGE_LOW = 20000
_RANGE_HIGH = 32000
# Single ports likewise, below the range blocks: a port picked here and bound a few seconds later
# by its server cannot meanwhile become the source port of some process's outgoing connection
# (those come from the ephemeral range), which once failed a restarted stack's Serve proxy.
_SINGLE_LOW = 10002
_SINGLE_HIGH = 20000


class PortError(RuntimeError):
    """No free port (or port range) could be found; retriable once other processes let go."""

    retriable = True


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _held(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def pick_ports(count: int, *, exclude: frozenset[int] = frozenset()) -> list[int]:
    """``count`` distinct free ports, none of them forbidden or in ``exclude``.

    The ports are held open until all are chosen, so they are distinct; a port may still be taken
    by another process between this call and the child binding it (callers health-check anyway).
    """
    rng = random.Random()
    with _held([]) as held:
        ports: list[int] = []
        for _ in range(count * 20):
            if len(ports) == count:
                break
            try:
                sock = _bind(rng.randrange(_SINGLE_LOW, _SINGLE_HIGH))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
            held.append(sock)
            if port not in FORBIDDEN_PORTS and port not in exclude:
                ports.append(port)
        if len(ports) < count:
            raise PortError(f"could not find {count} free ports on {HOST}")
        return ports


def is_port_free(port: int) -> bool:
    try:
        _bind(port).close()
    except OSError:
        return False
    return True


def pick_port_range(size: int, *, exclude: frozenset[int] = frozenset(), attempts: int = 50) -> int:
    """The first port of ``size`` consecutive free ports (none forbidden or excluded)."""
    rng = random.Random()
    for _ in range(attempts):
        first = rng.randrange(_RANGE_LOW, _RANGE_HIGH - size)
        block = range(first, first + size)
        if any(p in FORBIDDEN_PORTS or p in exclude for p in block):
            continue
        if all(is_port_free(p) for p in block):
            return first
    raise PortError(f"could not find {size} consecutive free ports on {HOST}")
