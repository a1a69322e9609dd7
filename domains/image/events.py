"""Image domain events, appended to the image database's event store.

They reach Kafka as ``outbox.event.image``; the aggregate id is the object key.
"""

from __future__ import annotations

from datetime import datetime

from eco2.events import Event, EventRegistry

AGGREGATE_TYPE = "image"
registry = EventRegistry()


@registry.register
class ImageUploaded(Event):
    """An upload was verified (signature, size, magic bytes) and its object stored, once per key."""

    event_type = "ImageUploaded"
    key: str
    user_id: str
    channel: str
    content_type: str
    size: int
    sha256: str
    cdn_url: str
    uploaded_at: datetime
