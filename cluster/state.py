"""``<run_dir>/stack.json``: what the supervisor started, read by ``status``, ``down`` and tests.

The file is written atomically (temporary file + rename) by the supervisor only; readers may see
an older version but never a torn one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

STATE_FILE = "stack.json"

StackPhase = Literal["starting", "up", "failed", "stopping", "stopped"]
ComponentPhase = Literal[
    "pending", "starting", "healthy", "external", "restarting", "failed", "stopped"
]


@dataclass
class ComponentState:
    name: str
    phase: ComponentPhase = "pending"
    url: str | None = None
    port: int | None = None
    pid: int | None = None
    pgid: int | None = None
    create_time: float | None = None
    """The process's start time (psutil), so a recycled pid is never mistaken for ours."""
    log_path: str | None = None
    started_at: float | None = None
    healthy_after_s: float | None = None
    external: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    port_range_start: int | None = None
    watch_paths: list[str] = field(default_factory=list)
    """Paths whose appearance in a process's command line marks it as this component's."""
    restarts: int = 0
    """Times the supervisor restarted it since the stack came up."""
    last_failure: str | None = None
    """Why it was last restarted (or, in phase ``failed``, why it was given up)."""


@dataclass
class StackState:
    run_dir: str
    supervisor_pid: int
    supervisor_create_time: float | None = None
    phase: StackPhase = "starting"
    error: str | None = None
    started_at: float | None = None
    api_url: str | None = None
    dashboard_url: str | None = None
    traces_url: str | None = None
    prometheus_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    """The ``ECO2_*`` variables every child of the stack receives (URLs of the parts)."""
    components: dict[str, ComponentState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StackState:
        components = {
            name: ComponentState(**value) for name, value in raw.get("components", {}).items()
        }
        return cls(**{**raw, "components": components})


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def write_state(run_dir: Path, state: StackState) -> None:
    path = state_path(run_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(state.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def read_state(run_dir: Path) -> StackState | None:
    """The recorded state, or ``None`` if there is none (or it is unreadable)."""
    try:
        raw = json.loads(state_path(run_dir).read_text(encoding="utf-8"))
        return StackState.from_dict(raw)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def remove_state(run_dir: Path) -> None:
    state_path(run_dir).unlink(missing_ok=True)
