from __future__ import annotations

import time

import jwt
import pytest

from domains.auth.tokens import (
    ACCESS,
    REFRESH,
    RESTORED_KEY,
    SigningKey,
    TokenService,
    jwk_thumbprint,
    revoked_session_key,
)
from eco2.errors import Unauthenticated
from eco2.settings import AuthSettings

SETTINGS = AuthSettings()
KEY = SigningKey.generate()


def service(key: SigningKey = KEY, *others: SigningKey) -> TokenService:
    return TokenService(SETTINGS, key, others)


def issue(tokens: TokenService, typ: str = ACCESS, now: float | None = None) -> str:
    return tokens.issue(user_id="u-1", provider="kakao", typ=typ, family_id="f-1", now=now).token


def test_the_key_formats_are_the_contract_with_authz() -> None:
    assert revoked_session_key("abc-123") == "authz:revoked:session:abc-123"
    assert RESTORED_KEY == "authz:blacklist:restored"


def test_generated_key_publishes_an_es256_jwk_named_by_its_thumbprint() -> None:
    jwk = KEY.public_jwk
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk
    assert jwk["kid"] == KEY.kid == jwk_thumbprint(jwk)
    assert SigningKey.generate().kid != KEY.kid


def test_access_token_has_the_agreed_header_and_claims() -> None:
    before = int(time.time())
    issued = service().issue(user_id="u-1", provider="kakao", typ=ACCESS, family_id="f-1")
    header = jwt.get_unverified_header(issued.token)
    assert (header["alg"], header["kid"]) == ("ES256", KEY.kid)
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["iss"] == SETTINGS.issuer
    assert claims["aud"] == SETTINGS.audience
    assert (claims["sub"], claims["typ"], claims["provider"], claims["sid"]) == (
        "u-1",
        "access",
        "kakao",
        "f-1",
    )
    assert claims["jti"] == issued.jti
    assert claims["iat"] == claims["nbf"] >= before
    assert claims["exp"] - claims["iat"] == SETTINGS.access_ttl_s
    assert issued.expires_at.timestamp() == claims["exp"]


def test_refresh_token_lives_refresh_ttl_and_keeps_a_given_jti() -> None:
    issued = service().issue(
        user_id="u", provider="dev", typ=REFRESH, family_id="f", now=1000, jti="j-1"
    )
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert (claims["jti"], claims["exp"]) == ("j-1", 1000 + SETTINGS.refresh_ttl_s)


def test_verify_roundtrip_and_type_check() -> None:
    tokens = service()
    assert tokens.verify(issue(tokens), typ=ACCESS)["sub"] == "u-1"
    with pytest.raises(Unauthenticated):
        tokens.verify(issue(tokens, REFRESH), typ=ACCESS)
    with pytest.raises(Unauthenticated):
        tokens.verify(issue(tokens, ACCESS), typ=REFRESH)


def test_expired_token_is_refused_unless_time_is_not_checked() -> None:
    tokens = service()
    old = issue(tokens, now=time.time() - 3600)
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(old, typ=ACCESS)
    assert caught.value.code == "token_expired"
    assert tokens.verify(old, typ=ACCESS, check_time=False)["sub"] == "u-1"


def test_token_of_another_key_is_refused_even_with_our_kid() -> None:
    forged = jwt.encode(
        jwt.decode(issue(service()), options={"verify_signature": False}),
        SigningKey.generate().private_pem,
        algorithm="ES256",
        headers={"kid": KEY.kid},
    )
    with pytest.raises(Unauthenticated):
        service().verify(forged, typ=ACCESS)


def test_tokens_of_an_older_published_key_still_verify() -> None:
    old = SigningKey.generate()
    token = issue(service(old))
    assert service(KEY, old).verify(token, typ=ACCESS)["sub"] == "u-1"
    assert {k["kid"] for k in service(KEY, old).jwks()["keys"]} == {KEY.kid, old.kid}
    with pytest.raises(Unauthenticated):
        service(KEY).verify(token, typ=ACCESS)


def test_alg_none_is_refused() -> None:
    claims = jwt.decode(issue(service()), options={"verify_signature": False})
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        service().verify(unsigned, typ=ACCESS)


def test_oauth_state_is_bound_to_its_provider_and_is_no_access_token() -> None:
    tokens = service()
    state = tokens.issue_state("kakao")
    tokens.verify_state(state, "kakao")
    with pytest.raises(Unauthenticated):
        tokens.verify_state(state, "google")
    with pytest.raises(Unauthenticated):
        tokens.verify(state, typ=ACCESS)
    with pytest.raises(Unauthenticated):
        tokens.verify_state(issue(tokens), "kakao")


def test_expired_oauth_state_is_refused() -> None:
    old = TokenService(SETTINGS, KEY, clock=lambda: time.time() - 3600).issue_state("naver")
    with pytest.raises(Unauthenticated):
        service().verify_state(old, "naver")
