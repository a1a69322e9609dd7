"""The location service's composition root.

``create_app(settings)`` builds the FastAPI app; its lifespan opens the ``eco2_location`` pool and
a Valkey client, loads the generated dataset into an empty table (once, whoever starts first),
makes the GEO index match the table, and closes both on shutdown. The domain is read-only and
reacts to no events: ``consumers(settings)`` is empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial

from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.location import dataset
from domains.location.geo import GeoIndex
from domains.location.http import router
from domains.location.model import Clock
from domains.location.queries import Locations
from domains.location.repository import SiteRepository
from eco2 import cache as valkey
from eco2.db import create_pool
from eco2.http import service_app
from eco2.settings import Settings
from eco2.telemetry import get_logger

DOMAIN = "location"
_log = get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings, *, clock: Clock = _utc_now) -> FastAPI:
    """The location API. ``clock`` decides "now" for ``is_open``/``is_holiday`` (tests fix it)."""
    cache_url = settings.cache.require("the location service")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await create_pool(settings, DOMAIN) as pool, valkey.connect(cache_url) as cache:
            locations = Locations(SiteRepository(pool), GeoIndex(cache), clock)
            source = settings.location
            ready = await locations.prepare(
                partial(dataset.generate, source.dataset_seed, source.dataset_size)
            )
            _log.info("location data ready", sites=ready.sites, index_rebuilt=ready.index_rebuilt)
            if ready.sites != source.dataset_size:
                _log.warning(
                    "the loaded dataset differs from ECO2_LOCATION__DATASET_SIZE; it is loaded "
                    "only into an empty table: truncate location_sites to regenerate it",
                    sites=ready.sites,
                    configured=source.dataset_size,
                )
            app.state.locations = locations
            yield

    return service_app("Eco² location", settings, lifespan, routers=[router])


def consumers(settings: Settings) -> list[ConsumerSpec]:
    """None: the location domain reacts to no events."""
    return []
