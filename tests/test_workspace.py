"""Workspace tests: the DuckDB layer, session tables, limits, and a hostile-SQL suite."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from agent.config import Settings
from tools.errors import (
    AtlasError,
    QueryError,
    QueryMemoryExceeded,
    QueryTimeout,
    SessionTableClash,
    SqlRejected,
    ToolArgumentError,
    UnknownTable,
)
from tools.workspace import QueryResult, SessionBusy, Workspace, session_filename

EVENTS = 200_000


def build_warehouse(path: Path, events: int = EVENTS) -> Path:
    """A small warehouse: users, videos (with a VARCHAR[] column) and watch_events."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE OR REPLACE TABLE users AS SELECT i AS user_id, 'user' || i AS handle, "
            "['BR', 'US', 'IN', 'DE'][1 + i % 4] AS country, "
            "['ios', 'android'][1 + i % 2] AS device_os FROM range(1, 501) t(i)"
        )
        con.execute(
            "CREATE OR REPLACE TABLE videos AS SELECT i AS video_id, 1 + i % 50 AS creator_id, "
            "'video ' || i AS title, "
            "CASE WHEN i % 2 = 0 THEN ['#cooking', '#food'] ELSE ['#diy'] END AS hashtags "
            "FROM range(1, 301) t(i)"
        )
        con.execute(
            f"CREATE OR REPLACE TABLE watch_events AS SELECT 1 + i % 500 AS user_id, "
            f"1 + (i * 7) % 300 AS video_id, (i % 60)::DOUBLE AS watch_s, "
            f"TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS ts FROM range({events}) t(i)"
        )
    finally:
        con.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")


@pytest.fixture(scope="module")
def warehouse_sha(warehouse: Path) -> str:
    return sha256(warehouse)


