"""The my domain's client of the character service (``POST /internal/characters/onboard``).

my never imports the character domain: it reads the answer through its own model of the fields
it uses. Failures are translated here: no answer, a timeout or a 5xx → :class:`Unavailable`
(retriable), a deleted user → :class:`NotFound`.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from eco2.errors import NotFound, Unavailable

ONBOARD_PATH = "/internal/characters/onboard"


class CharacterView(BaseModel):
    """A character as the character service sends it, which is also how my shows one."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str
    code: str
    name: str
    type: str
    dialog: str
    acquired_at: datetime


class _OnboardAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    granted: bool
    character: CharacterView


class CharacterApi:
    """Calls the character service with ``client`` (its base URL and timeout are the client's)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def onboard(self, user_id: str, traceparent: str | None = None) -> CharacterView:
        """Grant 이코 to ``user_id`` (idempotent on the character side) and return it."""
        headers = {"traceparent": traceparent} if traceparent else {}
        try:
            response = await self._client.post(
                ONBOARD_PATH, json={"user_id": user_id}, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the character service did not answer ({type(exc).__name__}); retry shortly"
            ) from exc
        if response.status_code == 404 and _error_code(response) == "user_deleted":
            raise NotFound("this account was deleted; it has no characters", code="user_deleted")
        if response.status_code != 200:
            raise Unavailable(
                f"the character service answered {response.status_code}; retry shortly"
            )
        try:
            return _OnboardAnswer.model_validate_json(response.content).character
        except ValidationError as exc:
            raise Unavailable("the character service sent an unexpected answer") from exc


def _error_code(response: httpx.Response) -> str | None:
    """The ``error.code`` of an eco2 error body, or None for any other body."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None
