"""The Python a manifest makes the image run: every ``python -m <module>`` of a container or a
RayJob's ``entrypoint`` must import (a package must have a ``__main__``); :func:`entry_modules`
lists them, with the ``serveConfigV2`` import paths, for the Dockerfile check."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from devtools.manifests.common import short

_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")


def python_modules(document: Any) -> list[tuple[str, str]]:
    """``(where, module)`` of every ``python -m <module>`` a document runs: container
    ``command`` + ``args`` at any depth (Deployments, Jobs, CronJobs, Ray pod templates) and a
    RayJob's ``entrypoint`` (a shell command line)."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")
            return
        if not isinstance(node, dict):
            return
        argv = _argv(node)
        module = _module_of(argv) if argv else None
        if module is not None:
            at = f"{path}.entrypoint" if "entrypoint" in node else path
            found.append((at.lstrip(".") or "<root>", module))
        for key, value in node.items():
            walk(value, f"{path}.{key}")

    walk(document, "")
    return found


def _argv(node: dict[str, Any]) -> list[str]:
    """A container's ``command`` + ``args`` (shell ``-c`` strings split), or an ``entrypoint``."""
    if isinstance(node.get("entrypoint"), str):
        return shlex.split(node["entrypoint"])
    if "image" not in node:
        return []
    tokens: list[str] = []
    for part in [*(node.get("command") or []), *(node.get("args") or [])]:
        text = str(part)
        tokens += shlex.split(text) if " " in text else [text]
    return tokens


def _module_of(argv: list[str]) -> str | None:
    """The module after ``-m`` of the first ``python`` in ``argv`` (also behind ``sh -c``,
    ``ray job submit --``)."""
    for i, token in enumerate(argv):
        if _PYTHON.match(Path(token).name):
            rest = argv[i + 1 :]
            if "-m" in rest and rest.index("-m") + 1 < len(rest):
                return rest[rest.index("-m") + 1]
            return None
    return None


def module_problem(module: str) -> str | None:
    """Why ``python -m <module>`` would fail before its code runs, or None. A package must
    have a ``__main__`` (found, not imported: importing it would run it)."""
    try:
        imported = importlib.import_module(module)
    except Exception as exc:
        return f"cannot import {module!r}: {short(repr(exc))}"
    if hasattr(imported, "__path__") and importlib.util.find_spec(f"{module}.__main__") is None:
        return f"{module!r} is a package without __main__: `python -m {module}` cannot run it"
    return None


def entry_point_problems(document: dict[str, Any]) -> list[str]:
    problems = []
    for where, module in python_modules(document):
        problem = module_problem(module)
        if problem is not None:
            problems.append(f"{where}: python -m {module}: {problem}")
    return problems


def entry_modules(paths: list[str] | list[Path]) -> list[str]:
    """Every module the manifests at ``paths`` make the image import: ``python -m`` modules and
    the modules of ``serveConfigV2`` import paths. Unreadable files give none (``validate``
    reports them)."""
    modules: list[str] = []
    for path in paths:
        try:
            documents = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):
            continue
        for document in documents:
            modules += [module for _, module in python_modules(document)]
            modules += _serve_import_modules(document)
    return sorted(set(modules))


def _serve_import_modules(document: Any) -> list[str]:
    text = (document.get("spec") or {}).get("serveConfigV2") if isinstance(document, dict) else None
    try:
        config = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        return []
    apps = config.get("applications") if isinstance(config, dict) else None
    paths = [a.get("import_path") for a in apps or [] if isinstance(a, dict)]
    return [
        p.partition(":")[0] if ":" in p else p.rpartition(".")[0]
        for p in paths
        if isinstance(p, str)
    ]
