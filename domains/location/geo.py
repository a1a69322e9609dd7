"""The Valkey GEO index of the sites: a derived, rebuildable copy of their coordinates.

``location:geo`` holds one member per site (its id) and ``location:geo:fingerprint`` the
:meth:`~domains.location.repository.SiteRepository.fingerprint` of the table it was built
from. A rebuild writes a fresh temporary key and swaps it in with ``RENAME`` together with the
fingerprint (one ``MULTI``), so readers never see half an index and concurrent rebuilders
converge on the same content. A Valkey that cannot be reached becomes
:class:`eco2.errors.Unavailable`; an error in a command is a bug and stays one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from domains.location.model import haversine_m
from domains.location.repository import UNREACHABLE
from eco2.errors import Unavailable

GEO_KEY = "location:geo"
MAX_GEO_LATITUDE = 85.05112878
"""Valkey indexes (and accepts as a search centre) latitudes within ±this only."""
_BATCH = 1000


class GeoIndex:
    """Radius queries over site coordinates kept in a Valkey sorted set."""

    def __init__(self, client: aioredis.Redis, key: str = GEO_KEY) -> None:
        self._client = client
        self.key = key
        self.fingerprint_key = f"{key}:fingerprint"

    async def _call(self, command: str, *args: Any) -> Any:
        try:
            return await self._client.execute_command(command, *args)  # type: ignore[no-untyped-call]
        except UNREACHABLE as exc:
            raise Unavailable(f"the location index (Valkey) failed; retry shortly ({exc})") from exc

    async def is_current(self, fingerprint: str, size: int) -> bool:
        """Whether the index was built from a table with this ``fingerprint`` and ``size``."""
        stored = await self._call("GET", self.fingerprint_key)
        members = int(await self._call("ZCARD", self.key))
        return members == size and stored is not None and _text(stored) == fingerprint

    async def rebuild(self, points: Sequence[tuple[int, float, float]], fingerprint: str) -> None:
        """Replace the index by ``(id, latitude, longitude)`` points, atomically."""
        if not points:
            await self._swap(None, fingerprint)
            return
        staging = f"{self.key}:build:{uuid.uuid4().hex}"
        try:
            for start in range(0, len(points), _BATCH):
                flat: list[Any] = []
                for site_id, lat, lon in points[start : start + _BATCH]:
                    flat.extend((lon, lat, site_id))
                await self._call("GEOADD", staging, *flat)
            await self._swap(staging, fingerprint)
        finally:
            await self._call("DEL", staging)

    async def _swap(self, staging: str | None, fingerprint: str) -> None:
        try:
            async with self._client.pipeline(transaction=True) as tx:
                if staging is None:
                    tx.delete(self.key)
                else:
                    tx.rename(staging, self.key)
                tx.set(self.fingerprint_key, fingerprint)
                await tx.execute()
        except UNREACHABLE as exc:
            raise Unavailable(f"the location index (Valkey) failed; retry shortly ({exc})") from exc

    async def exists(self) -> bool:
        return bool(await self._call("EXISTS", self.key))

    async def within(self, lat: float, lon: float, radius_m: float) -> list[tuple[int, float]]:
        """``(id, metres)`` of every indexed site within ``radius_m``, nearest first.

        A centre nearer a pole than Valkey accepts is moved onto the limit and the radius grown
        by the move: a superset (with shifted distances) that the caller's exact check trims.
        """
        centre = max(-MAX_GEO_LATITUDE, min(MAX_GEO_LATITUDE, lat))
        if centre != lat:
            radius_m += haversine_m(lat, lon, centre, lon)
        reply = await self._call(
            "GEOSEARCH", self.key, "FROMLONLAT", lon, centre, "BYRADIUS", radius_m, "m", "ASC",
            "WITHDIST",
        )  # fmt: skip
        return [(int(_text(member)), float(dist)) for member, dist in reply]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
