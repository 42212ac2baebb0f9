"""Rendering the event stream for Slack: answer text (mrkdwn), the trace message, chart PNGs.

Pure functions, no Slack client here. Charts are drawn with matplotlib's Agg canvas (no
pyplot, no global state), because plotly's PNG export needs a Chrome (ARCHITECTURE.md).
"""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any

import pandas as pd

from agent.events import Done, Error, Event, ToolFinished, ToolStarted

MAX_TEXT = 3_900  # Slack advises <= 4,000 characters per message
SQL_CHARS = 1_200  # per step in the trace
SUMMARY_CHARS = 300
CHART_ROWS = 15
PNG_DPI = 110

_DRAW_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe


# -- text ------------------------------------------------------------------------------------
def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int = MAX_TEXT, marker: str = "…") -> str:
    """Cut ``text`` to ``limit`` characters at a line or word break, keeping code fences closed."""
    if len(text) <= limit:
        return text
    room = limit - len(marker) - 4
    cut = text[:room]
    breaks = max(cut.rfind("\n"), cut.rfind(" "))
    if breaks > room * 0.6:
        cut = cut[:breaks]
    cut = cut.rstrip() + marker
    if cut.count("```") % 2:
        cut += "\n```"
    return cut


_FENCE = re.compile(r"```.*?(?:```|$)", re.S)


_PIPE_TABLE = re.compile(r"(?:^[ \t]*\|.*\|[ \t]*(?:\n|$))+", re.M)


def to_mrkdwn(markdown: str) -> str:
    """Markdown as the model writes it, turned into Slack mrkdwn (escaped; code kept verbatim).

    Slack has no tables: a Markdown pipe table becomes a code block, which keeps its columns.
    """
    markdown = _PIPE_TABLE.sub(lambda m: "```\n" + m.group(0).rstrip("\n") + "\n```\n", markdown)
    parts, last = [], 0
    for match in _FENCE.finditer(markdown):
        parts.append(_inline_mrkdwn(markdown[last:match.start()]))
        parts.append(escape(match.group(0)))
        last = match.end()
    parts.append(_inline_mrkdwn(markdown[last:]))
    return "".join(parts)


