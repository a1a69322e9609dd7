from __future__ import annotations

import time
from typing import Any

import pytest

from domains.authz.verifier import (
    RESTORED_KEY,
    AccessCheck,
    TokenVerifier,
    revoked_session_key,
    token_from,
)
from eco2.errors import Forbidden, Unauthenticated, Unavailable
from tests.unit.domains.authz.fakes import MemoryRevocations
from tests.unit.domains.authz.tokens import (
    AUDIENCE,
    ISSUER,
    KeyPair,
    claims,
    hs256_with_public_key,
    sign,
    unsigned,
)


class StaticKeys:
    def __init__(self, *pairs: KeyPair) -> None:
        self.keys = {pair.kid: pair.private.public_key() for pair in pairs}

    async def key_for(self, kid: str) -> Any | None:
        return self.keys.get(kid)


class BrokenRevocations:
    async def is_revoked(self, sid: str) -> bool:
        raise Unavailable("valkey down")

    async def ping(self) -> None:
        raise Unavailable("valkey down")


KEY = KeyPair()


def verifier(revocations: Any = None, keys: Any = None) -> AccessCheck:
    checks = TokenVerifier(keys or StaticKeys(KEY), issuer=ISSUER, audience=AUDIENCE)
    return AccessCheck(checks, revocations or MemoryRevocations())


def test_the_key_formats_are_the_contract_with_auth() -> None:
    assert revoked_session_key("abc-123") == "authz:revoked:session:abc-123"
    assert RESTORED_KEY == "authz:blacklist:restored"


async def test_valid_access_token_yields_user_and_provider() -> None:
    payload = claims(provider="kakao")
    principal = await verifier().verify(sign(KEY, payload))
    assert (principal.user_id, principal.provider) == (payload["sub"], "kakao")


async def test_audience_list_containing_ours_is_accepted() -> None:
    payload = claims(aud=["other", AUDIENCE])
    assert (await verifier().verify(sign(KEY, payload))).user_id == payload["sub"]


async def test_missing_token_is_401() -> None:
    with pytest.raises(Unauthenticated) as caught:
        await verifier().verify(None)
    assert caught.value.code == "missing_token"


async def test_forged_token_signed_by_another_key_with_a_known_kid_is_401() -> None:
    forger = KeyPair(kid=KEY.kid)
    with pytest.raises(Unauthenticated, match="signature"):
        await verifier().verify(sign(forger, claims()))


async def test_expired_token_is_401() -> None:
    past = int(time.time()) - 3600
    token = sign(KEY, claims(iat=past, nbf=past, exp=past + 900))
    with pytest.raises(Unauthenticated) as caught:
        await verifier().verify(token)
    assert caught.value.code == "token_expired"


async def test_token_within_leeway_of_expiry_is_accepted() -> None:
    now = int(time.time())
    token = sign(KEY, claims(iat=now - 900, nbf=now - 900, exp=now - 2))
    await verifier().verify(token)


async def test_token_not_valid_yet_is_401() -> None:
    future = int(time.time()) + 600
    with pytest.raises(Unauthenticated, match="not valid yet"):
        await verifier().verify(sign(KEY, claims(iat=future, nbf=future, exp=future + 900)))


async def test_alg_none_is_401() -> None:
    with pytest.raises(Unauthenticated, match="algorithm 'none'"):
        await verifier().verify(unsigned(claims(), kid=KEY.kid))


async def test_hs256_keyed_with_the_public_key_is_401() -> None:
    with pytest.raises(Unauthenticated, match="algorithm 'HS256'"):
        await verifier().verify(hs256_with_public_key(KEY.public_pem, claims(), kid=KEY.kid))


async def test_unknown_kid_is_401() -> None:
    with pytest.raises(Unauthenticated, match="not signed by a key"):
        await verifier().verify(sign(KEY, claims(), kid="nobody"))


