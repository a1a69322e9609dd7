"""HTTP routes of the image service (domain.md §11.5 [compat]).

Sign-in (``X-User-ID`` from the gateway) is required for ``POST /api/v1/images/{channel}`` and
its ``/callback``. Two route families need NO sign-in, and the gateway must let them through:

* ``PUT /api/v1/images/upload/{key}``: the URL's HMAC signature is the credential;
* ``GET /api/v1/images/objects/{key}``: public reads of stored objects. This is the local
  stand-in for the CDN: in a deployment with S3, a CDN in front of the bucket serves
  ``cdn_base_url/<key>`` and this route is only a fallback origin.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from domains.image.model import MAX_FILENAME_CHARS
from domains.image.uploads import SignedPut, UploadRequest, Uploads
from eco2.http import CurrentUser, error_responses

EXAMPLE_BODY = '{"filename": "bottle.jpg", "content_type": "image/jpeg"}'
OBJECT_CACHE_CONTROL = "public, max-age=31536000, immutable"  # a key is never re-uploaded

router = APIRouter()


class CreateUploadBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = Field(min_length=1, max_length=MAX_FILENAME_CHARS)
    content_type: str = Field(min_length=1, max_length=100)
    uploader_id: str | None = Field(default=None, max_length=128)
    """Accepted for compatibility and ignored: the uploader is always the signed-in caller."""
    metadata: dict[str, Any] | None = None


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str = Field(min_length=1, max_length=1024)
    etag: str | None = Field(default=None, max_length=256)
    content_length: int | None = Field(default=None, ge=0)
    checksum: str | None = Field(default=None, max_length=256)


async def _uploads(request: Request) -> Uploads:
    uploads: Uploads = request.app.state.uploads
    return uploads


UploadsDep = Annotated[Uploads, Depends(_uploads)]


@router.post("/api/v1/images/{channel}", status_code=201, responses=error_responses(429))
async def create_upload(
    channel: str, body: CreateUploadBody, user_id: CurrentUser, uploads: UploadsDep
) -> dict[str, Any]:
    """A signed upload URL (valid ``url_ttl_s``) and the CDN URL the object will have."""
    request = UploadRequest(body.filename, body.content_type, body.metadata)
    return await uploads.grant(user_id, channel, request)


@router.post("/api/v1/images/{channel}/callback")
async def upload_callback(
    channel: str, body: CallbackBody, user_id: CurrentUser, uploads: UploadsDep
) -> dict[str, Any]:
    """Compat: the status of the caller's own upload (the PUT already finalised it)."""
    return await uploads.status(user_id, channel, body.key)


UPLOAD_PREFIX = "/api/v1/images/upload/"


@router.put(UPLOAD_PREFIX + "{key:path}", responses=error_responses(403, 409, 413, 415))
async def upload_object(
    key: str,
    request: Request,
    uploads: UploadsDep,
    expires: str | None = None,
    uid: str | None = None,
    ct: str | None = None,
    sig: str | None = None,
    traceparent: Annotated[str | None, Header()] = None,
    x_correlation_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Store the file of a signed upload URL (no sign-in: the signature is the credential)."""
    put = SignedPut(
        key=key,
        expires=expires,
        uid=uid,
        ct=ct,
        sig=sig,
        content_type_header=request.headers.get("content-type"),
        content_length_header=request.headers.get("content-length"),
        traceparent=traceparent,
        correlation_id=x_correlation_id,
    )
    result = await uploads.receive(put, request.stream())
    return JSONResponse(result, headers={"ETag": f'"{result["etag"]}"'})


@router.get("/api/v1/images/objects/{key:path}")
async def read_object(key: str, uploads: UploadsDep) -> Response:
    """A stored object with its content type (public; the local stand-in for the CDN)."""
    found = await uploads.read_object(key)
    return Response(
        content=found.body,
        media_type=found.info.content_type,
        headers={
            "ETag": f'"{found.info.etag}"',
            "Cache-Control": OBJECT_CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
        },
    )
