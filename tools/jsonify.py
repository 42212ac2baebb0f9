"""Plain-JSON conversion of DataFrame cells and frames (ISO dates, NaN as null, lists)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import numpy as np
import pandas as pd


def jsonable(value: Any) -> Any:
    """Turn a value from a DataFrame cell into plain JSON (ISO dates, NaN as None, lists)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        if value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
            return None
    except (TypeError, ValueError):
        pass
    return value


def frame_rows(df: pd.DataFrame, limit: int | None = None) -> list[list[Any]]:
    """The rows of ``df`` (the first ``limit``) as lists of plain JSON values."""
    part = df if limit is None else df.head(limit)
    return [[jsonable(v) for v in row] for row in part.itertuples(index=False, name=None)]
