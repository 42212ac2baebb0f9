"""Benchmark of cluster_users at scale (a script, not a test).

Two cases, each in its own process so that peak memory (``ru_maxrss``) is the case's own:

* ``synthetic``: a users × items sparse interest matrix generated here (default 1M users ×
  2,000 items, ~30 non-zeros per row, 20 latent groups), weighted like the feature SQL
  (ln(1 + 10·share) × idf, L2 rows), then :func:`tools.clustering.cluster_matrix` with the
  tool's defaults (automatic k, 50 SVD dimensions, MiniBatchKMeans above 50k users);
  NMI against the planted groups.
* ``scale10``: the sample database at scale 10 (200k users, 10M watch events), generated
  into ``bench-out/atlas_scale10.duckdb`` when missing; the whole tool (catalog, feature SQL,
  SVD, clustering, profiles) from a cold cache, then the cached repeat; NMI against the
  planted dominant topics.

Run: ``.venv/bin/python benchmarks/bench_clustering.py [--users N] [--skip-scale10]``.
Prints a table and writes ``bench-out/clustering.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench-out"
SCALE10 = OUT / "atlas_scale10.duckdb"
sys.path.insert(0, str(REPO))


def peak_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def synthetic_matrix(users: int, items: int, nnz: int, groups: int, seed: int = 1
                     ) -> tuple[Any, np.ndarray]:
    """Watch seconds per user × item: 60% of draws from the group's 60 items, the rest from a
    Zipf-like background over all items (so popular items are shared by every group)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, users)
    group_items = np.stack([rng.choice(items, 60, replace=False) for _ in range(groups)])
    popularity = 1.0 / (np.arange(items) + 10.0)
    popularity /= popularity.sum()
    rows = np.repeat(np.arange(users, dtype=np.int32), nnz)
    own = rng.random(users * nnz) < 0.6
    cols = rng.choice(items, size=users * nnz, p=popularity).astype(np.int32)
    pick = rng.integers(0, 60, size=int(own.sum()))
    cols[own] = group_items[group[rows[own]], pick]
    watch = rng.exponential(30.0, size=users * nnz).astype(np.float32) + 1.0
    matrix = sp.csr_matrix((watch, (rows, cols)), shape=(users, items))  # duplicates summed
    return matrix, group


def tfidf(watch: Any) -> Any:
    """The feature SQL's weights in numpy: ln(1 + 10·share) × ln((1+N)/(1+df)), L2 rows."""
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    x = sp.csr_matrix(watch, dtype=np.float32, copy=True)
    totals = np.asarray(x.sum(axis=1)).ravel()
    x.data /= np.repeat(totals, np.diff(x.indptr)).astype(np.float32)
    x.data = np.log1p(10.0 * x.data)
    df = np.bincount(x.indices, minlength=x.shape[1])
    idf = np.log((1.0 + x.shape[0]) / (1.0 + df)).astype(np.float32)
    x.data *= idf[x.indices]
    x.eliminate_zeros()
    return normalize(x)


def case_synthetic(users: int, items: int, nnz: int, groups: int) -> dict[str, Any]:
    from sklearn.metrics import normalized_mutual_info_score

    from tools.clustering import cluster_matrix

    base = peak_mib()
    t0 = time.perf_counter()
    watch, group = synthetic_matrix(users, items, nnz, groups)
    t1 = time.perf_counter()
    x = tfidf(watch)
    del watch
    t2 = time.perf_counter()
    fit = cluster_matrix(x, None, "kmeans", 50)
    t3 = time.perf_counter()
    return {
        "case": "synthetic", "users": users, "items": items, "nnz": int(x.nnz),
        "groups": groups, "k": fit.k, "algorithm": fit.algorithm,
        "nmi": round(float(normalized_mutual_info_score(group, fit.labels)), 4),
        "silhouette": fit.silhouette, "davies_bouldin": fit.davies_bouldin,
        "seconds": {"generate": round(t1 - t0, 1), "tfidf": round(t2 - t1, 1),
                    "cluster_total": round(t3 - t2, 1), **fit.seconds},
        "peak_rss_mib": peak_mib(), "baseline_rss_mib": base,
    }


