"""Benchmark: Leiden with the automatic resolution vs networkx Louvain on a planted partition.

Not a test. Run from the repository root::

    .venv/bin/python benchmarks/bench_communities.py [--seed 7] [--repeats 3]

The graph is ``nx.planted_partition_graph(1000, 100, 0.15, 5e-5)`` (100,000 nodes in
1,000 planted groups of 100, about 1M edges). Each method gets the graph in its own
format (igraph for Leiden, networkx for Louvain; the conversion is timed separately).
Prints a table and writes ``bench-out/communities.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import igraph as ig
import networkx as nx
import numpy as np
from sklearn.metrics import normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.communities import find_communities  # noqa: E402

GROUPS, SIZE, P_IN, P_OUT = 1000, 100, 0.15, 5e-5


def _timed(fn: Any, repeats: int) -> tuple[list[int], list[float], list[float]]:
    """Labels of the last run, wall-clock seconds and CPU seconds of this process per run."""
    wall, cpu, labels = [], [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        labels = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return labels, wall, cpu


def main() -> None:
    """Build the graph, run every method, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each Leiden variant")
    parser.add_argument("--louvain-repeats", type=int, default=1)
    parser.add_argument("--louvain-auto", action="store_true",
                        help="also time Louvain with the automatic resolution (several runs)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/communities.json"))
    args = parser.parse_args()

    start = time.perf_counter()
    graph = nx.planted_partition_graph(GROUPS, SIZE, P_IN, P_OUT, seed=args.seed)
    build_s = time.perf_counter() - start
    truth = np.empty(graph.number_of_nodes(), dtype=np.int64)
    for block, members in enumerate(graph.graph["partition"]):
        truth[list(members)] = block
    start = time.perf_counter()
    igraph_graph = ig.Graph(n=graph.number_of_nodes(), edges=list(graph.edges()))
    convert_s = time.perf_counter() - start
    print(f"graph: {graph.number_of_nodes():,} nodes, {graph.number_of_edges():,} edges "
          f"(built in {build_s:.1f} s; networkx → igraph {convert_s:.2f} s)")

    methods = {
        "leiden (automatic γ)": (lambda: find_communities(igraph_graph), args.repeats),
        "leiden (γ = 1)": (lambda: find_communities(igraph_graph, resolution=1.0), args.repeats),
        "networkx louvain (γ = 1)": (
            lambda: find_communities(graph, resolution=1.0, algorithm="louvain"),
            args.louvain_repeats),
    }
    if args.louvain_auto:
        methods["networkx louvain (automatic γ)"] = (
            lambda: find_communities(graph, algorithm="louvain"), 1)
        methods["networkx louvain (γ = 1)"] = methods.pop("networkx louvain (γ = 1)")  # last
    rows: list[dict[str, Any]] = []
    for name, (fn, repeats) in methods.items():
        labels, wall, cpu = _timed(fn, repeats)
        rows.append({"method": name, "wall_s": statistics.median(wall), "wall_best_s": min(wall),
                     "cpu_s": statistics.median(cpu), "runs": len(wall),
                     "communities": len(set(labels)),
                     "nmi": float(normalized_mutual_info_score(truth, labels))})
        print(f"  {name}: {min(wall):.2f} s, {rows[-1]['communities']} communities, "
              f"NMI {rows[-1]['nmi']:.4f}", flush=True)
    louvain = rows[-1]  # the reference: networkx Louvain at γ = 1
    for row in rows:
        row["speedup_wall"] = louvain["wall_s"] / row["wall_s"]
        row["speedup_cpu"] = louvain["cpu_s"] / row["cpu_s"]

    print(f"\n(median of runs; CPU = this process's CPU time, robust to other load; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'method':<28}{'wall s':>8}{'CPU s':>8}{'x wall':>8}{'x CPU':>8}{'found':>7}{'NMI':>8}")
    for r in rows:
        print(f"{r['method']:<28}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['speedup_wall']:>7.1f}x"
              f"{r['speedup_cpu']:>7.1f}x{r['communities']:>7}{r['nmi']:>8.4f}")
    report = {
        "graph": {"generator": "networkx.planted_partition_graph", "groups": GROUPS,
                  "size": SIZE, "p_in": P_IN, "p_out": P_OUT, "seed": args.seed,
                  "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
                  "build_s": build_s, "convert_to_igraph_s": convert_s},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg(), "igraph": ig.__version__,
                    "networkx": nx.__version__},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
