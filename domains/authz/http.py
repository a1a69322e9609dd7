"""The ext-authz check endpoint, shaped for Envoy's HTTP ``ext_authz`` filter.

Envoy sends the original request's method, path (behind ``path_prefix: /check``) and the headers
it is told to forward (``authorization``, ``cookie``); the body is not needed. Answers:

* **200**, empty, with ``x-user-id: <sub>`` and ``x-auth-provider: <provider>`` — copy both to the
  upstream request (and strip any client-sent copies before this filter runs);
* **401** ``{"error": {code, message}}`` with ``WWW-Authenticate: Bearer error="invalid_token"`` —
  no token, or one that is malformed, expired, badly signed, from an unknown key or revoked.
  The web client reacts by calling ``POST /api/v1/auth/refresh`` once, then signing in again;
* **403** — a genuine token (valid signature and times) that is not for this API: wrong audience
  or not an access token. Refreshing cannot fix it, so it is not a 401;
* **503** — auth's keys or the Valkey blacklist are unreachable: fail closed.

The token is the ``Authorization: Bearer`` header or, when that header is absent, the
``s_access`` cookie (a browser ``EventSource`` cannot set headers). An ``Authorization`` header
with another scheme is refused rather than silently ignored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from domains.authz.verifier import CHALLENGE, AccessCheck, token_from
from eco2.errors import Forbidden, Unauthenticated
from eco2.http import error_body

CHECK_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

router = APIRouter(tags=["ext-authz"])


@router.api_route("/check", methods=CHECK_METHODS, include_in_schema=False)
@router.api_route("/check/{path:path}", methods=CHECK_METHODS, include_in_schema=False)
async def check(request: Request) -> Response:
    """Allow (200 + identity headers) or deny (401/403) the forwarded request."""
    access: AccessCheck = request.app.state.access
    cookie: str = request.app.state.access_cookie
    try:
        token = token_from(request.headers.get("authorization"), request.cookies.get(cookie))
        principal = await access.verify(token)
    except Unauthenticated as exc:
        return JSONResponse(error_body(exc.code, exc.message), status_code=401, headers=CHALLENGE)
    except Forbidden as exc:
        return JSONResponse(error_body(exc.code, exc.message), status_code=403)
    return Response(
        status_code=200,
        headers=principal.headers(),
    )
