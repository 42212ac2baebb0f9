"""The local model's labels on the sample database, scored against its planted truth (a script).

Two measurements of issue 8's labeling path, with the model of ``--model`` (default the
Qwen2.5-Coder-1.5B GGUF that ``make local-model`` fetches) as the labeler:

1. ``label_segments`` over ``cluster_users`` with one cluster per planted topic: each named
   segment is scored "on topic" when its name contains a keyword of the planted topic most of
   its members were drawn from (the same rule as the labeling issue's offline figures).
2. ``label_items`` on the videos with about ``--items`` of them sent to the model and the
   TF-IDF + logistic regression classifier labeling the rest: the classifier's 5-fold agreement
   with the model's labels, where the taxonomy came from (the model's draft or, when the draft
   misses the data, the data-derived one), and accuracy against the planted topics (each label
   mapped to the planted topic most of its videos have).

Run: ``.venv/bin/python benchmarks/bench_local_labels.py [--model PATH] [--items 300]``.
Needs ``make local-model`` and the sample database (``make setup``); prints the figures and
writes ``bench-out/local_labels.json``. On 2 cores it takes about 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tools.labeling as labeling  # noqa: E402
from agent.analyst import Analyst  # noqa: E402
from agent.config import DEFAULT_DB, Settings  # noqa: E402
from agent.local_llm import make_local_model  # noqa: E402
from agent.model_fetch import MODEL_FILE  # noqa: E402
from tests.evals import on_topic  # noqa: E402
from tools.clustering import cluster_users  # noqa: E402


def main() -> None:
    """Run both measurements and write ``bench-out/local_labels.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / ".atlas" / "models" / MODEL_FILE)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--items", type=int, default=300, help="videos sent to the model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "local_labels.json")
    args = parser.parse_args()
    truth = args.db.parent / "truth"
    topics = {t["topic"]: t for t in json.loads((truth / "topics.json").read_text())}

    home = Path(tempfile.mkdtemp(prefix="bench-local-labels-"))
    settings = Settings(db=args.db, home=home, model=f"local:{args.model}",
                        llm_threads=args.threads)
    model = make_local_model(str(args.model), settings)
    labeling.labeling_model = lambda ctx: model  # the labelers call the local model
    analyst = Analyst(settings)
    ctx = analyst.context("labels")
    report: dict[str, Any] = {"model": str(args.model), "db": str(args.db)}

    cluster_users(ctx, k=len(topics))
    started = time.perf_counter()
    out = labeling.label_segments(ctx).summary
    seconds = time.perf_counter() - started
    users = pd.read_parquet(truth / "users.parquet")
    members = ctx.workspace.frame("SELECT user_id, cluster_id FROM user_clusters")
    planted = members.merge(users, on="user_id").groupby("cluster_id")["topic"].agg(
        lambda x: x.value_counts().index[0])
    segments = []
    for seg in out["segments"]:
        topic = planted[seg["segment_id"]]
        segments.append({"segment_id": seg["segment_id"], "planted_topic": topic,
                         "name": seg["name"], "source": seg["source"],
                         "on_topic": on_topic(seg["name"], topics[topic])})
        print(f"  {seg['segment_id']:>2} {topic:<20} {seg['name']!r:<40} {seg['source']:<8} "
              f"on topic: {segments[-1]['on_topic']}")
    report["segments"] = {
        "named": len(segments), "on_topic": sum(s["on_topic"] for s in segments),
        "model_names_kept": sum(s["source"] != "fallback" for s in segments),
        "seconds": round(seconds, 1), "model_calls": out.get("model_calls"),
        "input_tokens": out.get("input_tokens"), "output_tokens": out.get("output_tokens"),
        "names": segments}
    print(f"segments: {report['segments']['on_topic']}/{len(segments)} on topic, "
          f"{report['segments']['model_names_kept']} model names kept, {seconds:.0f} s")

    videos = int(ctx.workspace.frame("SELECT count(*) AS n FROM videos")["n"][0])
    started = time.perf_counter()
    items = labeling.label_items(ctx, items="videos", sample_share=min(1.0, args.items / videos),
                                 max_sample=args.items).summary
    seconds = time.perf_counter() - started
    labels = ctx.workspace.frame("SELECT video_id, label, source FROM item_labels")
    truth_videos = pd.read_parquet(truth / "videos.parquet")[["video_id", "topic"]]
    joined = labels.merge(truth_videos, on="video_id")
    major = joined.groupby("label")["topic"].agg(lambda x: x.value_counts().index[0])
    hit = joined["label"].map(major) == joined["topic"]
    report["items"] = {
        "videos": videos, "labeled_by_model": items.get("labeled_by_labeler"),
        "taxonomy": items.get("taxonomy"), "classifier": items.get("classifier"),
        "planted_topic_accuracy": round(float(hit.mean()), 4),
        "accuracy_by_source": {src: round(float(hit[joined["source"] == src].mean()), 4)
                               for src in joined["source"].unique()},
        "seconds": round(seconds, 1), "model_calls": items.get("model_calls"),
        "input_tokens": items.get("input_tokens"), "output_tokens": items.get("output_tokens")}
    print(json.dumps(report["items"], indent=1, default=str))
    analyst.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
