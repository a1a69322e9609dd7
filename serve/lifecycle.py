"""What a Serve replica closes when Serve stops it, without a warning when Python collects it.

Serve calls a replica's ``__del__`` when it stops the replica and awaits the coroutine it returns.
CPython calls ``__del__`` once more when it collects the object, and an ``async def __del__``
then makes a coroutine nobody awaits ("coroutine ... was never awaited", each time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class ClosedOnStop:
    """A replica whose :meth:`aclose` runs once, when Serve stops it (its ``__del__``)."""

    _stopped = False

    async def aclose(self) -> None:
        """Close what the replica holds (connections, pools)."""

    def __del__(self) -> Coroutine[Any, Any, None] | None:
        """Serve's call, on the replica's running loop: ``aclose()`` for Serve to await. Any
        later call (the collector's) or one without a loop to await on: nothing."""
        if self._stopped:
            return None
        self._stopped = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self.aclose()
