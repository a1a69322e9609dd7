"""What the AI stages take and return: typed results, the model-call errors, strict schemas.

The model output shapes follow domain.md §7 and are [compat]: ``classification_result`` and
``final_answer`` of the scan result endpoint are exactly :class:`VisionResult` and
:class:`AnswerResult`.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_QUESTION = "이 폐기물을 어떻게 분리배출해야 하나요?"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Classification(Frozen):
    major_category: str
    middle_category: str
    minor_category: str | None = None


class VisionMeta(Frozen):
    user_input: str


class VisionResult(Frozen):
    """Vision stage output, ``classification_result`` in the result endpoint."""

    classification: Classification
    situation_tags: list[str] = Field(default_factory=list)
    meta: VisionMeta


class AnswerResult(Frozen):
    """Answer stage output, ``final_answer`` in the result endpoint."""

    disposal_steps: dict[str, str] = Field(default_factory=dict)
    insufficiencies: list[str] = Field(default_factory=list)
    user_answer: str


class MalformedModelOutput(ValueError):
    """The model's text is not the JSON we asked for; the caller may ask once more (repair)."""


class ModelCallFailed(Exception):
    """A model call failed after its retries.

    ``retriable`` says whether a later attempt may pass.
    """

    def __init__(self, message: str, *, retriable: bool, kind: str) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (Ray handle calls): keep the keyword-only fields.
        return (_model_call_failed, (str(self), self.retriable, self.kind))


def _model_call_failed(message: str, retriable: bool, kind: str) -> ModelCallFailed:
    return ModelCallFailed(message, retriable=retriable, kind=kind)


@functools.cache
def json_schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """A strict JSON schema for ``response_format`` (all keys required, no extras).

    Built once per model: schema generation per call was a visible share of a stage replica's
    CPU (docs/benchmarks.md); callers must not mutate the result."""
    schema = model.model_json_schema()
    return _strict(schema, schema.get("$defs", {}))


def response_format(name: str, schema: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """The chat-completions ``response_format`` asking for JSON that follows ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": strict},
    }


def _strict(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _strict(defs[node["$ref"].split("/")[-1]], defs)
    out = {k: v for k, v in node.items() if k not in ("$defs", "title", "default")}
    if out.get("type") == "object" and "properties" in out:
        out["properties"] = {k: _strict(v, defs) for k, v in out["properties"].items()}
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    if "items" in out:
        out["items"] = _strict(out["items"], defs)
    if "anyOf" in out:
        out["anyOf"] = [_strict(v, defs) for v in out["anyOf"]]
    return out
