"""``python -m cluster up|down|status`` (the same commands as ``eco2``), and the
internal ``supervise`` command that ``up --detach`` starts in the background."""

from __future__ import annotations

import sys

import typer

from cluster import cli, supervisor


def _supervise() -> None:
    """Run the supervisor in this process (used by ``up --detach``; prefer ``up``)."""
    raise typer.Exit(supervisor.run_supervisor(cli.cli_settings()))


def main() -> None:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
    app.command("up")(cli.up)
    app.command("down")(cli.down)
    app.command("status")(cli.status)
    app.command("trace")(cli.trace)
    app.command("supervise", hidden=True)(_supervise)
    app(args=sys.argv[1:], prog_name="python -m cluster")


if __name__ == "__main__":
    main()
