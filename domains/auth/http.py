"""Auth's public routes under ``/api/v1/auth`` (no ``X-User-ID`` needed: this is where one gets it).

Tokens travel both ways: as HttpOnly cookies for the browser (``s_access`` on ``/``, ``s_refresh``
only on ``/api/v1/auth``) and in the JSON body for API clients, which send them back as
``Authorization: Bearer`` (access) or ``{"refresh_token": ...}`` (refresh, logout).
Token responses carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from domains.auth.model import OAUTH_PROVIDERS, dev_profile
from domains.auth.providers import OAuthProvider, fake_code
from domains.auth.sessions import Session, Sessions
from domains.auth.tokens import STATE_TTL_S, TokenService
from eco2.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from eco2.events import EventMetadata
from eco2.http import error_body, error_responses
from eco2.settings import AuthSettings, Settings

PREFIX = "/api/v1/auth"
STATE_COOKIE = "s_oauth_state"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class AuthContext:
    """What the routes need, built once by the composition root (``service.py``)."""

    settings: Settings
    tokens: TokenService
    sessions: Sessions
    providers: dict[str, OAuthProvider]


async def _context(request: Request) -> AuthContext:
    context: AuthContext = request.app.state.auth
    return context


Context = Annotated[AuthContext, Depends(_context)]
router = APIRouter(prefix=PREFIX, tags=["auth"])


class DevLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nickname: str | None = Field(default=None, min_length=1, max_length=40)
    user_key: str | None = Field(default=None, min_length=1, max_length=64)
    """The same key signs in the same user; omit it for a new random user."""


class TokenRequest(BaseModel):
    """For API clients that keep tokens themselves; browsers send the cookie instead."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(default=None, max_length=4096)


class SessionOut(BaseModel):
    user_id: str
    provider: str
    display_name: str
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


def _metadata(request: Request) -> EventMetadata:
    correlation = request.headers.get("x-correlation-id") or request.headers.get("x-request-id")
    return EventMetadata(
        traceparent=request.headers.get("traceparent"),
        correlation_id=(correlation or str(uuid.uuid4()))[:128],
    )


def _set_cookie(response: Response, auth: AuthSettings, name: str, value: str, **at: Any) -> None:
    """Set (``max_age`` > 0) or clear (``max_age`` 0) cookie ``name`` with the configured flags."""
    response.set_cookie(
        name,
        value,
        max_age=at["max_age"],
        path=at["path"],
        domain=auth.cookie_domain,
        secure=auth.cookie_secure,
        httponly=True,
        samesite=at.get("samesite", auth.cookie_samesite),
    )


def set_session_cookies(response: Response, session: Session, auth: AuthSettings) -> None:
    access, refresh = session.access.token, session.refresh.token
    _set_cookie(response, auth, auth.access_cookie, access, max_age=auth.access_ttl_s, path="/")
    _set_cookie(
        response, auth, auth.refresh_cookie, refresh, max_age=auth.refresh_ttl_s, path=PREFIX
    )


def clear_session_cookies(response: Response, auth: AuthSettings) -> None:
    _set_cookie(response, auth, auth.access_cookie, "", max_age=0, path="/")
    _set_cookie(response, auth, auth.refresh_cookie, "", max_age=0, path=PREFIX)


def _session_response(session: Session, auth: AuthSettings) -> JSONResponse:
    body = SessionOut(
        user_id=session.user_id,
        provider=session.provider,
        display_name=session.display_name,
        access_token=session.access.token,
        refresh_token=session.refresh.token,
        expires_in=session.expires_in,
    )
    response = JSONResponse(body.model_dump(), headers=NO_STORE)
    set_session_cookies(response, session, auth)
    return response


def _bearer(request: Request, cookie: str) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(cookie)


@router.post("/dev-login", response_model=SessionOut, responses=error_responses(403))
async def dev_login(
    request: Request, context: Context, body: DevLoginRequest | None = None
) -> JSONResponse:
    """Sign in without a provider (development and tests only)."""
    settings = context.settings
    if settings.environment == "production" or not settings.auth.dev_login:
        raise Forbidden(
            "dev-login is disabled here; sign in with GET /api/v1/auth/{provider}/authorize",
            code="dev_login_disabled",
        )
    body = body or DevLoginRequest()
    profile = dev_profile(body.nickname, body.user_key)
    session = await context.sessions.sign_in(profile, _metadata(request))
    return _session_response(session, settings.auth)


@router.post("/refresh", response_model=SessionOut, responses=error_responses(401))
async def refresh(request: Request, context: Context, body: TokenRequest | None = None) -> Response:
    """Rotate the refresh token (JSON body, else the ``s_refresh`` cookie); 401 = sign in again."""
    auth = context.settings.auth
    token = (body.refresh_token if body else None) or request.cookies.get(auth.refresh_cookie)
    try:
        session = await context.sessions.refresh(token)
    except Unauthenticated as exc:
        response = JSONResponse(error_body(exc.code, exc.message), status_code=401)
        clear_session_cookies(response, auth)
        return response
    return _session_response(session, auth)


