"""What ships: the wheel's packages exclude the benchmarks, validators and the simulator."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

REPO = Path(__file__).resolve().parents[3]


def test_the_wheel_ships_no_benchmark_validator_or_simulator() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = {p.split(".")[0] for p in find_namespace_packages(str(REPO), include=include)}
    assert shipped == {"eco2", "serve", "pipelines", "domains", "cdc", "cluster", "runtime"}
    assert not {"devtools", "model_sim", "tests"} & shipped
