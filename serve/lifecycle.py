"""What a Serve replica closes when Serve stops it, and nothing when Python collects it.

Serve calls a replica's ``__del__`` when it stops the replica and awaits it when it is a
coroutine function. Python calls ``__del__`` too when it collects an object, looking it up on the
type: an ``async def __del__`` there made a coroutine nobody awaited at every collection ("coroutine
... was never awaited"), and so did a sync one returning the close. Here the replica's ``__del__``
is an attribute of the instance, which Serve finds and the collector does not look for.
"""

from __future__ import annotations

from typing import Any, Self


class ClosedOnStop:
    """A replica whose :meth:`aclose` Serve awaits when it stops the replica."""

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Self:
        replica = super().__new__(cls)
        replica.__dict__["__del__"] = replica.aclose  # Serve's stop hook, not the collector's
        return replica

    async def aclose(self) -> None:
        """Close what the replica holds (connections, pools)."""
