"""Unit tests of the sqlglot guard (tools/sql_guard.py)."""

from __future__ import annotations

import duckdb
import pytest

from tools.errors import SqlRejected, UnknownTable
from tools.sql_guard import GuardedSql, guard_sql

TABLES = ["users", "videos", "watch_events"]

ALLOWED = [
    "SELECT count(*) FROM users",
    "select * from users where country = 'BR'",
    "FROM users",
    "FROM users SELECT user_id WHERE country = 'US'",
    "SELECT u.country, count(*) AS n FROM users u JOIN watch_events w ON u.user_id = w.user_id "
    "GROUP BY 1 ORDER BY n DESC",
    "WITH top AS (SELECT video_id, sum(watch_s) AS s FROM watch_events GROUP BY 1) "
    "SELECT v.title, top.s FROM top JOIN videos v USING (video_id) ORDER BY top.s DESC",
    "WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM b",
    "SELECT user_id FROM users UNION SELECT creator_id FROM videos",
    "SELECT user_id FROM users INTERSECT SELECT creator_id FROM videos",
    "SELECT user_id FROM users EXCEPT SELECT creator_id FROM videos",
    "(SELECT user_id FROM users)",
    "SELECT user_id, row_number() OVER (PARTITION BY country ORDER BY user_id) AS rn FROM users",
    "SELECT * FROM users QUALIFY row_number() OVER (PARTITION BY country ORDER BY user_id) = 1",
    "SELECT * FROM users WHERE user_id IN (SELECT user_id FROM watch_events WHERE watch_s > 5)",
    "SELECT (SELECT max(watch_s) FROM watch_events) AS m",
    "SELECT unnest(hashtags) AS tag, count(*) FROM videos GROUP BY tag",
    "SELECT list_filter(hashtags, h -> h LIKE '%cook%') FROM videos",
    "SELECT len(hashtags), hashtags[1] FROM videos",
    "SELECT 'a;b' AS s, 'x -- y' AS t, 'DROP TABLE users' AS u, 'x /* y */' AS v",
    "SELECT * FROM Users",
    'SELECT * FROM "videos"',
    "SELECT date_trunc('day', ts) AS d, count(*) FROM watch_events GROUP BY ALL ORDER BY ALL",
    "SELECT * EXCLUDE (handle) FROM users",
    "SELECT median(watch_s), quantile_cont(watch_s, 0.9) FROM watch_events",
    "SELECT * FROM users u, LATERAL (SELECT count(*) AS n FROM watch_events w "
    "WHERE w.user_id = u.user_id)",
    "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name)",
    "SELECT 1; ",
    "SELECT 1; -- a trailing comment",
    "/* leading */ SELECT 1 -- trailing",
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    """A tiny in-memory database to prove the guarded SQL still runs."""
    connection = duckdb.connect(":memory:")
    connection.execute(
        "CREATE TABLE users AS SELECT i AS user_id, 'u' || i AS handle, "
        "['BR', 'US', 'IN'][1 + i % 3] AS country FROM range(30) t(i)"
    )
    connection.execute(
        "CREATE TABLE videos AS SELECT i AS video_id, i % 10 AS creator_id, 'v' || i AS title, "
        "['#cooking', '#diy'] AS hashtags FROM range(20) t(i)"
    )
    connection.execute(
        "CREATE TABLE watch_events AS SELECT i % 30 AS user_id, i % 20 AS video_id, "
        "(i % 17)::DOUBLE AS watch_s, TIMESTAMP '2024-01-01' + INTERVAL (i) MINUTE AS ts "
        "FROM range(500) t(i)"
    )
    return connection


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_queries_pass_get_a_limit_and_run(sql: str, con: duckdb.DuckDBPyConnection) -> None:
    guarded = guard_sql(sql, TABLES, 101)
    assert isinstance(guarded, GuardedSql)
    assert "LIMIT 101" in guarded.sql
    rows = con.execute(guarded.sql).fetchall()
    assert len(rows) <= 101


def test_tables_read_are_reported_lowercase() -> None:
    guarded = guard_sql(
        "WITH t AS (SELECT * FROM Watch_Events) SELECT * FROM t JOIN USERS USING (user_id)",
        TABLES,
        10,
    )
    assert guarded.tables == frozenset({"watch_events", "users"})


def test_string_literals_survive_and_comments_are_dropped() -> None:
    guarded = guard_sql("SELECT 'a;--DROP' AS s -- */ DROP TABLE users", TABLES, 5)
    assert guarded.sql == "SELECT 'a;--DROP' AS s LIMIT 5"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM users LIMIT 5", "SELECT * FROM users LIMIT 5"),
        ("SELECT * FROM users LIMIT 5000", "SELECT * FROM users LIMIT 101"),
        ("SELECT * FROM users LIMIT 7 OFFSET 2", "SELECT * FROM users LIMIT 7 OFFSET 2"),
        (
            "SELECT user_id FROM users UNION SELECT 1 ORDER BY 1 LIMIT 3",
            "SELECT user_id FROM users UNION SELECT 1 ORDER BY 1 LIMIT 3",
        ),
        (
            "SELECT * FROM users OFFSET 3",
            "SELECT * FROM (SELECT * FROM users OFFSET 3) AS q LIMIT 101",
        ),
        (
            "SELECT * FROM users LIMIT (SELECT 2)",
            "SELECT * FROM (SELECT * FROM users LIMIT (SELECT 2)) AS q LIMIT 101",
        ),
        ("(SELECT * FROM users) LIMIT 5", "SELECT * FROM (SELECT * FROM users) AS q LIMIT 5"),
        (
            "(SELECT user_id FROM users) ORDER BY 1 DESC",
            "SELECT * FROM (SELECT user_id FROM users) AS q ORDER BY 1 DESC LIMIT 101",
        ),
        (
            "SELECT * FROM users LIMIT 10%",
            "SELECT * FROM (SELECT * FROM users LIMIT 10 PERCENT) AS q LIMIT 101",
        ),
    ],
)
def test_row_limit_injection(sql: str, expected: str, con: duckdb.DuckDBPyConnection) -> None:
    guarded = guard_sql(sql, TABLES, 101)
    assert guarded.sql == expected
    con.execute(guarded.sql).fetchall()


