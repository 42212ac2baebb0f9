"""`atlas bench sql`: typical analyst queries through Atlas's SQL path vs raw DuckDB.

Three paths are timed in one run over the same database: the `atlas sql` command as a
process (start-up included), the same guarded workspace in-process (what the agent
pays), and a plain read-only DuckDB connection. Medians over ``repeat`` runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from rich.table import Table

from agent.config import REPO_ROOT

QUERIES: dict[str, str] = {
    "watch time by country": """
        SELECT u.country, SUM(w.watch_s) / 3600 AS watch_hours, COUNT(*) AS views
        FROM watch_events w JOIN users u USING (user_id)
        GROUP BY u.country ORDER BY watch_hours DESC""",
    "top hashtags by views": """
        SELECT tag, COUNT(*) AS views FROM (
          SELECT unnest(v.hashtags) AS tag FROM watch_events w JOIN videos v USING (video_id))
        GROUP BY tag ORDER BY views DESC LIMIT 20""",
    "daily watch time": """
        SELECT CAST(ts AS DATE) AS day, SUM(watch_s) AS watch_s, COUNT(DISTINCT user_id) AS dau
        FROM watch_events GROUP BY day ORDER BY day""",
    "completion rate by category": """
        SELECT v.category, AVG(CASE WHEN w.completed THEN 1 ELSE 0 END) AS completion_rate
        FROM watch_events w JOIN videos v USING (video_id) GROUP BY v.category ORDER BY 2 DESC""",
    "per-user watch time by device": """
        WITH per_user AS (SELECT user_id, SUM(watch_s) AS watch_s FROM watch_events GROUP BY user_id)
        SELECT u.device_os, AVG(p.watch_s) AS mean_watch_s, COUNT(*) AS users
        FROM per_user p JOIN users u USING (user_id) GROUP BY u.device_os""",
    "top creators by new followers": """
        SELECT c.creator_id, c.tier, COUNT(*) AS new_followers
        FROM follows f JOIN creators c USING (creator_id)
        WHERE f.followed_at >= TIMESTAMP '2026-09-01'
        GROUP BY ALL ORDER BY new_followers DESC LIMIT 10""",
}


@dataclass
class BenchReport:
    """Median milliseconds per query and path."""

    db: Path
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The figures as plain JSON."""
        total = {p: sum(t[p] for t in self.timings.values()) for p in ("cli", "workspace", "duckdb")}
        return {"db": str(self.db), "rows": self.rows, "median_ms": self.timings,
                "total_ms": total,
                "ratio_workspace_vs_duckdb": total["workspace"] / total["duckdb"],
                "ratio_cli_vs_duckdb": total["cli"] / total["duckdb"]}

    def table(self) -> Table:
        """A rich table of the medians and ratios."""
        table = Table(title=f"SQL benchmark on {self.db.name} (median ms)")
        for col in ("query", "atlas sql (process)", "workspace", "duckdb", "workspace/duckdb"):
            table.add_column(col, justify="right" if col != "query" else "left")
        for name, t in self.timings.items():
            table.add_row(name, f"{t['cli']:.0f}", f"{t['workspace']:.1f}", f"{t['duckdb']:.1f}",
                          f"{t['workspace'] / t['duckdb']:.2f}x")
        d = self.as_dict()
        tot = d["total_ms"]
        table.add_row("total", f"{tot['cli']:.0f}", f"{tot['workspace']:.1f}",  # type: ignore[index]
                      f"{tot['duckdb']:.1f}", f"{d['ratio_workspace_vs_duckdb']:.2f}x")  # type: ignore[index]
        return table


def _median_ms(run: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def ensure_bench_db(scale: float) -> Path:
    """The generated database of this scale under ``bench-out/`` (built when missing)."""
    from sample_db.generate import generate

    path = REPO_ROOT / "bench-out" / f"atlas_scale{scale:g}.duckdb"
    if not path.exists():
        generate(path, scale=scale, progress=True)
    return path


def run_sql_benchmark(db: Path | None, scale: float, repeat: int) -> BenchReport:
    """Time every query of :data:`QUERIES` on the three paths."""
    from tools.workspace import Workspace

    path = db or ensure_bench_db(scale)
    report = BenchReport(db=path)
    direct = duckdb.connect(str(path), read_only=True)
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace(path, Path(home), "bench", timeout_s=600, row_limit=100_000)
        try:
            for name, sql in QUERIES.items():
                direct.execute(sql).df()  # warm the OS cache once per query, for both paths
                report.rows[name] = len(ws.query(sql).df)
                cmd = [sys.executable, "-m", "agent.cli", "sql", sql, "--db", str(path), "--json"]
                report.timings[name] = {
                    "duckdb": _median_ms(lambda sql=sql: direct.execute(sql).df(), repeat),
                    "workspace": _median_ms(lambda sql=sql: ws.query(sql), repeat),
                    "cli": _median_ms(
                        lambda cmd=cmd, home=home: subprocess.run(
                            cmd, check=True, capture_output=True,
                            env={**_env(), "ATLAS_HOME": home}),
                        max(1, repeat // 2)),
                }
        finally:
            ws.close()
            direct.close()
    return report


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
