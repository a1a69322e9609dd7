"""The one image's Dockerfile, read without a daemon: copied paths exist and are in the build
context, directories keep their folder, and every module the manifests run comes from a package
the image copies."""

from __future__ import annotations

import fnmatch
import json
import shlex
from pathlib import Path


def dockerfile_instructions(text: str) -> list[tuple[str, list[str]]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile: comments dropped, continuations joined,
    the JSON (exec) form parsed."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            logical.append(current.strip())
        current = ""
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        except (ValueError, json.JSONDecodeError):
            args = rest.split()
        result.append((word.upper(), [str(a) for a in args]))
    return result


def dockerfile_copies(text: str) -> list[tuple[list[str], str]]:
    """``(sources, destination)`` of every COPY/ADD from the build context (not ``--from``)."""
    copies = []
    for instruction, args in dockerfile_instructions(text):
        if instruction not in ("COPY", "ADD"):
            continue
        if any(a.startswith("--from") for a in args):
            continue
        paths = [a for a in args if not a.startswith("--")]
        if len(paths) >= 2:
            copies.append((paths[:-1], paths[-1]))
    return copies


def dockerfile_problems(
    dockerfile: str | Path, modules: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """Problems of the Dockerfile at ``dockerfile`` (its folder is the build context): a copied
    path that does not exist or that ``.dockerignore`` leaves out; a directory copied together
    with others (Docker copies its *contents*, so the package folder would vanish); a module the
    manifests run whose package the image does not copy."""
    path = Path(dockerfile)
    context = path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{path}: cannot read: {exc}"]
    ignore_file = context / ".dockerignore"
    ignored = (
        _dockerignore(ignore_file.read_text(encoding="utf-8")) if ignore_file.is_file() else []
    )
    problems, copied = [], set()
    for sources, destination in dockerfile_copies(text):
        for source in sources:
            matches = sorted(context.glob(source)) if source != "." else [context]
            if not matches:
                problems.append(f"{path}: COPY {source}: no such path in the build context")
            if any(fnmatch.fnmatch(source.rstrip("/"), pattern) for pattern in ignored):
                problems.append(f"{path}: COPY {source}: excluded by .dockerignore")
            if (context / source).is_dir() and Path(destination).name != Path(source).name:
                problems.append(
                    f"{path}: COPY {source} {destination}: a directory's contents land in "
                    f"{destination}; copy it to {destination.rstrip('/')}/{Path(source).name}/"
                )
            copied.add(Path(source.rstrip("/")).parts[0] if source != "." else ".")
    for module in sorted(set(modules)):
        package = module.split(".")[0]
        if "." not in copied and package not in copied and f"{package}.py" not in copied:
            problems.append(f"{path}: python -m {module}: package {package!r} is not copied")
    return problems


def _dockerignore(text: str) -> list[str]:
    return [
        line.strip().rstrip("/")
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("!")
    ]