def test_no_limit_when_row_limit_is_none() -> None:
    assert guard_sql("SELECT * FROM users", TABLES, None).sql == "SELECT * FROM users"


def test_union_limit_applies_to_the_whole_union(con: duckdb.DuckDBPyConnection) -> None:
    guarded = guard_sql("SELECT user_id FROM users UNION ALL SELECT user_id FROM users", TABLES, 4)
    assert len(con.execute(guarded.sql).fetchall()) == 4


def test_cte_names_are_allowed_but_not_other_names() -> None:
    assert guard_sql("WITH secret AS (SELECT 1 AS x) SELECT * FROM secret", TABLES, 10)
    with pytest.raises(UnknownTable):
        guard_sql("SELECT * FROM secret", TABLES, 10)


@pytest.mark.parametrize(
    "sql",
    [
        # a CTE name only counts where the CTE is in scope; elsewhere it reaches a real
        # table, such as DuckDB's system views
        "SELECT * FROM (WITH duckdb_tables AS (SELECT 1) SELECT 1) AS s, duckdb_tables",
        "WITH duckdb_tables AS (SELECT * FROM duckdb_tables) SELECT * FROM duckdb_tables",
        "WITH a AS (SELECT * FROM sqlite_master), sqlite_master AS (SELECT 1) SELECT * FROM a",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM pragma_database_list",
        "SELECT * FROM users WHERE EXISTS (FROM duckdb_databases)",
    ],
)
def test_out_of_scope_cte_names_and_system_views_are_unknown(sql: str) -> None:
    with pytest.raises(UnknownTable):
        guard_sql(sql, TABLES, 10)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) "
        "SELECT * FROM t",
        "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b JOIN a USING (x)",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM users WHERE user_id IN (SELECT x FROM a)",
        "WITH a AS (SELECT 1 AS x) SELECT 2 UNION SELECT x FROM a",
        "WITH users AS (SELECT * FROM users WHERE country = 'BR') SELECT count(*) FROM users",
    ],
)
def test_ctes_in_scope_are_allowed(sql: str, con: duckdb.DuckDBPyConnection) -> None:
    con.execute(guard_sql(sql, TABLES, 10).sql).fetchall()


