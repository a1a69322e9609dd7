"""Access to the JSON files shipped in ``pipelines/rules/data``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"


def read_json(path: Path) -> Any:
    """Parse one UTF-8 JSON file; raises ``OSError`` or ``json.JSONDecodeError`` unchanged."""
    return json.loads(path.read_text(encoding="utf-8"))
