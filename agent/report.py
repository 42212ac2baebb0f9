"""`atlas report`: the strategy suggestions as a Markdown file with its charts as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from agent.analyst import Analyst  # noqa: E402
from tools.registry import run_tool  # noqa: E402

CHART_FILE = "demand_supply.png"


def demand_supply_png(groups: pd.DataFrame, path: Path) -> Path:
    """Draw each community's share of watch time next to its share of videos."""
    ordered = groups.sort_values("demand_share", ascending=True)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.35 * len(ordered))))
    y = range(len(ordered))
    ax.barh([i + 0.2 for i in y], ordered["demand_share"] * 100, height=0.4, label="watch time")
    ax.barh([i - 0.2 for i in y], ordered["supply_share"] * 100, height=0.4, label="videos")
    ax.set_yticks(list(y), [str(n) for n in ordered["name"]])
    ax.set_xlabel("share of the total (%)")
    ax.set_title("Demand vs supply by community")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(analyst: Analyst, session: str, out_dir: Path, *, refresh: bool = False) -> Path:
    """Write ``report.md`` (and its chart) for the session's newest strategy, drafting one
    first when the session has none (or when ``refresh``)."""
    ctx = analyst.context(session)
    reports = [m for m in ctx.results.refs() if m.kind == "report"]
    if refresh or not reports:
        run_tool(ctx, "draft_strategy")
        reports = [m for m in ctx.results.refs() if m.kind == "report"]
    newest = reports[-1]
    tables = [m for m in ctx.results.refs() if m.kind == "table" and m.title == "Evidence per community"]
    out_dir.mkdir(parents=True, exist_ok=True)
    text = ctx.results.get(newest.ref)
    if tables:
        demand_supply_png(ctx.results.get(tables[-1].ref), out_dir / CHART_FILE)
        head, sep, rest = text.partition("\n\n")
        text = f"{head}{sep}![Demand vs supply by community]({CHART_FILE})\n\n{rest}"
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path
