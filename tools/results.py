"""The session's result store: full tables and figures kept by reference (``r1``, ``r2``…).

Tools return a small summary to the model and put the full result here; front-ends
render it by ref and later tools read it. Results are files in the state directory, so
they survive a restart and separate CLI calls of the same session.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tools.errors import ToolArgumentError


@dataclass(frozen=True)
class ResultMeta:
    """What the store knows about one result."""

    ref: str
    kind: str  # "table", "chart" or "report"
    title: str
    sql: str | None
    rows: int | None
    created: str


def _decode_typed_arrays(node: Any) -> Any:
    """Replace plotly's {"dtype", "bdata"} typed arrays by plain lists."""
    if isinstance(node, dict):
        if "bdata" in node and "dtype" in node:
            import base64

            import numpy as np

            array = np.frombuffer(base64.b64decode(node["bdata"]), dtype=np.dtype(node["dtype"]))
            if node.get("shape"):
                shape = node["shape"]
                dims = [int(x) for x in shape.split(",")] if isinstance(shape, str) else list(shape)
                array = array.reshape(dims)
            return array.tolist()
        return {k: _decode_typed_arrays(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode_typed_arrays(v) for v in node]
    return node


def _plain_json(value: Any) -> Any:
    from tools.jsonify import jsonable

    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return jsonable(value)


class ResultStore:
    """Tables (parquet) and plotly figures (JSON) of one session, by ref."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index_file = self.directory / "index.json"
        self._lock = threading.Lock()

    def _index(self) -> dict[str, dict[str, Any]]:
        if not self._index_file.exists():
            return {}
        return json.loads(self._index_file.read_text(encoding="utf-8"))

    def _add(self, kind: str, title: str, sql: str | None, rows: int | None,
             write: Any) -> str:
        with self._lock:
            index = self._index()
            ref = f"r{len(index) + 1}"
            write(self.directory / ref)
            meta = ResultMeta(ref, kind, title, sql, rows, datetime.now(UTC).isoformat())
            index[ref] = asdict(meta)
            tmp = self._index_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
            tmp.replace(self._index_file)
            return ref

    def put_table(self, df: pd.DataFrame, title: str, sql: str | None = None) -> str:
        """Keep a table; return its ref."""
        frame = df.copy()
        frame.columns = [str(c) for c in frame.columns]
        return self._add("table", title, sql, len(frame),
                         lambda base: frame.to_parquet(base.with_suffix(".parquet"), index=False))

    def put_figure(self, figure: Any, title: str) -> str:
        """Keep a plotly figure; return its ref."""
        # plain JSON lists, not plotly's base64 typed arrays, so any reader gets the numbers
        text = json.dumps(_decode_typed_arrays(figure.to_dict()), default=_plain_json)
        return self._add("chart", title, None, None,
                         lambda base: base.with_suffix(".json").write_text(text, encoding="utf-8"))

    def put_text(self, text: str, title: str) -> str:
        """Keep a Markdown document (a report); return its ref."""
        return self._add("report", title, None, None,
                         lambda base: base.with_suffix(".md").write_text(text, encoding="utf-8"))

    def path(self, ref: str) -> Path:
        """The file behind ``ref`` (parquet, JSON figure or Markdown)."""
        suffix = {"table": ".parquet", "chart": ".json", "report": ".md"}[self.meta(ref).kind]
        return self.directory / f"{ref}{suffix}"

    def meta(self, ref: str) -> ResultMeta:
        """The metadata of ``ref``.

        Raises:
            ToolArgumentError: when the session has no such result.
        """
        entry = self._index().get(ref)
        if entry is None:
            known = ", ".join(self._index()) or "none yet"
            raise ToolArgumentError(f"there is no result '{ref}' in this session (results: {known})")
        return ResultMeta(**entry)

    def get(self, ref: str) -> Any:
        """The DataFrame, plotly figure or Markdown text behind ``ref``."""
        meta = self.meta(ref)
        if meta.kind == "table":
            return pd.read_parquet(self.directory / f"{ref}.parquet")
        if meta.kind == "report":
            return (self.directory / f"{ref}.md").read_text(encoding="utf-8")
        import plotly.io as pio

        return pio.from_json((self.directory / f"{ref}.json").read_text(encoding="utf-8"))

    def refs(self) -> list[ResultMeta]:
        """Every result of the session, oldest first."""
        return [ResultMeta(**e) for e in self._index().values()]