def case_scale10() -> dict[str, Any]:
    import pandas as pd
    from sklearn.metrics import normalized_mutual_info_score

    from agent.config import Settings
    from tools.base import ToolContext
    from tools.clustering import cluster_users
    from tools.results import ResultStore
    from tools.semantic import load_notes
    from tools.workspace import Workspace

    generated = None
    if not SCALE10.exists() or not (OUT / "truth" / "users.parquet").exists():
        from sample_db.generate import generate

        t = time.perf_counter()
        generate(SCALE10, scale=10)
        generated = round(time.perf_counter() - t, 1)
    home = OUT / "clustering-home"
    shutil.rmtree(home, ignore_errors=True)
    base = peak_mib()
    settings = Settings(db=SCALE10, home=home)
    ws = Workspace(SCALE10, home, "bench")
    ctx = ToolContext(settings=settings, workspace=ws, results=ResultStore(home / "results"),
                      notes=load_notes(REPO / "sample_db" / "semantic.yaml"), session="bench")
    t0 = time.perf_counter()
    ctx.catalog()
    t1 = time.perf_counter()
    out = cluster_users(ctx)
    t2 = time.perf_counter()
    again = cluster_users(ctx)
    t3 = time.perf_counter()
    got = ws.frame("SELECT user_id, cluster_id FROM user_clusters")
    ws.close()
    truth = pd.read_parquet(OUT / "truth" / "users.parquet").merge(got, on="user_id")
    s = out.summary
    return {
        "case": "scale10", "users": s["users_clustered"], "items": s["items"], "k": s["clusters"],
        "algorithm": s["algorithm"],
        "nmi": round(float(normalized_mutual_info_score(truth["topic"], truth["cluster_id"])), 4),
        "silhouette": s["quality"]["silhouette"], "davies_bouldin": s["quality"]["davies_bouldin"],
        "seconds": {"generate_db": generated, "catalog": round(t1 - t0, 1),
                    "tool_cold": round(t2 - t1, 1), **s["computed_in_s"],
                    "tool_cached": round(t3 - t2, 2)},
        "cache_hit_second_call": again.summary["cache_hit"],
        "peak_rss_mib": peak_mib(), "baseline_rss_mib": base,
    }


def run_case(argv: list[str]) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its last stdout line is the JSON result."""
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"case {argv} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["synthetic", "scale10"], help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--nnz", type=int, default=30)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--skip-scale10", action="store_true")
    args = parser.parse_args()
    if args.case == "synthetic":
        print(json.dumps(case_synthetic(args.users, args.items, args.nnz, args.groups)))
        return
    if args.case == "scale10":
        print(json.dumps(case_scale10()))
        return
    OUT.mkdir(exist_ok=True)
    sizes = ["--users", str(args.users), "--items", str(args.items), "--nnz", str(args.nnz),
             "--groups", str(args.groups)]
    results = [run_case(["--case", "synthetic", *sizes])]
    if not args.skip_scale10:
        results.append(run_case(["--case", "scale10"]))
    print(f"{'case':10s} {'users':>9s} {'items':>6s} {'k':>3s} {'NMI':>6s} {'silh.':>6s} "
          f"{'DB':>5s} {'peak MiB':>9s}  seconds")
    for r in results:
        secs = ", ".join(f"{k} {v}" for k, v in r["seconds"].items() if v is not None)
        print(f"{r['case']:10s} {r['users']:>9,d} {r['items']:>6,d} {r['k']:>3d} {r['nmi']:>6.3f} "
              f"{r['silhouette'] or 0:>6.3f} {r['davies_bouldin'] or 0:>5.2f} "
              f"{r['peak_rss_mib']:>9,.0f}  {secs}")
    report = {"machine": {"python": platform.python_version(), "cpus": _cpus(),
                          "platform": platform.platform()}, "results": results}
    (OUT / "clustering.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"wrote {OUT / 'clustering.json'}")


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
