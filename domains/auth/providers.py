"""OAuth 2.0 sign-in providers: Kakao, Google and Naver over httpx, and an offline fake.

Each adapter turns the authorization ``code`` the browser brings back into a
:class:`~domains.auth.model.ProviderProfile`: it exchanges the code at the provider's token
endpoint (form POST, ``grant_type=authorization_code``), then reads the user's profile with the
access token. Raises :class:`Unauthenticated` (``oauth_failed``) when the provider refuses the code
or answers without an id (the user should start signing in again) and :class:`Unavailable` when the
provider cannot be reached or answers 5xx.

``FakeProvider`` (``oauth_mode = "fake"``) stands in for all three: its authorize page is served
by auth itself (``GET /api/v1/auth/fake/authorize``) and sends the browser straight back with a
code that encodes a subject derived from ``login_hint``, so the whole flow runs offline.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from domains.auth.model import OAUTH_PROVIDERS, ProviderProfile, display_name_of
from eco2.errors import Unauthenticated, Unavailable
from eco2.settings import AuthSettings

FAKE_AUTHORIZE_PATH = "/api/v1/auth/fake/authorize"


class OAuthProvider(Protocol):
    name: str

    def authorize_url(self, *, state: str, redirect_uri: str, login_hint: str | None) -> str:
        """Where to send the browser to sign in; the provider comes back to ``redirect_uri``."""
        ...

    async def profile(self, *, code: str, state: str, redirect_uri: str) -> ProviderProfile:
        """The signed-in person behind ``code`` (see the module docstring for what is raised)."""
        ...


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    profile: str
    scope: str | None = None


KAKAO = Endpoints(
    authorize="https://kauth.kakao.com/oauth/authorize",
    token="https://kauth.kakao.com/oauth/token",
    profile="https://kapi.kakao.com/v2/user/me",
)
GOOGLE = Endpoints(
    authorize="https://accounts.google.com/o/oauth2/v2/auth",
    token="https://oauth2.googleapis.com/token",
    profile="https://openidconnect.googleapis.com/v1/userinfo",
    scope="openid profile",
)
NAVER = Endpoints(
    authorize="https://nid.naver.com/oauth2.0/authorize",
    token="https://nid.naver.com/oauth2.0/token",
    profile="https://openapi.naver.com/v1/nid/me",
)


class OAuth2Provider:
    """The authorization-code flow shared by the three providers; subclasses map the profile."""

    name = ""
    endpoints: Endpoints
    token_needs_state = False

    def __init__(
        self, client: httpx.AsyncClient, client_id: str | None, client_secret: str | None
    ) -> None:
        self._client, self._client_id, self._client_secret = client, client_id, client_secret

    def authorize_url(self, *, state: str, redirect_uri: str, login_hint: str | None) -> str:
        params = {
            "response_type": "code",
            "client_id": self._require_client_id(),
            "redirect_uri": redirect_uri,
            "state": state,
        }
        if self.endpoints.scope:
            params["scope"] = self.endpoints.scope
        if login_hint and self.name == "google":
            params["login_hint"] = login_hint
        return f"{self.endpoints.authorize}?{urlencode(params)}"

    async def profile(self, *, code: str, state: str, redirect_uri: str) -> ProviderProfile:
        token = await self._exchange(code, state, redirect_uri)
        data = await self._call("GET", self.endpoints.profile, bearer=token)
        return self.map_profile(data)

    def map_profile(self, data: dict[str, Any]) -> ProviderProfile:
        raise NotImplementedError

    async def _exchange(self, code: str, state: str, redirect_uri: str) -> str:
        form = {
            "grant_type": "authorization_code",
            "client_id": self._require_client_id(),
            "redirect_uri": redirect_uri,
            "code": code,
        }
        if self._client_secret:
            form["client_secret"] = self._client_secret
        if self.token_needs_state:
            form["state"] = state
        data = await self._call("POST", self.endpoints.token, form=form)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._refused(str(data.get("error_description") or data.get("error")))
        return token

    async def _call(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        bearer: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            response = await self._client.request(method, url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{self.name} did not answer ({exc}); try signing in again") from exc
        if response.status_code >= 500:
            raise Unavailable(f"{self.name} failed ({response.status_code}); try again later")
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400 or not isinstance(data, dict) or "error" in data:
            detail = data.get("error_description") or data.get("error") if data else None
            raise self._refused(str(detail or response.status_code))
        return data

    def _refused(self, detail: str) -> Unauthenticated:
        return Unauthenticated(
            f"{self.name} refused the sign-in ({detail}); start signing in again",
            code="oauth_failed",
        )

    def _require_client_id(self) -> str:
        if not self._client_id:
            raise Unavailable(
                f"{self.name} sign-in is not configured: set "
                f'ECO2_AUTH__OAUTH_CLIENT_IDS=\'{{"{self.name}": "..."}}\' (and its secret)',
                code="provider_not_configured",
            )
        return self._client_id

    def _subject(self, value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise self._refused("the profile has no user id")
        return str(value)


class KakaoProvider(OAuth2Provider):
    """``/v2/user/me``: ``{"id": 123, "kakao_account": {"profile": {"nickname": ...}}}``."""

    name, endpoints = "kakao", KAKAO

    def map_profile(self, data: dict[str, Any]) -> ProviderProfile:
        subject = self._subject(data.get("id"))
        account = data.get("kakao_account") or {}
        nickname = (account.get("profile") or {}).get("nickname")
        nickname = nickname or (data.get("properties") or {}).get("nickname")
        return ProviderProfile(self.name, subject, display_name_of(nickname, subject))


class GoogleProvider(OAuth2Provider):
    """OpenID Connect userinfo: ``{"sub": "1097...", "name": ..., "email": ...}``."""

    name, endpoints = "google", GOOGLE

    def map_profile(self, data: dict[str, Any]) -> ProviderProfile:
        subject = self._subject(data.get("sub"))
        return ProviderProfile(self.name, subject, display_name_of(data.get("name"), subject))


class NaverProvider(OAuth2Provider):
    """``/v1/nid/me``: ``{"resultcode": "00", "response": {"id": ..., "nickname": ...}}``."""

    name, endpoints = "naver", NAVER
    token_needs_state = True

    def map_profile(self, data: dict[str, Any]) -> ProviderProfile:
        if data.get("resultcode") != "00":
            raise self._refused(str(data.get("message") or data.get("resultcode")))
        body = data.get("response") or {}
        subject = self._subject(body.get("id"))
        name = body.get("nickname") or body.get("name")
        return ProviderProfile(self.name, subject, display_name_of(name, subject))


def fake_code(login_hint: str | None) -> str:
    """The fake provider's authorization code: the deterministic subject, encoded."""
    hint = (login_hint or "").strip()[:64] or "user"
    raw = json.dumps({"sub": f"fake-{hint}", "name": hint}).encode()
    return "fake." + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class FakeProvider:
    """Offline stand-in for ``name``: the same ``login_hint`` always yields the same subject."""

    def __init__(self, name: str) -> None:
        self.name = name

    def authorize_url(self, *, state: str, redirect_uri: str, login_hint: str | None) -> str:
        params = {"state": state, "redirect_uri": redirect_uri}
        if login_hint:
            params["login_hint"] = login_hint
        return f"{FAKE_AUTHORIZE_PATH}?{urlencode(params)}"

    async def profile(self, *, code: str, state: str, redirect_uri: str) -> ProviderProfile:
        try:
            encoded = code.removeprefix("fake.")
            data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            subject, name = str(data["sub"]), str(data["name"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated(
                "the sign-in code is not valid; start signing in again", code="oauth_failed"
            ) from exc
        return ProviderProfile(self.name, subject, display_name_of(name, subject))


_REAL: dict[str, type[OAuth2Provider]] = {
    "kakao": KakaoProvider,
    "google": GoogleProvider,
    "naver": NaverProvider,
}


def build_providers(settings: AuthSettings, client: httpx.AsyncClient) -> dict[str, OAuthProvider]:
    """One adapter per provider in :data:`OAUTH_PROVIDERS`, real or fake per ``oauth_mode``."""
    if settings.oauth_mode == "fake":
        return {name: FakeProvider(name) for name in OAUTH_PROVIDERS}
    providers: dict[str, OAuthProvider] = {}
    for name in OAUTH_PROVIDERS:
        secret = settings.oauth_client_secrets.get(name)
        providers[name] = _REAL[name](
            client,
            settings.oauth_client_ids.get(name),
            secret.get_secret_value() if secret else None,
        )
    return providers