@pytest.fixture(scope="module")
def shared_ws(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One workspace for the hostile suite, so that a failure must leave it usable."""
    ws = Workspace(warehouse, tmp_path_factory.mktemp("state"), "hostile", row_limit=100)
    ws.save_table("user_clusters", pd.DataFrame({"user_id": [1, 2, 3], "cluster_id": [1, 1, 2]}))
    yield ws
    ws.close()


@pytest.fixture
def ws(warehouse: Path, tmp_path: Path) -> Iterator[Workspace]:
    with Workspace(warehouse, tmp_path / "state", "t", row_limit=50) as workspace:
        yield workspace


NOT_SELECT = "only a single SELECT statement is allowed"
MANY = "only one statement at a time is allowed"
FILES = "reading files is not allowed"
TABLE_FN = "table functions such as"
QUALIFIED = "qualified table names"

HOSTILE: list[tuple[str, type[Exception], str]] = [
    # DDL and DML
    ("CREATE TABLE t (a INTEGER)", SqlRejected, NOT_SELECT),
    ("CREATE TABLE t AS SELECT * FROM users", SqlRejected, NOT_SELECT),
    ("CREATE VIEW v AS SELECT 1", SqlRejected, NOT_SELECT),
    ("CREATE MACRO m(a) AS a", SqlRejected, NOT_SELECT),
    ("DROP TABLE users", SqlRejected, NOT_SELECT),
    ("DROP TABLE user_clusters", SqlRejected, NOT_SELECT),
    ("ALTER TABLE users ADD COLUMN x INTEGER", SqlRejected, NOT_SELECT),
    ("INSERT INTO users VALUES (9999, 'x', 'BR', 'ios')", SqlRejected, NOT_SELECT),
    ("UPDATE users SET country = 'XX'", SqlRejected, NOT_SELECT),
    ("DELETE FROM users", SqlRejected, NOT_SELECT),
    ("TRUNCATE users", SqlRejected, NOT_SELECT),
    (
        "MERGE INTO users USING users AS s ON false WHEN MATCHED THEN DELETE",
        SqlRejected,
        NOT_SELECT,
    ),
    ("SELECT * INTO stolen FROM users", SqlRejected, "SELECT ... INTO is not allowed"),
    ("WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x", SqlRejected, NOT_SELECT),
    ("WITH x AS (SELECT 1) INSERT INTO users SELECT * FROM x", SqlRejected, NOT_SELECT),
    # files, databases, extensions, settings
    ("COPY users TO '/tmp/atlas_stolen.csv'", SqlRejected, NOT_SELECT),
    ("COPY (SELECT * FROM users) TO 'out.parquet' (FORMAT parquet)", SqlRejected, NOT_SELECT),
    ("COPY users FROM '/etc/passwd'", SqlRejected, NOT_SELECT),
    ("EXPORT DATABASE '/tmp/atlas_export'", SqlRejected, NOT_SELECT),
    ("IMPORT DATABASE '/tmp/atlas_export'", SqlRejected, NOT_SELECT),
    ("ATTACH '/tmp/atlas_other.duckdb' AS other", SqlRejected, NOT_SELECT),
    ("DETACH wh", SqlRejected, NOT_SELECT),
    ("INSTALL httpfs", SqlRejected, NOT_SELECT),
    ("LOAD httpfs", SqlRejected, NOT_SELECT),
    ("PRAGMA database_list", SqlRejected, NOT_SELECT),
    ("SET threads = 64", SqlRejected, NOT_SELECT),
    ("SET search_path = 'memory.main'", SqlRejected, NOT_SELECT),
    ("RESET memory_limit", SqlRejected, NOT_SELECT),
    ("USE sess", SqlRejected, NOT_SELECT),
    ("CALL pragma_version()", SqlRejected, NOT_SELECT),
    ("CHECKPOINT", SqlRejected, NOT_SELECT),
    ("VACUUM", SqlRejected, NOT_SELECT),
    ("DESCRIBE users", SqlRejected, NOT_SELECT),
    # several statements, comment tricks
    ("SELECT 1; DROP TABLE users", SqlRejected, MANY),
    ("SELECT 1 /* ; */; DROP TABLE users", SqlRejected, MANY),
    ("SELECT 1 --\n; DELETE FROM users", SqlRejected, MANY),
    ("SELECT count(*) FROM users; SELECT 2", SqlRejected, MANY),
    ("", SqlRejected, "the SQL is empty"),
    # table functions and file reads
    ("SELECT * FROM read_csv('/etc/passwd')", SqlRejected, f"{TABLE_FN} read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", SqlRejected, f"{TABLE_FN} read_csv_auto()"),
    ("SELECT * FROM read_parquet('x.parquet')", SqlRejected, f"{TABLE_FN} read_parquet()"),
    ("SELECT * FROM read_json('x.json')", SqlRejected, f"{TABLE_FN} read_json()"),
    ("SELECT * FROM read_text('/etc/passwd')", SqlRejected, f"{TABLE_FN} read_text()"),
    ("SELECT * FROM read_blob('/etc/passwd')", SqlRejected, f"{TABLE_FN} read_blob()"),
    ("SELECT * FROM glob('/etc/*')", SqlRejected, f"{TABLE_FN} glob()"),
    ("SELECT * FROM query('SELECT 42')", SqlRejected, f"{TABLE_FN} query()"),
    ("SELECT * FROM query_table('users')", SqlRejected, f"{TABLE_FN} query_table()"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", SqlRejected, f"{TABLE_FN} sniff_csv()"),
    ("SELECT * FROM duckdb_settings()", SqlRejected, f"{TABLE_FN} duckdb_settings()"),
    ("SELECT * FROM duckdb_tables()", SqlRejected, f"{TABLE_FN} duckdb_tables()"),
    ("SELECT * FROM pragma_table_info('users')", SqlRejected, TABLE_FN),
    ("SELECT * FROM range(1000000000)", SqlRejected, TABLE_FN),
    ("SELECT * FROM users u JOIN read_csv('/etc/passwd') r ON true", SqlRejected, TABLE_FN),
    ("SELECT * FROM users WHERE user_id IN (FROM glob('*'))", SqlRejected, TABLE_FN),
    ("SELECT * FROM '/etc/passwd'", SqlRejected, FILES),
    ("SELECT * FROM 'x.csv'", SqlRejected, FILES),
    ("FROM 'data/*.parquet'", SqlRejected, FILES),
    ("SELECT read_text('/etc/passwd')", SqlRejected, FILES),
    # functions reaching settings or the environment
    ("SELECT getenv('HOME')", SqlRejected, "function getenv is not allowed"),
    ("SELECT 'HOME'.getenv()", SqlRejected, "function getenv is not allowed"),
    ("SELECT current_setting('memory_limit')", SqlRejected, "function current_setting"),
    (
        "SELECT count(*) FROM users WHERE handle = current_setting('home_directory')",
        SqlRejected,
        "function current_setting",
    ),
    ("SELECT which_secret('s3://bucket/x', 's3')", SqlRejected, "function which_secret"),
    # names outside the allowlist
    ("SELECT * FROM vids", UnknownTable, "unknown table 'vids'"),
    ("SELECT * FROM users JOIN secrets USING (user_id)", UnknownTable, "unknown table 'secrets'"),
    ("SELECT * FROM sqlite_master", UnknownTable, "unknown table 'sqlite_master'"),
    ("SELECT * FROM duckdb_databases", UnknownTable, "unknown table 'duckdb_databases'"),
    (
        "SELECT * FROM (WITH duckdb_tables AS (SELECT 1) SELECT 1) AS s, duckdb_tables",
        UnknownTable,
        "unknown table 'duckdb_tables'",
    ),
    ("SELECT * FROM system.main.duckdb_settings", SqlRejected, QUALIFIED),
    ("SELECT * FROM temp.main.x", SqlRejected, QUALIFIED),
    ("SELECT * FROM wh.main.users", SqlRejected, QUALIFIED),
    ("SELECT * FROM memory.users", SqlRejected, QUALIFIED),
]


@pytest.mark.parametrize(("sql", "error", "reason"), HOSTILE, ids=[r[0][:40] for r in HOSTILE])
def test_hostile_sql_is_rejected(
    shared_ws: Workspace,
    warehouse: Path,
    warehouse_sha: str,
    sql: str,
    error: type[Exception],
    reason: str,
) -> None:
    with pytest.raises(error) as info:
        shared_ws.query(sql)
    assert reason in str(info.value)
    assert "Traceback" not in str(info.value)
    # The session is still usable and nothing was changed.
    assert shared_ws.query("SELECT count(*) AS n FROM users").df["n"].iloc[0] == 500
    assert shared_ws.session_tables == ["user_clusters"]
    assert sha256(warehouse) == warehouse_sha


def test_hostile_suite_is_big_enough() -> None:
    assert len(HOSTILE) >= 40


def test_cross_join_aggregate_hits_the_timeout(
    shared_ws: Workspace, warehouse: Path, warehouse_sha: str
) -> None:
    start = time.perf_counter()
    with pytest.raises(QueryTimeout) as info:
        shared_ws.query(
            "SELECT count(*) FROM watch_events a, watch_events b WHERE a.watch_s + b.watch_s > 3",
            timeout_s=2,
        )
    assert time.perf_counter() - start < 6
    assert "stopped after 2 s" in str(info.value)
    assert shared_ws.query("SELECT 1 AS one").df["one"].iloc[0] == 1
    assert sha256(warehouse) == warehouse_sha


FILES_OFF = "reach files or settings, which is not allowed"
LOCKED = "the configuration has been locked"
READ_ONLY = "attached in read-only mode"

RAW: list[tuple[str, str]] = [
    ("COPY wh.main.users TO '{tmp}/stolen.csv'", FILES_OFF),
    ("COPY (SELECT 1) TO '{tmp}/stolen.parquet' (FORMAT parquet)", FILES_OFF),
    ("SELECT * FROM read_csv('/etc/passwd')", FILES_OFF),
    ("SELECT * FROM read_text('/etc/hostname')", FILES_OFF),
    ("SELECT * FROM glob('/etc/*')", FILES_OFF),
    ("SELECT * FROM '/etc/passwd'", "does not exist"),
    ("ATTACH '{tmp}/other.duckdb' AS other", FILES_OFF),
    ("EXPORT DATABASE '{tmp}/export'", FILES_OFF),
    ("INSTALL httpfs", FILES_OFF),
    ("LOAD httpfs", FILES_OFF),
    ("SET threads = 16", LOCKED),
    ("SET memory_limit = '100GB'", LOCKED),
    ("SET enable_external_access = true", LOCKED),
    ("RESET lock_configuration", LOCKED),
    ("INSERT INTO wh.main.users VALUES (9999, 'x', 'BR', 'ios')", READ_ONLY),
    ("CREATE TABLE wh.main.t AS SELECT 1 AS a", READ_ONLY),
    ("DROP TABLE wh.main.users", READ_ONLY),
    ("SELECT * FROM local_secret_frame", "does not exist"),  # no Python replacement scans
    ("SELECT getenv('HOME')", "does not exist"),
]


@pytest.mark.parametrize(("sql", "reason"), RAW, ids=[r[0][:40] for r in RAW])
def test_duckdb_layer_refuses_even_without_the_guard(
    ws: Workspace, warehouse: Path, warehouse_sha: str, tmp_path: Path, sql: str, reason: str
) -> None:
    local_secret_frame = pd.DataFrame({"secret": ["s3cr3t"]})  # noqa: F841 (bait)
    with pytest.raises(AtlasError) as info:
        ws.frame(sql.format(tmp=tmp_path))  # frame() skips the guard
    assert reason in str(info.value)
    assert not any(tmp_path.glob("stolen*")) and not (tmp_path / "other.duckdb").exists()
    assert not (tmp_path / "export").exists()
    assert ws.frame("SELECT count(*) AS n FROM users")["n"].iloc[0] == 500
    assert sha256(warehouse) == warehouse_sha


def test_query_result_and_list_columns(ws: Workspace) -> None:
    result = ws.query("SELECT video_id, hashtags FROM videos ORDER BY video_id LIMIT 2")
    assert isinstance(result, QueryResult)
    assert result.columns == ["video_id", "hashtags"]
    assert result.row_count == 2 and not result.truncated
    assert result.df["hashtags"].tolist() == [["#diy"], ["#cooking", "#food"]]
    assert result.ms >= 0
    assert result.sql.endswith("LIMIT 2")


def test_unnest_in_select_list(ws: Workspace) -> None:
    df = ws.query(
        "SELECT unnest(hashtags) AS tag, count(*) AS n FROM videos GROUP BY tag ORDER BY tag"
    ).df
    assert df.to_dict("records") == [
        {"tag": "#cooking", "n": 150},
        {"tag": "#diy", "n": 150},
        {"tag": "#food", "n": 150},
    ]


def test_row_cap_sets_truncated(warehouse: Path, tmp_path: Path) -> None:
    with Workspace(warehouse, tmp_path, "cap", row_limit=5) as ws:
        cut = ws.query("SELECT * FROM users ORDER BY user_id")
        assert cut.truncated and cut.row_count == 5
        assert cut.df["user_id"].tolist() == [1, 2, 3, 4, 5]
        assert cut.sql.endswith("LIMIT 6")
        exact = ws.query("SELECT * FROM users LIMIT 5")
        assert not exact.truncated and exact.row_count == 5
        asked = ws.query("SELECT * FROM users LIMIT 7")
        assert asked.truncated and asked.row_count == 5
        assert len(ws.frame("SELECT * FROM users")) == 500  # trusted SQL is not capped


def test_unknown_column_names_it_and_the_columns(ws: Workspace) -> None:
    with pytest.raises(QueryError) as info:
        ws.query("SELECT countri FROM users")
    message = str(info.value)
    assert 'unknown column "countri"' in message
    assert "columns of users: user_id, handle, country, device_os" in message
    assert "Traceback" not in message and "LINE 1" not in message


def test_unknown_column_of_another_table_says_where_it_is(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE customers (customer_id INTEGER, region VARCHAR)")
    con.execute("CREATE TABLE orders (order_id INTEGER, customer_id INTEGER, amount DOUBLE)")
    con.close()
    join = "(join customers ON orders.customer_id = customers.customer_id)"
    with Workspace(db, tmp_path / "home", "j") as ws:
        for column in ("region", "customer_region"):
            with pytest.raises(QueryError) as info:
                ws.query(f"SELECT {column}, sum(amount) FROM orders GROUP BY 1")
            assert str(info.value).endswith(f"; customers has region {join}")
        with pytest.raises(QueryError) as info:
            ws.query("SELECT o.nothing FROM orders o")
        assert "has" not in str(info.value)


def test_other_duckdb_errors_are_query_errors(ws: Workspace) -> None:
    with pytest.raises(QueryError) as info:
        ws.query("SELECT CAST(handle AS INTEGER) FROM users")
    assert "Could not convert string" in str(info.value)
    assert "\n" not in str(info.value)


def test_memory_limit(warehouse: Path, tmp_path: Path) -> None:
    with Workspace(warehouse, tmp_path, "mem", memory_limit="32MB") as ws:
        with pytest.raises(QueryMemoryExceeded) as info:
            ws.frame("SELECT list(i) FROM range(50000000) t(i)")
        assert "more than 32MB of memory" in str(info.value)
        assert ws.frame("SELECT 1 AS one")["one"].iloc[0] == 1


def test_frame_params_and_timeout(ws: Workspace) -> None:
    df = ws.frame("SELECT handle FROM users WHERE user_id = ? OR user_id = ?", [1, 2])
    assert sorted(df["handle"]) == ["user1", "user2"]
    with pytest.raises(QueryTimeout):
        ws.frame(
            "SELECT count(*) FROM watch_events a, watch_events b WHERE a.watch_s > b.watch_s",
            timeout_s=0.5,
        )
    assert ws.frame("SELECT 2 AS two")["two"].iloc[0] == 2


def test_session_tables_survive_reopen_and_join_bare(warehouse: Path, tmp_path: Path) -> None:
    clusters = pd.DataFrame({"user_id": [1, 2, 3, 4], "cluster_id": [1, 1, 2, 2]})
    with Workspace(warehouse, tmp_path, "analyst-1") as ws:
        assert ws.save_table("user_clusters", clusters) is False
        assert ws.session_tables == ["user_clusters"]
    with Workspace(warehouse, tmp_path, "analyst-1") as ws:
        assert ws.session_tables == ["user_clusters"]
        assert ws.table_names() == ["users", "videos", "watch_events", "user_clusters"]
        df = ws.query(
            "SELECT c.cluster_id, count(*) AS n FROM user_clusters c JOIN users u "
            "USING (user_id) WHERE u.country = 'BR' GROUP BY 1 ORDER BY 1"
        ).df
        # users 1..4 have countries US, IN, DE, BR
        assert df.to_dict("records") == [{"cluster_id": 2, "n": 1}]


def test_save_table_replace_clash_drop_and_names(ws: Workspace) -> None:
    first = pd.DataFrame({"segment_id": [1], "name": ["Cooks"], "tags": [["#cooking"]]})
    assert ws.save_table("segment_labels", first) is False
    assert ws.save_table("segment_labels", first.assign(name="Chefs")) is True
    result = ws.query("SELECT name, tags FROM segment_labels").df
    assert result.to_dict("records") == [{"name": "Chefs", "tags": ["#cooking"]}]
    with pytest.raises(SessionTableClash):
        ws.save_table("users", first)
    for bad in ("Users2", "2x", "a-b", "x; DROP TABLE users", ""):
        with pytest.raises(ToolArgumentError):
            ws.save_table(bad, first)
    ws.drop_table("segment_labels")
    ws.drop_table("segment_labels")  # dropping a missing table is fine
    assert ws.session_tables == []
    with pytest.raises(SessionTableClash):
        ws.drop_table("users")
    with pytest.raises(UnknownTable):
        ws.query("SELECT * FROM segment_labels")


def test_two_sessions_are_isolated_and_share_the_warehouse(warehouse: Path, tmp_path: Path) -> None:
    with (
        Workspace(warehouse, tmp_path, "alice") as alice,
        Workspace(warehouse, tmp_path, "bob") as bob,
    ):
        alice.save_table("mine", pd.DataFrame({"x": [1]}))
        assert bob.session_tables == []
        with pytest.raises(UnknownTable):
            bob.query("SELECT * FROM mine")
        assert alice.query("SELECT count(*) AS n FROM watch_events").df["n"].iloc[0] == EVENTS
        assert bob.query("SELECT count(*) AS n FROM watch_events").df["n"].iloc[0] == EVENTS


def test_same_session_twice_is_refused_clearly(warehouse: Path, tmp_path: Path) -> None:
    with Workspace(warehouse, tmp_path, "busy"):
        with pytest.raises(SessionBusy) as info:
            Workspace(warehouse, tmp_path, "busy")
        assert "session 'busy' is open" in str(info.value)
    with Workspace(warehouse, tmp_path, "busy") as again:  # free once closed
        assert again.session_tables == []


def test_session_ids_become_safe_file_names(warehouse: Path, tmp_path: Path) -> None:
    assert session_filename("slack-C123_ts") == "slack-C123_ts"
    odd = session_filename("../../etc/passwd")
    assert "/" not in odd and odd != session_filename("..-..-etc-passwd")
    with Workspace(warehouse, tmp_path, "../escape") as ws:
        assert ws.session_path.parent == (tmp_path / "sessions").resolve()


def test_fingerprint_is_stable_and_follows_the_warehouse(tmp_path: Path) -> None:
    db = build_warehouse(tmp_path / "fp.duckdb", events=1_000)
    with Workspace(db, tmp_path / "state", "a") as ws:
        first = ws.fingerprint()
        assert len(first) == 16 and int(first, 16) >= 0
        assert ws.fingerprint() == first
    with Workspace(db, tmp_path / "state", "a") as ws:
        assert ws.fingerprint() == first
    build_warehouse(db, events=1_001)
    with Workspace(db, tmp_path / "state", "a") as ws:
        assert ws.fingerprint() != first


def test_from_settings(warehouse: Path, tmp_path: Path) -> None:
    settings = Settings(db=warehouse, home=tmp_path / "home", sql_row_limit=3, sql_timeout_s=5)
    with Workspace.from_settings(settings, "cli") as ws:
        assert ws.row_limit == 3 and ws.timeout_s == 5
        assert ws.session_path == (tmp_path / "home" / "sessions" / "cli.duckdb").resolve()
        assert ws.query("SELECT * FROM users").truncated


def test_missing_warehouse_and_closed_workspace(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(AtlasError, match="does not exist"):
        Workspace(tmp_path / "nope.duckdb", tmp_path, "x")
    ws = Workspace(warehouse, tmp_path, "closing")
    ws.close()
    ws.close()
    with pytest.raises(AtlasError, match="closed"):
        ws.query("SELECT 1")


def test_workspace_is_safe_from_several_threads(ws: Workspace) -> None:
    errors: list[BaseException] = []
    results: dict[int, int] = {}

    def work(i: int) -> None:
        try:
            for _ in range(5):
                df = ws.query(f"SELECT count(*) AS n FROM users WHERE user_id <= {i + 1}").df
                results[i] = int(df["n"].iloc[0])
                ws.frame("SELECT count(*) FROM watch_events")
            if i == 0:
                with pytest.raises(QueryTimeout):
                    ws.query(
                        "SELECT count(*) FROM watch_events a, watch_events b "
                        "WHERE a.watch_s < b.watch_s",
                        timeout_s=0.3,
                    )
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == {i: i + 1 for i in range(8)}
