"""The catalog's prompt texts: the schema summary and the calendar of date bounds."""

from __future__ import annotations

from tools.catalog import Catalog, ColumnInfo, TableInfo, calendar_text


def _table(name: str, *columns: ColumnInfo) -> TableInfo:
    return TableInfo(name=name, origin="warehouse", rows=10, columns=columns)


def test_calendar_gives_the_bounds_of_the_usual_windows_per_last_day() -> None:
    catalog = Catalog(tables={
        "orders": _table("orders", ColumnInfo("ordered_at", "TIMESTAMP",
                                              min="2025-09-02 21:01:00",
                                              max="2025-12-31 21:00:00")),
        "refunds": _table("refunds", ColumnInfo("refunded_at", "TIMESTAMP",
                                                min="2025-09-05", max="2025-12-31 08:00:00")),
        "customers": _table("customers", ColumnInfo("joined_on", "DATE", min="2024-07-29",
                                                    max="2025-03-02"),
                            ColumnInfo("region", "VARCHAR")),
    })
    assert calendar_text(catalog).splitlines() == [
        "- orders.ordered_at, refunds.refunded_at: last day 2025-12-31; last 7 days >= "
        "'2025-12-25'; last 30 days >= '2025-12-02'; this month >= '2025-12-01'; last month "
        ">= '2025-11-01' and < '2025-12-01'; every bound < '2026-01-01'",
        "- customers.joined_on: last day 2025-03-02; last 7 days >= '2025-02-24'; last 30 days "
        ">= '2025-02-01'; this month >= '2025-03-01'; last month >= '2025-02-01' and < "
        "'2025-03-01'; every bound < '2025-03-03'",
    ]


def test_no_time_columns_no_calendar_and_schema_puts_the_latest_first() -> None:
    table = _table("t", ColumnInfo("x", "INTEGER"), ColumnInfo("at", "DATE", min="2020-01-01",
                                                                max="2020-02-01"))
    assert calendar_text(Catalog(tables={"u": _table("u", ColumnInfo("x", "INTEGER"))})) == ""
    assert "at DATE — latest 2020-02-01, earliest 2020-01-01" in Catalog(
        tables={"t": table}).schema_text()