@router.post("/logout", status_code=204)
async def logout(request: Request, context: Context, body: TokenRequest | None = None) -> Response:
    """Revoke the session and blacklist the access token; always clears the cookies."""
    auth = context.settings.auth
    refresh_token = (body.refresh_token if body else None) or request.cookies.get(
        auth.refresh_cookie
    )
    await context.sessions.logout(_bearer(request, auth.access_cookie), refresh_token)
    response = Response(status_code=204, headers=NO_STORE)
    clear_session_cookies(response, auth)
    return response


@router.get("/.well-known/jwks.json")
async def jwks(context: Context) -> JSONResponse:
    """The public keys ext-authz verifies access tokens with."""
    return JSONResponse(context.tokens.jwks(), headers={"Cache-Control": "public, max-age=300"})


def _provider(context: Context, name: str) -> OAuthProvider:
    provider = context.providers.get(name)
    if provider is None:
        raise NotFound(
            f"unknown sign-in provider {name!r}; use one of: {', '.join(OAUTH_PROVIDERS)}",
            code="unknown_provider",
        )
    return provider


def _callback_url(request: Request, provider: str) -> str:
    """The absolute callback URL as the browser sees it (behind the gateway: X-Forwarded-*)."""
    scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or "localhost"
    return (
        f"{scheme.split(',')[0].strip()}://{host.split(',')[0].strip()}{PREFIX}/{provider}/callback"
    )


@router.get("/fake/authorize", include_in_schema=False)
async def fake_authorize(
    context: Context,
    state: str,
    redirect_uri: str,
    login_hint: Annotated[str | None, Query(max_length=128)] = None,
) -> RedirectResponse:
    """The fake provider's sign-in page: answers at once with a code for ``login_hint``.

    Only the path of ``redirect_uri`` is used and it must be one of our callbacks
    (``/api/v1/auth/<provider>/callback``), so this cannot redirect anywhere else."""
    if context.settings.auth.oauth_mode != "fake":
        raise NotFound("the fake sign-in provider is off (ECO2_AUTH__OAUTH_MODE=real)")
    path = urlsplit(redirect_uri).path
    if path not in {f"{PREFIX}/{name}/callback" for name in context.providers}:
        raise InvalidInput(f"redirect_uri must be {PREFIX}/<provider>/callback")
    query = urlencode({"code": fake_code(login_hint), "state": state})
    return RedirectResponse(f"{path}?{query}", status_code=302)


@router.get("/{provider}/authorize", status_code=302, response_class=RedirectResponse)
async def authorize(
    request: Request,
    context: Context,
    provider: str,
    login_hint: Annotated[str | None, Query(max_length=128)] = None,
) -> RedirectResponse:
    """Start signing in with ``provider``: 302 to its sign-in page with a signed ``state``
    (also set as a cookie, checked on the way back)."""
    adapter = _provider(context, provider)
    state = context.tokens.issue_state(provider)
    url = adapter.authorize_url(
        state=state, redirect_uri=_callback_url(request, provider), login_hint=login_hint
    )
    response = RedirectResponse(url, status_code=302, headers=NO_STORE)
    # Lax whatever the session cookies use: the provider's redirect back is a cross-site GET.
    _set_cookie(
        response,
        context.settings.auth,
        STATE_COOKIE,
        state,
        max_age=STATE_TTL_S,
        path=PREFIX,
        samesite="lax",
    )
    return response


@router.get(
    "/{provider}/callback",
    status_code=302,
    response_class=RedirectResponse,
    responses=error_responses(401),
)
async def callback(
    request: Request,
    context: Context,
    provider: str,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    """The provider sends the browser back here: check ``state``, sign in, set the cookies and
    302 to ``auth.frontend_url``."""
    adapter = _provider(context, provider)
    start_again = f"start again at {PREFIX}/{provider}/authorize"
    if error or not code:
        raise Unauthenticated(
            f"{provider} did not sign you in ({error or 'no code'}); {start_again}",
            code="oauth_failed",
        )
    if not state or state != request.cookies.get(STATE_COOKIE):
        raise Unauthenticated(
            f"the sign-in state is missing or does not match this browser; {start_again}",
            code="invalid_state",
        )
    try:
        context.tokens.verify_state(state, provider)
    except Unauthenticated as exc:
        raise Unauthenticated(f"{exc.message}; {start_again}", code="invalid_state") from exc
    profile = await adapter.profile(
        code=code, state=state, redirect_uri=_callback_url(request, provider)
    )
    session = await context.sessions.sign_in(profile, _metadata(request))
    auth = context.settings.auth
    response = RedirectResponse(auth.frontend_url, status_code=302, headers=NO_STORE)
    set_session_cookies(response, session, auth)
    _set_cookie(response, auth, STATE_COOKIE, "", max_age=0, path=PREFIX, samesite="lax")
    return response
