"""The simulator's HTTP app (aiohttp): OpenAI-compatible endpoints plus ``/sim``, ``/stats``.

Every response carries ``x-eco2-simulator: 1``. A client that disconnects cancels its handler
(``handler_cancellation=True`` in :mod:`model_sim.server`), so hung calls end cleanly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from model_sim import wire
from model_sim.batches import BatchOffice
from model_sim.config import Fault, SimConfig
from model_sim.engine import Plan, Simulator
from model_sim.request import BadRequest, CallRequest, parse_chat, parse_responses

SIMULATOR_HEADER = "x-eco2-simulator"
CALL_KEY_HEADER = "x-eco2-call-key"
SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)
BATCHES_KEY: web.AppKey[BatchOffice] = web.AppKey("batches", BatchOffice)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _mark_simulator(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[SIMULATOR_HEADER] = "1"
        raise
    if not response.prepared:
        response.headers[SIMULATOR_HEADER] = "1"
    return response


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(body, ensure_ascii=False)
    return web.json_response(text=text, status=status, headers=headers)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequest("the body is not JSON") from exc


def _fault_response(plan: Plan) -> web.Response:
    if plan.fault is Fault.RATE_LIMIT:
        body = wire.error_body(
            "Rate limit reached (simulated). Retry after the Retry-After seconds.",
            "requests",
            "rate_limit_exceeded",
        )
        return _json(body, 429, {"Retry-After": str(plan.retry_after_s)})
    body = wire.error_body("The simulator injected a server error.", "server_error", None)
    return _json(body, 500)


async def _call(
    request: web.Request,
    parse: Callable[[Any], CallRequest],
    reply: Callable[[web.Request, CallRequest, str, Plan], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    try:
        req = parse(await _body(request))
    except BadRequest as exc:
        return _json(wire.error_body(str(exc), "invalid_request_error", None), 400)
    kind, plan = req.kind, sim.plan(req)
    if plan.fault is not None:
        sim.record(kind, plan.fault, None)
    if plan.fault is Fault.RATE_LIMIT:
        return _fault_response(plan)
    with sim.in_flight(kind):
        if plan.fault is Fault.HANG:
            await asyncio.sleep(plan.delay_s)  # cancelled when the client goes away
            return _fault_response(Plan(Fault.SERVER_ERROR, 0.0))
        content = sim.content(req)
        if plan.fault is Fault.MALFORMED:
            content = wire.malformed(content)
        if not req.stream:
            await asyncio.sleep(plan.delay_s)
        if plan.fault is Fault.SERVER_ERROR or (plan.fault is Fault.BREAK and not req.stream):
            return _fault_response(Plan(Fault.SERVER_ERROR, 0.0))
        response = await reply(request, req, content, plan if req.stream else _NO_DELAY)
    if plan.fault is None:
        sim.record(kind, None, request.headers.get(CALL_KEY_HEADER))
    return response


_NO_DELAY = Plan(None, 0.0)


async def _stream(request: web.Request, frames: Iterable[bytes], plan: Plan) -> web.StreamResponse:
    """Send SSE frames: with a token gap, the delay before the first and the gap between the
    others; without, a quarter of the delay before the first, the rest spread over the others."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            SIMULATOR_HEADER: "1",
        }
    )
    await response.prepare(request)
    items = list(frames)
    delay_s = plan.delay_s
    if plan.token_gap_s:
        first, gap = delay_s, plan.token_gap_s
    else:
        first, gap = delay_s / 4, delay_s * 3 / 4 / max(1, len(items) - 1)
    if first:
        await asyncio.sleep(first)
    for i, frame in enumerate(items):
        if gap and i:
            await asyncio.sleep(gap)
        if plan.fault is Fault.BREAK and i == len(items) // 2:
            # Half the answer, then the connection drops (no [DONE], no end of the body).
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write(frame)
    await response.write_eof()
    return response


async def _chat_reply(
    request: web.Request, req: CallRequest, content: str, plan: Plan
) -> web.StreamResponse:
    if not req.stream:
        return _json(wire.chat_completion(req, content))
    frames = [wire.sse_data(chunk) for chunk in wire.chat_chunks(req, content)]
    return await _stream(request, [*frames, wire.sse_data("[DONE]")], plan)