@pytest.mark.parametrize("garbage", ["not-a-jwt", "\udce9t\udce9.a.b", "é.é.é"])
async def test_garbage_is_401(garbage: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await verifier().verify(garbage)
    assert caught.value.code == "malformed_token"


async def test_wrong_issuer_is_401() -> None:
    with pytest.raises(Unauthenticated, match="not issued by"):
        await verifier().verify(sign(KEY, claims(iss="someone-else")))


async def test_wrong_audience_is_403() -> None:
    with pytest.raises(Forbidden) as caught:
        await verifier().verify(sign(KEY, claims(aud="another-api")))
    assert caught.value.code == "wrong_audience"


async def test_refresh_token_used_as_access_is_403() -> None:
    with pytest.raises(Forbidden) as caught:
        await verifier().verify(sign(KEY, claims(typ="refresh")))
    assert caught.value.code == "wrong_token_type"


async def test_a_token_of_a_revoked_session_is_401() -> None:
    payload = claims()
    with pytest.raises(Unauthenticated) as caught:
        await verifier(MemoryRevocations(payload["sid"])).verify(sign(KEY, payload))
    assert caught.value.code == "token_revoked"


async def test_a_token_without_a_session_is_401() -> None:
    with pytest.raises(Unauthenticated) as caught:
        await verifier().verify(sign(KEY, claims(sid=None)))
    assert caught.value.code == "invalid_token"


async def test_a_blacklist_being_restored_answers_503_not_a_guess() -> None:
    with pytest.raises(Unavailable):
        await verifier(MemoryRevocations(restored=False)).verify(sign(KEY, claims()))


async def test_unreachable_blacklist_fails_closed() -> None:
    with pytest.raises(Unavailable):
        await verifier(BrokenRevocations()).verify(sign(KEY, claims()))


@pytest.mark.parametrize("missing", ["sub", "jti", "exp", "aud", "typ", "provider", "iat"])
async def test_token_without_a_required_claim_is_401(missing: str) -> None:
    with pytest.raises(Unauthenticated):
        await verifier().verify(sign(KEY, claims(**{missing: None})))


async def test_a_boolean_time_is_malformed_not_one_second_after_1970() -> None:
    with pytest.raises(Unauthenticated) as caught:
        await verifier().verify(sign(KEY, claims(iat=True)))
    assert caught.value.code == "malformed_token"


async def test_a_verified_token_is_not_verified_again_but_its_expiry_and_blacklist_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eco2 import tokens

    decoded: list[str] = []
    original = tokens.decode

    def counting_decode(token: str, key: Any, **kwargs: Any) -> dict[str, Any]:
        decoded.append(token)
        return original(token, key, **kwargs)

    monkeypatch.setattr(tokens, "decode", counting_decode)
    keys, revocations = StaticKeys(KEY), MemoryRevocations()
    now = [time.time()]
    checker = AccessCheck(
        TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=lambda: now[0]), revocations
    )
    payload = claims(exp=int(now[0]) + 60)
    token = sign(KEY, payload)
    assert (await checker.verify(token)).user_id == payload["sub"]
    assert (await checker.verify(token)).user_id == payload["sub"]
    assert decoded == [token]  # the signature was verified once
    revocations.revoke(payload["sid"])
    with pytest.raises(Unauthenticated, match="session was ended"):
        await checker.verify(token)
    revocations.revoked.clear()
    now[0] += 61 + 5  # past exp and the leeway
    with pytest.raises(Unauthenticated) as caught:
        await checker.verify(token)
    assert caught.value.code == "token_expired"


async def test_a_cached_token_fails_once_auth_withdraws_its_key() -> None:
    keys = StaticKeys(KEY)
    checker = verifier(keys=keys)
    token = sign(KEY, claims())
    await checker.verify(token)
    keys.keys.clear()  # auth no longer publishes the key (e.g. it was compromised)
    with pytest.raises(Unauthenticated, match="not signed by a key"):
        await checker.verify(token)


async def test_the_claims_alone_skip_the_blacklist_but_not_the_token_type() -> None:
    """What the gateway checks itself (Envoy's jwt_authn plus the token type): a revoked token
    still has valid claims, a refresh token does not."""
    payload = claims()
    checks = TokenVerifier(StaticKeys(KEY), issuer=ISSUER, audience=AUDIENCE)
    assert (await checks.claims(sign(KEY, payload)))["jti"] == payload["jti"]
    with pytest.raises(Forbidden):
        await checks.claims(sign(KEY, claims(typ="refresh")))


def test_the_token_is_the_bearer_header_else_the_cookie() -> None:
    assert token_from("Bearer abc ", "from-cookie") == "abc"
    assert token_from(None, "from-cookie") == "from-cookie"
    assert token_from(None, "") is None
    for header in ("Basic abc", "Bearer ", "abc"):
        with pytest.raises(Unauthenticated) as caught:
            token_from(header, "from-cookie")
        assert caught.value.code == "malformed_token"
