"""`make_chart`: draw a kept result table as a plotly figure, kept by ref."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from tools.base import ToolContext, ToolOutput
from tools.errors import ToolArgumentError

KINDS = ("auto", "bar", "line", "scatter", "pie")
MAX_BARS = 25


def _numeric(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def _temporal(df: pd.DataFrame) -> list[str]:
    def is_time(column: object) -> bool:
        values = df[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            return True
        sample = values.dropna().head(5)
        return values.dtype == object and len(sample) > 0 and all(
            hasattr(v, "isoformat") for v in sample)

    return [c for c in df.columns if is_time(c)]


def choose_chart(df: pd.DataFrame, kind: str = "auto", x: str | None = None,
                 y: str | None = None) -> tuple[str, str, str]:
    """Pick (kind, x, y) for ``df``: a line over time, else bars of a label by a number.

    Raises:
        ToolArgumentError: when the table has no numeric column to plot or a name is wrong.
    """
    for name in (x, y):
        if name is not None and name not in df.columns:
            raise ToolArgumentError(
                f"column '{name}' is not in the table; its columns are: {', '.join(map(str, df.columns))}")
    numbers = _numeric(df)
    if y is None:
        candidates = [c for c in numbers if c != x and not str(c).lower().endswith("_id")]
        if not candidates:
            raise ToolArgumentError("the table has no numeric column to chart; "
                                    "aggregate first (e.g. a count or a sum per group)")
        y = candidates[0]
    if x is None:
        times = _temporal(df)
        others = [c for c in df.columns if c != y and c not in numbers]
        x = times[0] if times else (others[0] if others else next(c for c in df.columns if c != y))
    if kind == "auto":
        kind = "line" if x in _temporal(df) else ("scatter" if x in numbers else "bar")
    if kind not in KINDS:
        raise ToolArgumentError(f"unknown chart kind '{kind}'; use one of {', '.join(KINDS)}")
    return kind, str(x), str(y)


def figure_for(df: pd.DataFrame, kind: str, x: str, y: str, title: str,
               color: str | None = None) -> go.Figure:
    """The plotly figure of one table."""
    data = df.head(MAX_BARS) if kind in ("bar", "pie") else df
    if kind == "line":
        fig = px.line(data, x=x, y=y, color=color, title=title, markers=len(data) <= 60)
    elif kind == "scatter":
        fig = px.scatter(data, x=x, y=y, color=color, title=title)
    elif kind == "pie":
        fig = px.pie(data, names=x, values=y, title=title)
    else:
        fig = px.bar(data, x=x, y=y, color=color, title=title)
    fig.update_layout(template="plotly_white", margin={"l": 40, "r": 20, "t": 60, "b": 40})
    return fig


def make_chart(ctx: ToolContext, ref: str, kind: str = "auto", x: str | None = None,
               y: str | None = None, color: str | None = None, title: str | None = None
               ) -> ToolOutput:
    """Draw a chart of a result table kept earlier (a ranking, a trend, segment sizes).

    Use it after run_sql or an analysis tool when a person would rather look than read:
    rankings become bar charts, series over time become line charts.

    Args:
        ref: the ref of a result table (e.g. "r3") returned by an earlier tool.
        kind: "auto" (line over time, else bars), "bar", "line", "scatter" or "pie".
        x: the column on the horizontal axis (default: the date or label column).
        y: the numeric column to plot (default: the first numeric column).
        color: an optional column that splits the data into coloured series.
        title: the chart's title (default: the table's title).
    """
    meta = ctx.results.meta(ref)
    if meta.kind != "table":
        raise ToolArgumentError(f"{ref} is already a chart; pass the ref of a table")
    df = ctx.results.get(ref)
    if df.empty:
        raise ToolArgumentError(f"{ref} has no rows to chart")
    if color is not None and color not in df.columns:
        raise ToolArgumentError(f"column '{color}' is not in {ref}")
    kind, x, y = choose_chart(df, kind, x, y)
    chart_title = title or meta.title
    chart_ref = ctx.results.put_figure(figure_for(df, kind, x, y, chart_title, color), chart_title)
    summary = {"ref": chart_ref, "kind": kind, "x": x, "y": y, "source": ref,
               "points": int(min(len(df), MAX_BARS) if kind in ("bar", "pie") else len(df))}
    return ToolOutput(summary=summary, refs=[chart_ref])
