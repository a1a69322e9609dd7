"""The scan domain's event reactions: the compensation step of the reward saga.

``CharacterGrantRejected`` (character domain: unknown character, deleted user) → the scan's reward
is taken back and ``RewardRevoked`` recorded, in the inbox transaction on the scan database, so the
result the user fetches says the grant was cancelled. Idempotent twice over: the inbox skips a
redelivered event, and a job without that reward is left unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cdc.consumers import ConsumerSpec
from eco2.events import EventEnvelope, EventMetadata
from eco2.settings import Settings
from eco2.telemetry import get_logger
from pipelines.scan.events import RewardRevoked
from pipelines.scan.store import revoke_reward

_log = get_logger(__name__)


class GrantRejected(BaseModel):
    """The fields of the character domain's ``CharacterGrantRejected`` this reaction reads."""

    model_config = ConfigDict(extra="ignore")
    scan_id: str | None
    user_id: str
    character_code: str
    reason: str


async def on_character_event(envelope: EventEnvelope, conn: Any) -> None:
    if envelope.event_type != "CharacterGrantRejected":
        return
    rejected = GrantRejected.model_validate(envelope.payload)
    if rejected.scan_id is None:  # an onboarding grant: no scan to compensate
        return
    revoked = RewardRevoked(
        scan_id=rejected.scan_id,
        user_id=rejected.user_id,
        character_code=rejected.character_code,
        reason=rejected.reason,
    )
    metadata = EventMetadata(
        traceparent=envelope.metadata.traceparent,
        correlation_id=envelope.metadata.correlation_id or rejected.scan_id,
        causation_id=str(envelope.event_id),
        user_id=rejected.user_id,
    )
    changed = await revoke_reward(conn, revoked, metadata)
    _log.info("reward revoked", scan_id=rejected.scan_id, reason=rejected.reason, changed=changed)


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="scan.reward_compensation",
            topics=("outbox.event.character",),
            database="scan",
            handler=on_character_event,
            event_types=frozenset({"CharacterGrantRejected"}),
        )
    ]
