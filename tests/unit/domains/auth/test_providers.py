from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from domains.auth.model import ProviderProfile
from domains.auth.providers import (
    FakeProvider,
    GoogleProvider,
    KakaoProvider,
    NaverProvider,
    OAuth2Provider,
    build_providers,
    fake_code,
)
from eco2.errors import Unauthenticated, Unavailable
from eco2.settings import AuthSettings

REDIRECT = "https://eco2.example/api/v1/auth/kakao/callback"
Answer = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers by URL and keeps the requests it saw."""

    def __init__(self, token: httpx.Response, profile: httpx.Response) -> None:
        self.token, self.profile = token, profile
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.token if "token" in request.url.path else self.profile

    def form(self, index: int = 0) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[index].content.decode()).items()}


def token_ok() -> httpx.Response:
    return httpx.Response(200, json={"access_token": "at-1", "token_type": "bearer"})


async def run(
    kind: type[OAuth2Provider], recorder: Recorder, secret: str | None = "shh"
) -> tuple[Recorder, ProviderProfile]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        profile = await kind(client, "cid", secret).profile(
            code="code-1", state="st-1", redirect_uri=REDIRECT
        )
    return recorder, profile


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_kakao_exchanges_the_code_and_maps_the_profile() -> None:
    me = {"id": 4242, "kakao_account": {"profile": {"nickname": "에코"}}}
    recorder, profile = await run(KakaoProvider, Recorder(token_ok(), httpx.Response(200, json=me)))
    token_request, profile_request = recorder.requests
    assert (token_request.method, str(token_request.url)) == (
        "POST",
        "https://kauth.kakao.com/oauth/token",
    )
    assert token_request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert recorder.form() == {
        "grant_type": "authorization_code",
        "client_id": "cid",
        "client_secret": "shh",
        "redirect_uri": REDIRECT,
        "code": "code-1",
    }
    assert str(profile_request.url) == "https://kapi.kakao.com/v2/user/me"
    assert profile_request.headers["authorization"] == "Bearer at-1"
    assert (profile.provider, profile.subject, profile.display_name) == ("kakao", "4242", "에코")


async def test_kakao_falls_back_to_properties_nickname_and_omits_an_unset_secret() -> None:
    me = {"id": 7, "properties": {"nickname": "eco"}}
    recorder, profile = await run(
        KakaoProvider, Recorder(token_ok(), httpx.Response(200, json=me)), secret=None
    )
    assert "client_secret" not in recorder.form()
    assert profile.display_name == "eco"


async def test_google_uses_openid_userinfo() -> None:
    info = {"sub": "1097", "name": "Eco Two", "email": "e@example.com"}
    recorder, profile = await run(
        GoogleProvider, Recorder(token_ok(), httpx.Response(200, json=info))
    )
    assert str(recorder.requests[0].url) == "https://oauth2.googleapis.com/token"
    assert str(recorder.requests[1].url) == "https://openidconnect.googleapis.com/v1/userinfo"
    assert (profile.subject, profile.display_name) == ("1097", "Eco Two")


async def test_naver_sends_state_to_the_token_endpoint_and_reads_response() -> None:
    me = {"resultcode": "00", "message": "success", "response": {"id": "nv-1", "nickname": "에코"}}
    recorder, profile = await run(NaverProvider, Recorder(token_ok(), httpx.Response(200, json=me)))
    assert str(recorder.requests[0].url) == "https://nid.naver.com/oauth2.0/token"
    assert recorder.form()["state"] == "st-1"
    assert str(recorder.requests[1].url) == "https://openapi.naver.com/v1/nid/me"
    assert (profile.subject, profile.display_name) == ("nv-1", "에코")


async def test_naver_error_result_is_refused() -> None:
    me = {"resultcode": "024", "message": "Authentication failed"}
    with pytest.raises(Unauthenticated, match="Authentication failed"):
        await run(NaverProvider, Recorder(token_ok(), httpx.Response(200, json=me)))


@pytest.mark.parametrize(
    "token",
    [
        httpx.Response(400, json={"error": "invalid_grant", "error_description": "bad code"}),
        httpx.Response(200, json={"error": "invalid_request"}),  # Naver answers errors with 200
        httpx.Response(200, json={"token_type": "bearer"}),
        httpx.Response(200, text="not json"),
    ],
)
async def test_refused_code_is_401(token: httpx.Response) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await run(KakaoProvider, Recorder(token, httpx.Response(200, json={"id": 1})))
    assert caught.value.code == "oauth_failed"


async def test_profile_without_id_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="no user id"):
        await run(GoogleProvider, Recorder(token_ok(), httpx.Response(200, json={"name": "x"})))


async def test_provider_outage_is_retriable() -> None:
    with pytest.raises(Unavailable):
        await run(KakaoProvider, Recorder(httpx.Response(502), httpx.Response(200, json={})))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(Unavailable):
            await KakaoProvider(client, "cid", None).profile(
                code="c", state="s", redirect_uri=REDIRECT
            )


async def test_authorize_urls_carry_client_redirect_and_state() -> None:
    async with httpx.AsyncClient() as client:
        kakao = KakaoProvider(client, "cid", None).authorize_url(
            state="st", redirect_uri=REDIRECT, login_hint=None
        )
        google = GoogleProvider(client, "gid", None).authorize_url(
            state="st", redirect_uri=REDIRECT, login_hint="me@example.com"
        )
        naver = NaverProvider(client, "nid", None).authorize_url(
            state="st", redirect_uri=REDIRECT, login_hint=None
        )
        with pytest.raises(Unavailable, match="not configured"):
            KakaoProvider(client, None, None).authorize_url(
                state="st", redirect_uri=REDIRECT, login_hint=None
            )
    assert kakao.startswith("https://kauth.kakao.com/oauth/authorize?")
    assert query(kakao) == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": REDIRECT,
        "state": "st",
    }
    assert google.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert query(google)["scope"] == "openid profile"
    assert query(google)["login_hint"] == "me@example.com"
    assert naver.startswith("https://nid.naver.com/oauth2.0/authorize?")
    assert query(naver)["client_id"] == "nid"


async def test_fake_provider_is_deterministic_and_offline() -> None:
    fake = FakeProvider("kakao")
    url = fake.authorize_url(state="st", redirect_uri=REDIRECT, login_hint="alice")
    assert url.startswith("/api/v1/auth/fake/authorize?")
    assert query(url) == {
        "state": "st",
        "redirect_uri": REDIRECT,
        "login_hint": "alice",
    }
    first = await fake.profile(code=fake_code("alice"), state="st", redirect_uri=REDIRECT)
    again = await fake.profile(code=fake_code("alice"), state="x", redirect_uri=REDIRECT)
    other = await fake.profile(code=fake_code("bob"), state="st", redirect_uri=REDIRECT)
    assert first == again
    assert first.subject == "fake-alice"
    assert first.provider == "kakao"
    assert other.subject != first.subject
    with pytest.raises(Unauthenticated):
        await fake.profile(code="fake.!!!", state="st", redirect_uri=REDIRECT)


async def test_build_providers_by_mode() -> None:
    async with httpx.AsyncClient() as client:
        fake = build_providers(AuthSettings(), client)
        real = build_providers(
            AuthSettings(
                oauth_mode="real",
                oauth_client_ids={"kakao": "k"},
                oauth_client_secrets={"kakao": SecretStr("s")},
            ),
            client,
        )
    assert sorted(fake) == sorted(real) == ["google", "kakao", "naver"]
    assert all(isinstance(p, FakeProvider) for p in fake.values())
    assert isinstance(real["kakao"], KakaoProvider)
    assert isinstance(real["naver"], NaverProvider)
