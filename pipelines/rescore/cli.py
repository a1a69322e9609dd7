"""``eco2 rescore …``: the rescoring job (:mod:`pipelines.rescore.job`) run against the local
stack, or against whatever the ``ECO2_*`` environment points at.

The command runs ``python -m pipelines.rescore`` — the RayJob's own entry point — as a child with
the stack's ``ECO2_*`` variables and hands it every argument as given (``eco2 rescore --help``
prints the job's options). Local runs and Kubernetes runs thus take one code path, and the
``eco2`` process never imports Ray (an import contract of the kernel's CLI). The child's exit
code is the command's (0 done, 1 failed rows, 2 a bad option).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping

import typer

StackEnv = Callable[[], Mapping[str, str]]
JOB_MODULE = "pipelines.rescore"


def child_env(environ: Mapping[str, str], stack_env: StackEnv | None) -> dict[str, str]:
    """``environ``, with the local stack's variables when ``environ`` names no database."""
    env = dict(environ)
    if "ECO2_DB__URL" not in env and stack_env is not None:
        env.update(stack_env())
    return env


def mount(app: typer.Typer, stack_env: StackEnv | None) -> None:
    """Add ``rescore`` to ``app``; ``stack_env`` finds the running local stack's variables."""

    @app.command(
        "rescore",
        help="Rerun stored scans' stages on Ray Data and report what changed "
        "(`eco2 rescore --help` for the options).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def rescore(ctx: typer.Context) -> None:
        needs_stack = "--help" not in ctx.args
        env = child_env(os.environ, stack_env if needs_stack else None)
        command = [sys.executable, "-m", JOB_MODULE, *ctx.args]
        raise typer.Exit(subprocess.run(command, env=env, check=False).returncode)
