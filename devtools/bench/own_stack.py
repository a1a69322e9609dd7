"""A throwaway stack of only the parts one benchmark needs, in a run directory of its own.

A bench that measures one part (the relay, the Serve skeleton) starts just what that part needs
rather than the whole stack, whose idle processes would share the cores; it never touches a
running stack's directory, and removes its own when done.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cluster.component import Component
from cluster.stack import Stack
from cluster.state import StackState
from eco2.settings import Settings


@contextmanager
def own_stack(
    settings: Settings, components: Iterable[Component], prefix: str
) -> Iterator[StackState]:
    """Start ``components`` in a new run directory under /tmp (``prefix`` names it); stop them
    and delete the directory on the way out."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    stack = Stack(settings.model_copy(update={"run_dir": run_dir}), components, run_dir)
    try:
        yield stack.start()
    finally:
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
