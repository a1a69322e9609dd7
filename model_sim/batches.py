"""The Batch API of the simulator: ``/v1/files`` and ``/v1/batches`` for chat completions.

A batch's lines are answered like single calls (:meth:`Simulator.plan` decides each one's fault
and delay, :meth:`Simulator.content` its answer, the line's ``custom_id`` counts as its call key)
except that the per-minute rate limits do not apply: OpenAI queues batch work apart from the
online limits. The lines run side by side, so a batch finishes after its slowest line. Faults
land where OpenAI puts a failed request: a 429 or 500 line in the error file with its status and
error body, a hung line there as ``batch_expired``, a malformed answer in the output file as a
200 (the caller's parser finds it). Files and batches live in memory until deleted or the
process ends.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from model_sim import wire
from model_sim.config import Fault
from model_sim.engine import Simulator
from model_sim.request import BadRequest, parse_chat

ENDPOINT = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


def _line(custom_id: str, status: int | None, body: Any, error: Any = None) -> str:
    response = None
    if status is not None:
        response = {"status_code": status, "request_id": f"req_sim{uuid.uuid4().hex}", "body": body}
    record = {"id": f"batch_req_sim{uuid.uuid4().hex}", "custom_id": custom_id}
    return json.dumps({**record, "response": response, "error": error}, ensure_ascii=False)


@dataclass(frozen=True)
class _Request:
    custom_id: str
    body: dict[str, Any]


def _requests(data: bytes) -> list[_Request]:
    """The input file's lines; a line that is not a chat-completions request → BadRequest."""
    requests, seen = [], set()
    for number, raw in enumerate(data.decode().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"line {number} of the input file is not JSON") from exc
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(custom_id, str) or custom_id in seen:
            raise BadRequest(f"line {number}: every line needs its own string 'custom_id'")
        if line.get("method") != "POST" or line.get("url") != ENDPOINT:
            raise BadRequest(f"line {number}: the simulator batches POST {ENDPOINT} only")
        if not isinstance(line.get("body"), dict):
            raise BadRequest(f"line {number}: 'body' must be a JSON object")
        seen.add(custom_id)
        requests.append(_Request(custom_id, line["body"]))
    if not requests:
        raise BadRequest("the input file holds no request")
    return requests


class BatchOffice:
    """The files and batches of one simulator process (one event loop, no locks)."""

    def __init__(self, simulator: Simulator) -> None:
        self._sim = simulator
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add_file(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(f"file-sim{uuid.uuid4().hex}", filename, purpose, data)
        self.files[stored.id] = stored
        return stored

    def create(self, input_file_id: str, endpoint: str, metadata: Any) -> dict[str, Any]:
        """Validate the input and start the batch; its object as ``POST /v1/batches`` answers."""
        if endpoint != ENDPOINT:
            raise BadRequest(f"the simulator batches {ENDPOINT} only, not {endpoint!r}")
        source = self.files.get(input_file_id)
        if source is None:
            raise BadRequest(f"no file {input_file_id!r}: upload it with purpose 'batch' first")
        requests = _requests(source.data)
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": f"batch_sim{uuid.uuid4().hex}",
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 24 * 3600,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": len(requests), "completed": 0, "failed": 0},
            "metadata": metadata if isinstance(metadata, dict) else None,
        }
        self.batches[batch["id"]] = batch
        task = asyncio.create_task(self._run(batch, requests))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    async def _run(self, batch: dict[str, Any], requests: list[_Request]) -> None:
        outputs, errors, slowest = [], [], 0.0
        for request in requests:
            try:
                req = parse_chat(request.body)
            except BadRequest as exc:
                body = wire.error_body(str(exc), "invalid_request_error", None)
                errors.append(_line(request.custom_id, 400, body))
                continue
            plan = self._sim.plan(req, rate_limited=False)
            if plan.fault is Fault.HANG:
                self._sim.record(req.kind, plan.fault, None)
                expired = {"code": "batch_expired", "message": "not answered in time (simulated)"}
                errors.append(_line(request.custom_id, None, None, expired))
                continue
            if plan.fault in (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.BREAK):
                self._sim.record(req.kind, plan.fault, None)
                status = 429 if plan.fault is Fault.RATE_LIMIT else 500
                message = f"The simulator injected a {status} into this batch line."
                body = wire.error_body(message, "server_error", None)
                errors.append(_line(request.custom_id, status, body))
                continue
            content = self._sim.content(req)
            if plan.fault is Fault.MALFORMED:
                self._sim.record(req.kind, plan.fault, None)
                content = wire.malformed(content)
            else:
                self._sim.record(req.kind, None, request.custom_id)
            slowest = max(slowest, plan.delay_s)
            outputs.append(_line(request.custom_id, 200, wire.chat_completion(req, content)))
        await asyncio.sleep(slowest)
        now = int(time.time())
        if outputs:
            out = self.add_file("batch_output.jsonl", "batch_output", "\n".join(outputs).encode())
            batch["output_file_id"] = out.id
        if errors:
            err = self.add_file("batch_errors.jsonl", "batch_output", "\n".join(errors).encode())
            batch["error_file_id"] = err.id
        batch["request_counts"].update(completed=len(outputs), failed=len(errors))
        batch.update(status="completed", finalizing_at=now, completed_at=now)
