"""The one tool list: plain typed functions turned into LangChain tools for a session.

The same list feeds ``bind_tools`` (the model sees names, docstrings and argument
schemas) and the tool node (which runs them). A tool's docstring is its description.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable
from typing import Any, get_type_hints

from langchain_core.tools import BaseTool, StructuredTool

from tools.base import ToolContext, ToolOutput
from tools.charts import make_chart
from tools.clustering import cluster_users
from tools.communities import detect_communities
from tools.errors import AtlasError
from tools.labeling import label_items, label_segments
from tools.sql_tools import describe_table, list_tables, run_sql
from tools.stats import compare_groups, correlate, summarize_metric, trend
from tools.strategy import draft_strategy

ToolFunction = Callable[..., ToolOutput]

TOOL_FUNCTIONS: tuple[ToolFunction, ...] = (
    list_tables, describe_table, run_sql,
    summarize_metric, compare_groups, trend, correlate,
    cluster_users, detect_communities, label_segments, label_items,
    draft_strategy, make_chart,
)


SMALL_MODEL_TOOLS: tuple[str, ...] = (
    "run_sql", "compare_groups", "trend", "correlate", "cluster_users", "detect_communities",
    "label_segments", "label_items", "draft_strategy", "make_chart",
)
"""The tools a small model sees: the schema is in its prompt (no list/describe calls) and
run_sql covers summarize_metric's plain totals, which a small model confuses with filters."""


def tool_names() -> list[str]:
    """Names of every registered tool."""
    return [f.__name__ for f in TOOL_FUNCTIONS]


def _bind(function: ToolFunction, ctx: ToolContext) -> Callable[..., tuple[str, dict[str, Any]]]:
    """Wrap ``function`` so the model sees its arguments without the context."""
    signature = inspect.signature(function)
    params = [p for name, p in signature.parameters.items() if name != "ctx"]
    hints = {k: v for k, v in get_type_hints(function).items() if k not in ("ctx", "return")}

    @functools.wraps(function)
    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        started = time.perf_counter()
        output = function(ctx, **kwargs)
        artifact = {
            "ok": True, "sql": output.sql, "rows": output.rows, "refs": list(output.refs),
            "ms": round((time.perf_counter() - started) * 1000, 1), "summary": output.summary,
        }
        return json.dumps(output.summary, default=str), artifact

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = hints
    return run


def build_tools(ctx: ToolContext, names: list[str] | None = None) -> list[BaseTool]:
    """The session's tools, bound to ``ctx`` (all of them, or those in ``names``)."""
    chosen = [f for f in TOOL_FUNCTIONS if names is None or f.__name__ in names]
    return [
        StructuredTool.from_function(
            func=_bind(f, ctx), name=f.__name__, parse_docstring=True,
            response_format="content_and_artifact", error_on_invalid_docstring=False,
        )
        for f in chosen
    ]


def run_tool(ctx: ToolContext, name: str, **args: Any) -> ToolOutput:
    """Run a tool by name outside the agent (CLI, tests)."""
    for f in TOOL_FUNCTIONS:
        if f.__name__ == name:
            return f(ctx, **args)
    raise AtlasError(f"unknown tool '{name}' — tools are: {', '.join(tool_names())}")
