"""The running local stack, as a command finds it: its recorded state and the settings its
children get. Commands find the stack through its ``stack.json`` (``ECO2_RUN_DIR``), never
through guesses."""

from __future__ import annotations

import typer

from cluster.state import StackState, read_state
from cluster.supervisor import run_dir_of, supervisor_alive
from eco2.settings import Settings, load_settings


def running_state() -> StackState:
    """The running local stack's recorded state (URLs of its parts)."""
    state = read_state(run_dir_of(load_settings()))
    if state is None or not supervisor_alive(state) or not state.api_url:
        raise typer.BadParameter("no local stack is up here: run `eco2 up --detach` first")
    return state


def running_settings() -> Settings:
    """The settings a child of the running local stack gets (its URLs on top of ours)."""
    state = running_state()
    services = {
        key.removeprefix("ECO2_SERVICES__").lower(): value
        for key, value in state.env.items()
        if key.startswith("ECO2_SERVICES__")
    }
    return load_settings(
        db={"url": state.env["ECO2_DB__URL"]},
        cache={"url": state.env["ECO2_CACHE__URL"]},
        kafka={"bootstrap": state.env["ECO2_KAFKA__BOOTSTRAP"]},
        services=services,
    )


def serve_url(state: StackState) -> str:
    """Ray Serve's own entry, past the gateway: admin calls (the gateway never routes
    /api/v1/admin) and benchmarks of the pipeline alone."""
    return state.env["ECO2_SERVICES__SERVE_URL"]


def api_url(state: StackState) -> str:
    """The gateway: the users' path."""
    assert state.api_url is not None
    return state.api_url
