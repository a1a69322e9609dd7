"""``python -m model_sim --port N --preset original``: run the Eco² model SIMULATOR."""

from __future__ import annotations

import argparse

from model_sim.config import PRESETS
from model_sim.server import model_sim_command


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m model_sim",
        description="Eco² model SIMULATOR: an OpenAI-compatible fake model (not a real model).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--preset", choices=PRESETS, default="fast")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model_sim_command(host=args.host, port=args.port, preset=args.preset, seed=args.seed)


if __name__ == "__main__":
    main()