def test_unknown_table_lists_tables_and_suggests() -> None:
    with pytest.raises(UnknownTable) as info:
        guard_sql("SELECT * FROM vidoes", TABLES, 10)
    message = str(info.value)
    assert "unknown table 'vidoes'" in message
    assert "tables are: users, videos, watch_events" in message
    assert "did you mean 'videos'" in message


def test_unknown_table_is_a_rejection() -> None:
    assert issubclass(UnknownTable, SqlRejected)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "the SQL is empty"),
        ("-- nothing here", "the SQL is empty"),
        ("SELECT 1; DROP TABLE users", "only one statement at a time"),
        ("SELECT 1 /* ; */; DROP TABLE users", "only one statement at a time"),
        ("SELECT 1 --\n; DELETE FROM users", "only one statement at a time"),
        ("SELECT 1; SELECT 2", "only one statement at a time"),
        ("DROP TABLE users", "only a single SELECT statement"),
        ("DELETE FROM users", "only a single SELECT statement"),
        ("INSERT INTO users SELECT * FROM users", "only a single SELECT statement"),
        ("WITH x AS (SELECT 1) INSERT INTO users SELECT * FROM x", "only a single SELECT"),
        ("WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x", "DELETE is not allowed"),
        ("EXPORT DATABASE '/tmp/x'", "only a single SELECT statement"),
        ("DESCRIBE users", "only a single SELECT statement"),
        ("VALUES (1)", "only a single SELECT statement"),
        ("PIVOT users ON country USING count(*)", "only a single SELECT statement"),
        ("SELECT * INTO t FROM users", "SELECT ... INTO is not allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table functions such as read_csv()"),
        ("SELECT * FROM range(10)", "table functions"),
        ("SELECT * FROM unnest([1, 2])", "table functions such as unnest()"),
        ("SELECT * FROM users u, LATERAL unnest(u.tags)", "table functions such as unnest()"),
        ("SELECT * FROM users JOIN glob('*') ON true", "table functions such as glob()"),
        (
            "SELECT (SELECT count(*) FROM duckdb_tables())",
            "table functions such as duckdb_tables()",
        ),
        ("SELECT * FROM '/etc/passwd'", "reading files is not allowed"),
        ('SELECT * FROM "data.parquet"', "reading files is not allowed"),
        ("SELECT read_text('/etc/passwd')", "reading files is not allowed (read_text)"),
        ("SELECT parquet_metadata('x')", "reading files is not allowed"),
        ("SELECT getenv('HOME')", "function getenv is not allowed"),
        ("SELECT 'HOME'.getenv()", "function getenv is not allowed"),
        ("SELECT main.current_setting('threads')", "function current_setting is not allowed"),
        ("SELECT which_secret('s3://b/x', 's3')", "function which_secret is not allowed"),
        ("SELECT duckdb_version()", "function duckdb_version is not allowed"),
        ("SELECT * FROM main.users", "qualified table names such as main.users"),
        ("SELECT * FROM system.main.x", "qualified table names such as system.main.x"),
        ("SELECT 'abc", "could not parse the SQL"),
        ("SELECT FROM WHERE (", "could not parse the SQL"),
    ],
)
def test_rejections(sql: str, reason: str) -> None:
    with pytest.raises(SqlRejected) as info:
        guard_sql(sql, [*TABLES, "Users"], 10)
    assert reason in str(info.value)
    assert "Traceback" not in str(info.value)