def _inline_mrkdwn(text: str) -> str:
    text = escape(text)
    codes: list[str] = []

    def keep(match: re.Match[str]) -> str:
        codes.append(match.group(0))
        return f"\x00{len(codes) - 1}\x00"

    text = re.sub(r"`[^`\n]+`", keep, text)
    text = re.sub(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", text)
    text = re.sub(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*$", "\x01\\1\x01", text, flags=re.M)
    text = re.sub(r"^(\s*)[-*+]\s+", r"\1• ", text, flags=re.M)
    text = re.sub(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", "\x01\\2\x01", text)
    text = re.sub(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])", r"_\1_", text)
    text = re.sub(r"~~(?=\S)(.+?)(?<=\S)~~", r"~\1~", text)
    text = text.replace("\x01", "*")
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)


def answer_text(answer: str) -> str:
    """The first reply: the answer in mrkdwn, within Slack's limits."""
    return truncate(to_mrkdwn(answer.strip()) or "I have no answer to that.")


def error_text(message: str) -> str:
    """The polite reply when Atlas failed: one sentence, never a stack trace."""
    sentence = " ".join(str(message).split()) or "something went wrong on my side."
    if not sentence[:2].isupper():  # "There is…" → "there is…", but keep "SQL …"
        sentence = sentence[0].lower() + sentence[1:]
    if sentence[-1] not in ".!?":
        sentence += "."
    return truncate("I couldn't answer that: " + escape(sentence))


def _code(text: str, limit: int) -> str:
    body = text.strip().replace("```", "'''")
    if len(body) > limit:
        body = body[:limit].rstrip() + "\n-- … (truncated)"
    return "```" + escape(body) + "```"


def _step(event: ToolFinished, args: dict[str, Any]) -> str:
    head = f"{'✓' if event.ok else '✗'} `{event.tool}`"
    facts = [] if event.ok else ["failed"]
    if event.rows is not None:
        facts.append(f"{event.rows:,} row{'s' if event.rows != 1 else ''}")
    facts.append(f"{event.ms:,.0f} ms")
    lines = [head + " · " + " · ".join(facts)]
    if not event.ok:
        lines.append("> " + escape(" ".join(str(event.summary).split())[:SUMMARY_CHARS]))
    if event.sql:
        lines.append(_code(event.sql, SQL_CHARS))
    else:
        shown = {k: v for k, v in args.items() if k != "sql"}
        if shown:
            compact = json.dumps(shown, default=str, ensure_ascii=False)
            lines.append("`" + escape(compact[:200].replace("`", "'")) + "`")
    return "\n".join(lines)


def trace_text(events: list[Event], model: str = "") -> str | None:
    """The follow-up message: every tool step (ok/failed, rows, ms, SQL); None without steps."""
    started = {e.call_id: e.args for e in events if isinstance(e, ToolStarted)}
    steps = [_step(e, started.get(e.call_id, {})) for e in events if isinstance(e, ToolFinished)]
    if not steps:
        return None
    done = next((e for e in reversed(events) if isinstance(e, Done)), None)
    head = f"*How I got this* ({len(steps)} step{'s' if len(steps) != 1 else ''}"
    if model:
        head += f", model `{escape(model)}`"
    if done is not None and done.usage.model_calls:
        u = done.usage
        head += f", {u.model_calls} model calls, {u.input_tokens:,} in / {u.output_tokens:,} out tokens"
    text = head + ")"
    for i, step in enumerate(steps):
        rest = len(steps) - i
        tail = f"\n_… and {rest} more step{'s' if rest != 1 else ''}, not shown_"
        if len(text) + 2 + len(step) > MAX_TEXT - len(tail):
            if i == 0:  # the first step alone is too long: cut it
                return truncate(text + "\n\n" + step)
            return text + tail
        text += "\n\n" + step
    return text


def first_error(events: list[Event]) -> str | None:
    """The first Error event's sentence, if any."""
    return next((e.message for e in events if isinstance(e, Error)), None)


# -- charts ----------------------------------------------------------------------------------
def _is_date(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    values = series.dropna()
    if values.empty:
        return False
    if pd.api.types.is_object_dtype(series) and all(hasattr(v, "isoformat") for v in values):
        return True
    if pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series):
        return bool(values.astype(str).str.fullmatch(r"\d{4}-\d{2}(-\d{2})?([ T][\d:.]+)?").all())
    return False


def _is_measure(name: str, series: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
            and not str(name).lower().endswith("_id") and str(name).lower() != "id")


def chart_plan(df: pd.DataFrame) -> tuple[str, str, str] | None:
    """(kind, label column, value column) when ``df`` is worth a chart, else None.

    A line chart when the first column is a date; else a bar chart of the first text column
    against the first numeric column. One-row tables are not worth a chart.
    """
    if df is None or len(df) < 2 or len(df.columns) < 2:
        return None
    columns = [str(c) for c in df.columns]
    frame = df.set_axis(columns, axis=1)
    first = columns[0]
    measures = [c for c in columns if _is_measure(c, frame[c])]
    if _is_date(frame[first]):
        values = [c for c in measures if c != first]
        return ("line", first, values[0]) if values else None
    labels = [c for c in columns if pd.api.types.is_string_dtype(frame[c])
              or pd.api.types.is_object_dtype(frame[c])
              or isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not labels or not measures:
        return None
    return "bar", labels[0], measures[0]


def _new_figure(wide: bool = False) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.8 if not wide else 5.6), dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="both", alpha=0.25)
    return fig, ax


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _label(value: Any, width: int = 28) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def table_png(df: pd.DataFrame, title: str) -> bytes | None:
    """A PNG chart of a result table (see :func:`chart_plan`), or None when not worth one."""
    plan = chart_plan(df)
    if plan is None:
        return None
    kind, label, value = plan
    frame = df.set_axis([str(c) for c in df.columns], axis=1)[[label, value]].dropna()
    if len(frame) < 2:
        return None
    with _DRAW_LOCK:
        fig, ax = _new_figure()
        if kind == "line":
            x = pd.to_datetime(frame[label], errors="coerce", format="mixed")
            frame = frame.assign(_x=x).dropna(subset=["_x"]).sort_values("_x")
            ax.plot(frame["_x"], frame[value].astype(float), marker="o" if len(frame) <= 40 else None,
                    linewidth=1.8, color="#3465a4")
            ax.set_xlabel(label)
            fig.autofmt_xdate()
        else:
            top = frame.head(CHART_ROWS)
            names = [_label(v) for v in top[label]]
            ax.barh(range(len(top)), top[value].astype(float), color="#3465a4")
            ax.set_yticks(range(len(top)), names)
            ax.invert_yaxis()
            ax.set_ylabel(label)
            ax.grid(axis="y", visible=False)
            if len(frame) > CHART_ROWS:
                title = f"{title} (first {CHART_ROWS} of {len(frame):,})"
        ax.set_title(title or value, loc="left", fontsize=12)
        ax.set_xlabel(value if kind == "bar" else label)
        if kind == "line":
            ax.set_ylabel(value)
        return _png(fig)


