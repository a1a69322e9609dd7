"""The blacklist in memory, for the unit tests of the check in front of it; it passes the same
contract tests as the Valkey one (tests/integration/test_blacklist.py)."""

from __future__ import annotations

from eco2.errors import Unavailable


class MemoryRevocations:
    def __init__(self, *sessions: str, restored: bool = True) -> None:
        self.revoked = set(sessions)
        self.restored = restored

    def revoke(self, sid: str) -> None:
        self.revoked.add(sid)

    async def is_revoked(self, sid: str) -> bool:
        await self.ping()
        return sid in self.revoked

    async def ping(self) -> None:
        if not self.restored:
            raise Unavailable("the token blacklist is being restored")
