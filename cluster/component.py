"""What one part of the local stack is: how to start it, how to tell it is healthy, what it exports.

A :class:`Component` is a declaration; :mod:`cluster.stack` does the starting, waiting and stopping.
Adding a part to the stack means declaring one more ``Component`` in :mod:`cluster.topology`.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cluster.process import Launch
from eco2.settings import Settings

# A unix socket path may hold 107 bytes. Ray puts ``session_<date>_<pid>/sockets/plasma_store``
# (~64 bytes) under its temp dir; PostgreSQL puts ``.s.PGSQL.<port>`` under its socket dir.
_RAY_TEMP_MAX = 40
_PG_SOCKET_DIR_MAX = 100 - len("/.s.PGSQL.65535")
_HAPROXY_DIR_MAX = 97 - len("/") - 56 - len("/metrics.sock")


def _short_fallback(preferred: Path, max_len: int, tag: str) -> Path:
    if len(str(preferred)) <= max_len:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:10]
    return Path("/tmp") / f"eco2-{tag}-{digest}"


@dataclass(frozen=True)
class RunPaths:
    """Where each part keeps its data and logs under the run directory."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return _short_fallback(self.root / "pgs", _PG_SOCKET_DIR_MAX, "pg")

    @property
    def valkey_dir(self) -> Path:
        return self.root / "valkey"

    @property
    def ray_temp(self) -> Path:
        return _short_fallback(self.root / "ray", _RAY_TEMP_MAX, "ray")

    @property
    def haproxy_dir(self) -> Path:
        """Serve's HAProxy files; always short: Serve adds a 56-character directory under it
        and HAProxy refuses socket paths over 97 bytes."""
        return _short_fallback(self.root / "hap", _HAPROXY_DIR_MAX, "hap")


@dataclass
class Context:
    """What a component's functions may look at while the stack starts it."""

    settings: Settings
    paths: RunPaths
    ports: dict[str, int]
    """This component's allocated ports by name (see :attr:`Component.ports`)."""
    env: dict[str, str]
    """``ECO2_*`` variables exported so far by the components started before this one."""
    external_url: str | None = None
    """The user-set URL when this component is not started by us."""
    port_range_start: int | None = None

    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))


def _no_external(_: Settings) -> str | None:
    return None


def _no_exports(_: Context) -> dict[str, str]:
    return {}


def _no_paths(_: Context) -> list[str]:
    return []


@dataclass(frozen=True)
class Component:
    """One part of the stack.

    Lifecycle, driven by :class:`cluster.stack.Stack`: ``prepare`` (once per start, e.g. initdb)
    → ``launch`` (a long-running child in its own session; or, with ``oneshot``, a setup command
    that must exit 0) → ``health`` polled until it returns ``None`` or ``start_deadline_s`` passes
    → ``after_healthy`` (e.g. migrations). Stopping sends ``stop_signal`` to the process group and
    SIGKILL after ``stop_grace_s``.
    """

    name: str
    url: Callable[[Context], str]
    health: Callable[[Context], str | None]
    """``None`` when healthy, else the reason it is not (shown to the user)."""
    launch: Callable[[Context], Launch] | None = None
    requires: tuple[str, ...] = ()
    ports: tuple[str, ...] = ("port",)
    port_range: int = 0
    """Size of a block of consecutive ports to reserve (Ray's worker ports)."""
    oneshot: bool = False
    external_url: Callable[[Settings], str | None] = _no_external
    """A URL the user configured: then the component is not started, only health-checked."""
    prepare: Callable[[Context], None] | None = None
    after_healthy: Callable[[Context], None] | None = None
    exports: Callable[[Context], dict[str, str]] = _no_exports
    """``ECO2_*`` variables that later children receive (also written to ``stack.json``)."""
    links: Callable[[Context], Mapping[str, str]] = _no_exports
    """Stack-level URLs this component provides (``api_url``, ``dashboard_url``)."""
    watch_paths: Callable[[Context], list[str]] = _no_paths
    """Paths in the command lines of this component's processes (to find leftovers)."""
    data_paths: Callable[[RunPaths], list[Path]] = field(default=lambda _: [])
    """What ``eco2 up --fresh`` wipes."""
    fixed_ports: Callable[[Settings], dict[str, int]] = field(default=lambda _: {})
    """Ports the user pinned in the settings (others are picked free at each start)."""
    start_deadline_s: float = 30.0
    stop_signal: int = signal.SIGTERM
    stop_grace_s: float = 10.0
    signal_group: bool = True
    """Send ``stop_signal`` to the whole process group (else to the main process only)."""
    restarts_dependants: bool = False
    """When the supervisor restarts this component, also restart (or re-run) the components
    that require it directly: they cannot carry on by reconnecting (Ray's Serve applications
    live in the head; the embedded broker comes back without its topics)."""
