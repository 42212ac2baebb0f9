"""Benchmark of label_items at scale (a script, not a test).

Generates N synthetic videos (default 1,000,000) from the sample database's vocabularies
(:mod:`sample_db.topics`: topic keywords, title templates, hashtags, descriptions, generic
titles and hashtags, a coarse category that is wrong for 15% of videos, 10% off-topic
titles) into ``bench-out/label_items_videos.duckdb``, then runs the whole tool offline:
the data-proposed taxonomy, the deterministic labeler on a 1% sample, the TF-IDF + logistic
regression classifier on the rest, and saving ``item_labels``. Reports time per phase, the
share sent to the labeler, the classifier's agreement with held-out labeler labels, and
accuracy against the planted topics (each label mapped to its most common planted topic).

Run: ``.venv/bin/python benchmarks/bench_label_items.py [--videos N] [--share 0.01]``.
Prints the figures and writes ``bench-out/label_items.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench-out"
sys.path.insert(0, str(REPO))

from sample_db import topics as T  # noqa: E402


def generate(n: int, seed: int = 11) -> tuple[pa.Table, np.ndarray]:
    """N videos (video_id, creator_id, title, description, hashtags, category) and topics."""
    rng = np.random.default_rng(seed)
    k = len(T.TOPICS)
    pop = np.array([t.popularity for t in T.TOPICS])
    topic = rng.choice(k, size=n, p=pop / pop.sum())
    off = rng.random(n) < 0.10
    generic = rng.random(n) < 0.3
    other = (topic + rng.integers(1, k, n)) % k
    r = rng.random((n, 6))
    nums = rng.integers(2, 31, n)
    titles, descriptions, tags = [], [], []
    n_tags = rng.integers(3, 7, n)
    for i in range(n):
        src = T.TOPICS[other[i] if off[i] else topic[i]]
        kws = src.keywords
        kw, kw2 = kws[int(r[i, 0] * len(kws))], kws[int(r[i, 1] * len(kws))]
        if off[i] and generic[i]:
            title = T.GENERIC_TITLES[int(r[i, 2] * len(T.GENERIC_TITLES))]
        else:
            title = src.titles[int(r[i, 2] * len(src.titles))].format(kw=kw, kw2=kw2, n=nums[i])
        titles.append(title[0].upper() + title[1:])
        own = T.TOPICS[topic[i]]
        desc = T.DESCRIPTIONS[int(r[i, 3] * len(T.DESCRIPTIONS))]
        descriptions.append(desc.format(kw=own.keywords[int(r[i, 4] * len(own.keywords))],
                                        kw2=own.keywords[int(r[i, 5] * len(own.keywords))],
                                        n=nums[i]))
        rank = np.floor(len(own.hashtags) * rng.random(n_tags[i]) ** 1.6).astype(int)
        chosen = [own.hashtags[j] if rng.random() > 0.19 else
                  T.GENERIC_HASHTAGS[int(rng.integers(0, len(T.GENERIC_HASHTAGS)))] for j in rank]
        tags.append(list(dict.fromkeys(chosen)))
    truth_cat = np.array([T.CATEGORIES.index(t.category) for t in T.TOPICS])[topic]
    noisy = np.where(rng.random(n) < 0.15, (truth_cat + rng.integers(1, len(T.CATEGORIES), n))
                     % len(T.CATEGORIES), truth_cat)
    table = pa.table({
        "video_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "creator_id": pa.array(rng.integers(1, max(n // 50, 2), n)),
        "title": pa.array(titles, pa.string()),
        "description": pa.array(descriptions, pa.string()),
        "hashtags": pa.array(tags, pa.list_(pa.string())),
        "category": pa.array([T.CATEGORIES[c] for c in noisy], pa.string()),
    })
    return table, topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--share", type=float, default=0.01)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    db = OUT / "label_items_videos.duckdb"
    started = time.perf_counter()
    table, topic = generate(args.videos)
    gen_s = time.perf_counter() - started
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.register("src", table)
    con.execute("CREATE TABLE videos AS SELECT * FROM src")
    con.close()
    del table

    from agent.config import Settings
    from tools.base import ToolContext
    from tools.labeling import label_items
    from tools.results import ResultStore
    from tools.semantic import SemanticNotes
    from tools.workspace import Workspace

    home = Path(tempfile.mkdtemp(prefix="bench-label-items-"))
    settings = Settings(db=db, home=home, model="offline", sql_timeout_s=600)
    ws = Workspace.from_settings(settings, "bench")
    ctx = ToolContext(settings=settings, workspace=ws, results=ResultStore(home / "results"),
                      notes=SemanticNotes(), session="bench")
    ctx.catalog()
    started = time.perf_counter()
    out = label_items(ctx, "videos", sample_share=args.share, max_sample=100_000)
    tool_s = time.perf_counter() - started
    labels = ws.frame("SELECT video_id, label, source FROM item_labels ORDER BY video_id")
    ws.close()
    labels["topic"] = [T.TOPICS[t].name for t in topic[labels["video_id"].to_numpy() - 1]]
    major = labels.groupby("label")["topic"].agg(lambda s: s.value_counts().index[0])
    labels["correct"] = labels["label"].map(major) == labels["topic"]
    by_source = labels.groupby("source")["correct"].mean().round(4).to_dict()
    s = out.summary
    result: dict[str, Any] = {
        "videos": args.videos, "generate_s": round(gen_s, 1), "tool_s": round(tool_s, 1),
        "phases_s": s["seconds"], "labeled_by_labeler": s["labeled_by_labeler"],
        "share_sent_to_labeler": s["share_sent_to_labeler"],
        "agreement_with_held_out_labeler_labels": s["classifier"]["agreement_with_labeler"],
        "accuracy_vs_planted_topics": round(float(labels["correct"].mean()), 4),
        "accuracy_by_source": by_source, "taxonomy_leaves": s["taxonomy"]["leaves"],
        "planted_topics": len(T.TOPICS), "taxonomy_source": s["taxonomy"]["source"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    print(json.dumps(result, indent=2))
    (OUT / "label_items.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
