from __future__ import annotations

from pathlib import Path

from cluster.state import ComponentState, StackState, read_state, remove_state, write_state


def test_stack_json_round_trip_keeps_order_and_fields(tmp_path: Path) -> None:
    state = StackState(run_dir=str(tmp_path), supervisor_pid=123, supervisor_create_time=1.5)
    state.phase = "up"
    state.api_url = "http://127.0.0.1:40000"
    state.env = {"ECO2_DB__URL": "postgresql://postgres@127.0.0.1:40001/postgres"}
    for name in ("postgres", "valkey", "ray"):
        state.components[name] = ComponentState(
            name=name, phase="healthy", pid=10, pgid=10, ports={"port": 40001}, watch_paths=["/x"]
        )

    write_state(tmp_path, state)
    loaded = read_state(tmp_path)

    assert loaded == state
    assert loaded is not None
    assert list(loaded.components) == ["postgres", "valkey", "ray"]


def test_missing_or_torn_state_reads_as_none(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    (tmp_path / "stack.json").write_text("{not json")
    assert read_state(tmp_path) is None
    remove_state(tmp_path)
    remove_state(tmp_path)  # idempotent
    assert not (tmp_path / "stack.json").exists()
