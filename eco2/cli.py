"""The ``eco2`` command line: one entry point that mounts each package's commands.

The command modules are imported when the app is built, not at import time of this module, so
``eco2 --help`` stays quick and a broken optional part names itself instead of breaking the CLI.
"""

from __future__ import annotations

import json
import sys

import typer

from eco2 import telemetry
from eco2.settings import SettingsError, load_settings


def _settings_command() -> None:
    """Print the effective settings (secrets masked) as JSON."""
    settings = load_settings()
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2, ensure_ascii=False))


def build_cli() -> typer.Typer:
    from cdc.cli import cdc_app
    from cluster import cli as stack
    from cluster.scan_commands import mount_rescore, scan_app

    app = typer.Typer(
        name="eco2",
        help="Eco² on Ray: waste-sorting AI pipeline service. Local stack, benchmarks, operations.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.command("up", help="Start the whole local stack (embedded infrastructure, Ray, services).")(
        stack.up
    )
    app.command("down", help="Stop the local stack; leaves no process behind.")(stack.down)
    app.command("status", help="Probe every component; non-zero exit if any is unhealthy.")(
        stack.status
    )
    app.command("trace", help="One scan's or chat message's whole trace (by trace or job id).")(
        stack.trace
    )
    app.command("settings", help="Print the effective settings as JSON (secrets masked).")(
        _settings_command
    )
    app.add_typer(cdc_app, name="cdc")
    app.add_typer(scan_app, name="scan")
    mount_rescore(app)
    _mount_development_tools(app)
    return app


def _mount_development_tools(app: typer.Typer) -> None:
    """``eco2 bench …``, ``eco2 chaos`` and ``eco2 model-sim`` come from packages that do not
    ship (``devtools``, ``model_sim``): a development checkout has them, a production image does
    not."""
    try:
        from devtools.cli import bench_app, chaos_command
        from model_sim.server import model_sim_command
    except ImportError:
        return
    app.command("model-sim", help="Run the OpenAI-compatible model SIMULATOR (not a real model).")(
        model_sim_command
    )
    app.add_typer(bench_app(), name="bench")
    app.command("chaos", help="Faults against the running stack under load; exit 1 on a loss.")(
        chaos_command
    )


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"eco2: {exc}", err=True)
        sys.exit(2)
    # Logs go to stderr as JSON, so a command's stdout (tables, --json figures) stays clean.
    telemetry.configure("eco2-cli", settings.telemetry)
    build_cli()()


if __name__ == "__main__":
    main()
