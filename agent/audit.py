"""The audit trail: one JSON line per question in ``ATLAS_HOME/audit.jsonl``."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def append_audit(home: Path, record: dict[str, Any]) -> None:
    """Append ``record`` (with the time added) as one line; never raises on disk errors."""
    line = json.dumps({"time": datetime.now(UTC).isoformat(), **record}, default=str)
    try:
        Path(home).mkdir(parents=True, exist_ok=True)
        with _LOCK, open(Path(home) / "audit.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError:
        pass
