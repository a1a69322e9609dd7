"""``python -m cluster.k8s [FILE] [--write DIR]``: print one rendered file, or write them all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cluster.k8s
from cluster.k8s.files import FILES, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.k8s", description=cluster.k8s.__doc__)
    parser.add_argument("file", nargs="?", default="domains.yaml", help=", ".join(FILES))
    parser.add_argument("--write", metavar="DIR", help="write every rendered file into DIR")
    args = parser.parse_args(argv)
    if args.write:
        for file, render_file in FILES.items():
            target = Path(args.write) / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_file(), encoding="utf-8")
        return 0
    if args.file not in FILES:
        parser.error(f"unknown file {args.file!r}; known: {', '.join(FILES)}")
    sys.stdout.write(render(args.file))
    return 0
