"""A cache of derived results keyed by (database fingerprint, tool, arguments).

Analyses that take seconds (clustering, community detection, labels) store their outputs
here so that a repeated question — or the evaluation suite — does not recompute them, and
a changed database (new fingerprint) never serves a stale result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import pickle
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

def cache_key(fingerprint: str, tool: str, args: dict[str, Any], version: str = "1") -> str:
    """A stable hex key for a derived result."""
    raw = json.dumps({"fp": fingerprint, "tool": tool, "args": args, "v": version},
                     sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across threads and processes while one result is computed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DerivedCache:
    """Pickled results under ``<ATLAS_HOME>/cache/derived`` (written atomically)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory) / "derived"

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> tuple[T, bool]:
        """The cached value for ``key``, or ``compute()`` stored under it.

        Returns:
            (value, hit): ``hit`` is True when the value came from the cache.
        """
        path = self.directory / f"{key}.pkl"
        with _file_lock(path):
            if path.exists():
                try:
                    with open(path, "rb") as handle:
                        return pickle.load(handle), True
                except (OSError, pickle.UnpicklingError, EOFError):
                    path.unlink(missing_ok=True)
            value = compute()
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            with open(tmp, "wb") as handle:
                pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path)
            return value, False
