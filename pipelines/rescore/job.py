"""``python -m pipelines.rescore``: the rescoring job's command, with every setting from the
``ECO2_*`` environment. A RayJob runs it as its entry point; ``eco2 rescore``
(:mod:`pipelines.rescore.cli`) runs it with the local stack's environment.

Exit codes: 0 done (also when the selection is empty: a message and an empty report);
2 a bad option (unknown stage, model, rules version, filter; a budget ≤ 0), naming it;
1 rows whose model calls failed (recorded as ``failed``; rerun the same command to retry them).
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from eco2.settings import Settings, load_settings
from pipelines.rescore.options import FILTER_KEYS, InvalidRescore
from pipelines.rescore.report import RescoreReport
from pipelines.rescore.run import Request, execute, prepare

_FILTER_HELP = "key=value (repeatable): " + "; ".join(f"{k}: {v}" for k, v in FILTER_KEYS.items())


def rescore(
    since: Annotated[datetime | None, typer.Option(help="Scans created at or after (UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Scans created before (UTC).")] = None,
    filter_: Annotated[list[str] | None, typer.Option("--filter", help=_FILTER_HELP)] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many scans, oldest first.")
    ] = None,
    stages: Annotated[str, typer.Option(help="Stages to rerun: vision,answer.")] = (
        "vision,answer"
    ),
    model: Annotated[
        str | None, typer.Option(help="Model for every row (default: each scan's own).")
    ] = None,
    rules_version: Annotated[
        str | None, typer.Option(help="Rules version (default: the shipped rule book).")
    ] = None,
    budget_rpm: Annotated[
        int | None, typer.Option(help="Model requests per minute (default: no limit).")
    ] = None,
    budget_tpm: Annotated[
        int | None, typer.Option(help="Estimated tokens per minute (default: no limit).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Run id (default: derived from the options).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Ray Data actors (default: 2; 1 under a budget, exact then)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per batch.")] = None,
    batch_api: Annotated[
        bool,
        typer.Option(
            "--batch-api",
            help="Send each batch's calls of a stage as one Batch API job (OpenAI: half the "
            "price, answered within 24 h); a failed line is called online. No budget with it.",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="List what would run; no model call.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = (
        False
    ),
    report_dir: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: <run dir>/rescore/<run id>/<UTC time>)."),
    ] = None,
) -> None:
    """Rerun stored scans' stages (Ray Data job) and report what changed."""
    settings = load_settings()
    try:
        request = prepare(
            settings,
            stages=stages,
            model=model,
            rules_version=rules_version,
            since=since,
            until=until,
            filters=filter_ or [],
            limit=limit,
            run_id=run_id,
            budget_rpm=budget_rpm,
            budget_tpm=budget_tpm,
            workers=workers,
            batch_size=batch_size,
            batch_api=batch_api,
            dry_run=dry_run,
        )
    except InvalidRescore as exc:
        typer.echo(f"eco2 rescore: {exc}", err=True)
        raise typer.Exit(2) from exc
    # While the job runs, whatever Ray's driver threads print (the raylet's warnings among them)
    # goes to stderr: stdout carries the result alone, so --json stays parseable.
    with contextlib.redirect_stdout(sys.stderr):
        report = _run(settings, request, show_progress=not json_output)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = report_dir or settings.run_dir / "rescore" / request.plan.run_id / stamp
    markdown, chart = report.write(folder)
    _print(report, markdown, chart, json_output)
    if report.count("failed"):
        raise typer.Exit(1)


def _run(settings: Settings, request: Request, *, show_progress: bool) -> RescoreReport:
    if not show_progress:
        return execute(settings, request)
    columns = (
        TextColumn(f"rescoring {request.plan.run_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("changed {task.fields[changed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("rescore", total=None, changed=0)
        changed = 0

        def on_row(row: Any) -> None:
            nonlocal changed
            changed += bool(row.changed)
            progress.update(task, advance=1, changed=changed)

        return execute(
            settings,
            request,
            on_start=lambda total: progress.update(task, total=total),
            on_row=on_row,
        )


def _print(report: RescoreReport, markdown: Path, chart: Path, json_output: bool) -> None:
    summary = report.summary()
    if json_output:
        typer.echo(
            json.dumps(
                {**summary, "report": str(markdown), "chart": str(chart)},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if report.message:
        typer.echo(report.message)
    typer.echo(
        f"run {summary['run_id']}: {summary['rescored']} rescored, {summary['changed']} changed, "
        f"{summary['failed']} failed, {summary['already_done']} already done; "
        f"{summary['requests']} requests"
    )
    typer.echo(f"report: {markdown}\nchart:  {chart}")


def job_app() -> typer.Typer:
    """The job's command as an application of its own."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(rescore)
    return app


def main() -> None:
    """``python -m pipelines.rescore``: settings from the environment only (a RayJob)."""
    job_app()()