async def _responses_reply(
    request: web.Request, req: CallRequest, content: str, plan: Plan
) -> web.StreamResponse:
    if not req.stream:
        return _json(wire.response_object(req, content, created_at=time.time()))
    frames = [wire.sse_data(body, event) for event, body in wire.response_events(req, content)]
    return await _stream(request, frames, plan)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _call(request, parse_chat, _chat_reply)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _call(request, parse_responses, _responses_reply)


async def models(_: web.Request) -> web.Response:
    return _json(wire.models_list())


def _not_found(what: str) -> web.Response:
    body = wire.error_body(f"No such {what} (simulator).", "invalid_request_error", None)
    return _json(body, 404)


async def upload_file(request: web.Request) -> web.Response:
    form = await request.post()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField) or not isinstance(purpose, str):
        body = wire.error_body("send multipart 'file' and 'purpose'", "invalid_request_error", None)
        return _json(body, 400)
    stored = request.app[BATCHES_KEY].add_file(upload.filename, purpose, upload.file.read())
    return _json(stored.as_dict())


async def list_files(request: web.Request) -> web.Response:
    files = [f.as_dict() for f in request.app[BATCHES_KEY].files.values()]
    return _json({"object": "list", "data": files, "has_more": False})


async def get_file(request: web.Request) -> web.Response:
    stored = request.app[BATCHES_KEY].files.get(request.match_info["file_id"])
    return _json(stored.as_dict()) if stored else _not_found("file")


async def file_content(request: web.Request) -> web.Response:
    stored = request.app[BATCHES_KEY].files.get(request.match_info["file_id"])
    if stored is None:
        return _not_found("file")
    return web.Response(body=stored.data, content_type="application/jsonl")


async def delete_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    if request.app[BATCHES_KEY].files.pop(file_id, None) is None:
        return _not_found("file")
    return _json({"id": file_id, "object": "file", "deleted": True})


async def create_batch(request: web.Request) -> web.Response:
    try:
        body = await _body(request)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        batch = request.app[BATCHES_KEY].create(
            str(body.get("input_file_id")), str(body.get("endpoint")), body.get("metadata")
        )
    except BadRequest as exc:
        return _json(wire.error_body(str(exc), "invalid_request_error", None), 400)
    return _json(batch)


async def get_batch(request: web.Request) -> web.Response:
    batch = request.app[BATCHES_KEY].batches.get(request.match_info["batch_id"])
    return _json(batch) if batch else _not_found("batch")


async def healthz(_: web.Request) -> web.Response:
    return _json({"status": "ok", "simulator": True})


async def stats(request: web.Request) -> web.Response:
    return _json(request.app[SIM_KEY].snapshot())


async def get_config(request: web.Request) -> web.Response:
    return _json(request.app[SIM_KEY].config.model_dump(mode="json"))


async def put_config(request: web.Request) -> web.Response:
    try:
        config = SimConfig.model_validate(await _body(request))
    except (BadRequest, ValidationError) as exc:
        return _json(wire.error_body(str(exc), "invalid_request_error", None), 400)
    request.app[SIM_KEY].replace(config)
    return await get_config(request)


async def reset(request: web.Request) -> web.Response:
    request.app[SIM_KEY].reset()
    return _json({"reset": True, "simulator": True})


def create_app(config: SimConfig, simulator: Simulator | None = None) -> web.Application:
    """The aiohttp application; it opens nothing until a runner serves it."""
    app = web.Application(middlewares=[_mark_simulator], client_max_size=32 * 1024**2)
    app[SIM_KEY] = simulator or Simulator(config)
    app[BATCHES_KEY] = BatchOffice(app[SIM_KEY])
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/files", upload_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", get_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_get("/stats", stats)
    app.router.add_get("/sim/config", get_config)
    app.router.add_put("/sim/config", put_config)
    app.router.add_post("/sim/reset", reset)
    return app
