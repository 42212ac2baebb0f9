"""make_chart: the right kind of chart for a kept table, and fixable errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agent.config import Settings
from tools.base import ToolContext
from tools.charts import choose_chart, make_chart
from tools.errors import ToolArgumentError
from tools.results import ResultStore
from tools.semantic import SemanticNotes


class _NoWorkspace:
    pass


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    settings = Settings(db=tmp_path / "none.duckdb", home=tmp_path)
    return ToolContext(settings=settings, workspace=_NoWorkspace(),  # type: ignore[arg-type]
                       results=ResultStore(tmp_path / "results"), notes=SemanticNotes())


def test_ranking_becomes_bars_and_series_becomes_a_line(ctx: ToolContext) -> None:
    ranking = ctx.results.put_table(pd.DataFrame({"country": ["BR", "US"], "views": [5, 3]}), "Views")
    out = make_chart(ctx, ranking)
    assert (out.summary["kind"], out.summary["x"], out.summary["y"]) == ("bar", "country", "views")
    figure = ctx.results.get(out.refs[0])
    assert list(figure.data[0].x) == ["BR", "US"] and list(figure.data[0].y) == [5, 3]
    days = pd.DataFrame({"day": pd.date_range("2026-09-01", periods=3), "watch_s": [1.0, 2.0, 4.0]})
    series = ctx.results.put_table(days, "Daily watch time")
    assert make_chart(ctx, series).summary["kind"] == "line"


def test_ids_are_not_plotted_as_values() -> None:
    df = pd.DataFrame({"creator_id": [7, 8], "handle": ["a", "b"], "followers": [10, 20]})
    assert choose_chart(df) == ("bar", "handle", "followers")


def test_errors_name_the_fix(ctx: ToolContext) -> None:
    text_only = ctx.results.put_table(pd.DataFrame({"name": ["a"]}), "Names")
    with pytest.raises(ToolArgumentError, match="no numeric column"):
        make_chart(ctx, text_only)
    numbers = ctx.results.put_table(pd.DataFrame({"n": [1]}), "N")
    with pytest.raises(ToolArgumentError, match="its columns are: n"):
        make_chart(ctx, numbers, y="views")
    with pytest.raises(ToolArgumentError, match="no result 'r99'"):
        make_chart(ctx, "r99")
