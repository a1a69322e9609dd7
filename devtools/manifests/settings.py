"""The ``ECO2_*`` keys of ConfigMaps and Secrets: they must name settings that exist, and their
values must parse (:mod:`eco2.settings`)."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from eco2.settings import Settings, settings_of

SETTINGS_PREFIX = "ECO2_"


def settings_problems(env: dict[str, str], *, whole: bool = False) -> list[str]:
    """Problems of the ``ECO2_*`` entries of ``env``: unknown names and values that do not parse.

    Rules across fields (e.g. production must not keep development secrets) are checked only
    with ``whole``, on everything a pod sees, since one document may hold half of them.
    """
    ours = {k: v for k, v in env.items() if k.upper().startswith(SETTINGS_PREFIX)}
    problems = (
        []
        if whole
        else [f"{key}: no such setting" for key in sorted(ours) if not _known_setting(key)]
    )
    if not ours:
        return problems
    try:
        settings_of(ours)
    except ValidationError as exc:
        for err in exc.errors():
            if not err["loc"]:
                if whole:
                    problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            if not whole:
                key = SETTINGS_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
                problems.append(f"{key}: {err['msg']}")
    return problems


def _known_setting(key: str) -> bool:
    """Whether ``ECO2_A__B`` names a field (``Settings.a.b``); pydantic-settings ignores typos."""
    model: type[BaseModel] | None = Settings
    for part in key[len(SETTINGS_PREFIX) :].lower().split("__"):
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return False
        annotation = field.annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return True
