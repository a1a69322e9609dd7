"""``python -m devtools.manifests [--dockerfile Dockerfile] FILE…``: exit status 1 when there are
problems, each printed on stderr."""

from __future__ import annotations

import argparse
import sys

import devtools.manifests
from devtools.manifests.dockerfile import dockerfile_problems
from devtools.manifests.entry_points import entry_modules
from devtools.manifests.kinds import validate


def main(argv: list[str] | None = None) -> int:
    """Validate the files named in ``argv`` (default ``ray-cluster.yaml``), and with
    ``--dockerfile PATH`` the image those manifests run; exit status 1 if any problem."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.manifests", description=devtools.manifests.__doc__
    )
    parser.add_argument("paths", nargs="*", default=["ray-cluster.yaml"])
    parser.add_argument("--dockerfile", help="also check this Dockerfile against the manifests")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    problems = [problem for path in args.paths for problem in validate(path)]
    if args.dockerfile:
        problems += dockerfile_problems(args.dockerfile, entry_modules(args.paths))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0
