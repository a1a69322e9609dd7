"""``eco2 scan …`` and ``eco2 rescore``: operations on the running local stack's scans."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import typer

from cluster.running import running_state, serve_url
from pipelines.rescore import cli as rescore_cli

scan_app = typer.Typer(help="Scan operations: reprocess failed jobs.")


@scan_app.command("reprocess")
def reprocess(
    job_id: Annotated[str | None, typer.Argument(help="A failed job's id.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed")] = False,
) -> None:
    """Re-run failed scans from their last committed stage (through the admin endpoint)."""
    if (job_id is None) == (not all_failed):
        raise typer.BadParameter("give a JOB_ID or --all-failed (not both)")
    state = running_state()
    params = {"job_id": job_id} if job_id else {}
    response = httpx.post(
        f"{serve_url(state)}/api/v1/admin/scan/reprocess", params=params, timeout=30
    )
    response.raise_for_status()
    typer.echo(json.dumps(response.json(), indent=2))


def mount_rescore(app: typer.Typer) -> None:
    """``eco2 rescore``: the rescoring job with the running local stack's settings (unless the
    environment already names a database)."""
    rescore_cli.mount(app, lambda: running_state().env)