def _values(values: Any) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, dict) and "bdata" in values:  # plotly's typed-array JSON
        import base64

        import numpy as np

        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return list(values)


def figure_png(figure: Any, title: str) -> bytes | None:
    """A PNG of a plotly figure's bar / scatter / line / pie / histogram traces, or None."""
    traces = list(getattr(figure, "data", []) or [])
    drawable = [t for t in traces if getattr(t, "type", None) in
                ("bar", "scatter", "scattergl", "pie", "histogram")]
    if not drawable:
        return None
    layout = getattr(figure, "layout", None)

    def axis_title(name: str) -> str:
        try:
            return str(layout[name].title.text or "")
        except (KeyError, AttributeError, TypeError):
            return ""

    try:
        heading = str(layout.title.text or "") if layout is not None else ""
    except AttributeError:
        heading = ""
    with _DRAW_LOCK:
        fig, ax = _new_figure()
        named = 0
        for trace in drawable:
            x, y, name = _values(trace.x if trace.type != "pie" else None), None, trace.name
            if trace.type == "pie":
                ax.pie(_values(trace.values), labels=[_label(v, 20) for v in _values(trace.labels)],
                       autopct="%1.0f%%")
                ax.axis("equal")
                continue
            if trace.type == "histogram":
                ax.hist([v for v in x if v is not None], bins=30, alpha=0.8, label=name)
            else:
                y = _values(trace.y)
                if trace.type == "bar":
                    horizontal = getattr(trace, "orientation", None) == "h"
                    cats, vals = (y, x) if horizontal else (x, y)
                    cats, vals = [_label(c) for c in cats][:30], list(vals)[:30]
                    (ax.barh if horizontal else ax.bar)(cats, vals, label=name, alpha=0.9)
                    if not horizontal and len(cats) > 6:
                        ax.tick_params(axis="x", labelrotation=45)
                else:
                    if x and _is_date(pd.Series(x, dtype=object)):
                        x = list(pd.to_datetime(pd.Series(x), errors="coerce", format="mixed"))
                        fig.autofmt_xdate()
                    mode = getattr(trace, "mode", None) or "lines"
                    ax.plot(x, y, marker="o" if "markers" in mode else None,
                            linestyle="-" if "lines" in mode else "none", label=name)
            named += bool(name)
        if named > 1:
            ax.legend(frameon=False)
        ax.set_xlabel(axis_title("xaxis"))
        ax.set_ylabel(axis_title("yaxis"))
        ax.set_title(heading or title, loc="left", fontsize=12)
        return _png(fig)
