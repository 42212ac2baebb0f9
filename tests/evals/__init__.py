"""Evaluation suites (YAML) and the resolver of the sample suite's planted-truth expectations.

``resolve_truth`` is named by ``sample.yaml``'s header (``resolvers: {truth: ...}``); the
runner (``agent/evals.py``) loads it from this file and calls it for every ``{truth: key}``
expectation. It resolves expectations only: it reads the planted truth that the sample
generator writes beside the database (``<db folder>/truth/``) and turns a key into a plain
expectation (mentions, values, a number or a significance verdict). No agent or tool code
reads the truth; this file is test infrastructure.

Options of the case: ``first: true`` (the topic is named before any other) and ``together:
true`` (the topics are named in one sentence or table row). Keys: ``growing_topic``, ``underserved_topic``, ``topic:<name>`` (the topic is mentioned),
``opportunity_topics`` (the growing or the under-served one is), ``bridged_topics`` (both
are), ``user_topics`` / ``creator_topics`` (at least ``at_least`` topics are, default 3),
``largest_user_topic``, ``topic_count``, ``topic_users:<name>`` and ``topic_creators:<name>``
(numbers, default tolerance 20% / 25%; a group's size must be written beside its topic), ``top_video_topics:<n>[:liked|shared|commented]``
(at least ``at_least`` of the topics of the n most-viewed, or most-shared..., videos, default
2), ``bridge_creators`` (at least
``at_least`` bridge creators by handle or id, default 3), ``significant_difference`` and
``null_difference`` (the verdict on the planted pair).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

# Keywords that are ordinary words of an analyst's prose ("a bit", "time series", "core
# users", "twice as many"): a mention of them says nothing about a topic.
PROSE_WORDS = frozenset({
    "set", "bit", "core", "series", "study", "reading", "routine", "collection", "skills",
    "assist", "transfer", "goal", "interior", "cleaning", "accent", "phrases", "tricks",
    "tutorial", "retro", "twice", "comeback", "mirrored", "flight", "sketch", "joke", "spicy",
    "dinner", "recipe", "treats", "soil", "harvest", "watering", "painting", "salary",
    "stocks", "savings", "author", "library", "vendor", "beach", "airport", "hybrid", "glam",
    "explore", "beauty", "plants",
})


def _truth_dir(db: Path) -> Path:
    folder = Path(db).resolve().parent / "truth"
    if not (folder / "effects.json").exists():
        raise FileNotFoundError(f"no planted truth beside {db} (expected {folder})")
    return folder


def topic_terms(topic: dict[str, Any]) -> list[str]:
    """Words that show a topic is meant: its name (singular), keywords and hashtags, less
    the ordinary words of prose."""
    words = topic["topic"].split("_")
    if len(words[-1]) > 4 and words[-1].endswith("s"):
        words[-1] = words[-1][:-1]
    name = " ".join(words)
    terms = [name, *topic["keywords"], *topic.get("hashtags", [])]
    return list(dict.fromkeys(t for t in terms if t.lower() not in PROSE_WORDS))


def on_topic(name: str, topic: dict[str, Any]) -> bool:
    """A segment name mentions the planted topic or one of its keywords (spaces and hyphens
    aside): how names are scored against the sample's planted truth."""
    squashed = "".join(ch for ch in name.lower() if ch.isalnum())
    terms = topic_terms(topic) + [w for w in topic_terms(topic)[0].split() if len(w) > 3]
    return any("".join(ch for ch in term.lower() if ch.isalnum()) in squashed for term in terms)


def _topics(folder: Path) -> dict[str, dict[str, Any]]:
    """The planted topics with their keywords, and their hashtags from the generator's
    vocabulary (``sample_db/topics.py``): answers name segments by hashtags."""
    topics = {t["topic"]: dict(t) for t in json.loads((folder / "topics.json").read_text())}
    try:
        from sample_db.topics import TOPICS
    except ImportError:  # pragma: no cover - the suite run from elsewhere
        return topics
    for vocabulary in TOPICS:
        if vocabulary.name in topics:
            topics[vocabulary.name].setdefault("hashtags", list(vocabulary.hashtags))
    return topics


def _mention(topics: dict[str, dict[str, Any]], names: list[str], at_least: int | None,
             spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mentions of the topics ``names``; with ``first: true`` in the case, named before any
    other topic; with ``together: true``, named in one sentence or row."""
    groups = [topic_terms(topics[n]) for n in names]
    out: dict[str, Any] = {"mentions": groups, "words": True}
    if at_least is not None:
        out["at_least"] = min(at_least, len(groups))
    spec = spec or {}
    if spec.get("first"):
        out["before"] = [topic_terms(t) for n, t in topics.items() if n not in names]
    if spec.get("together"):
        out["together"] = True
    return out


def resolve_truth(key: str, spec: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Resolve the expectation ``{truth: key, ...}`` from the planted truth (see the module)."""
    folder = _truth_dir(ctx.db)
    effects = json.loads((folder / "effects.json").read_text())
    topics = _topics(folder)
    name, _, arg = str(key).partition(":")
    at_least = spec.get("at_least")
    if name in ("growing_topic", "underserved_topic"):
        return _mention(topics, [effects[name]], None, spec)
    if name == "opportunity_topics":
        return _mention(topics, [effects["growing_topic"], effects["underserved_topic"]], 1)
    if name == "topic":
        return _mention(topics, [arg], None, spec)
    if name == "bridged_topics":
        return _mention(topics, list(effects["bridged_topics"]), None, spec)
    if name in ("user_topics", "creator_topics"):
        return _mention(topics, list(topics), at_least or 3)
    if name == "largest_user_topic":
        users = pd.read_parquet(folder / "users.parquet")
        return _mention(topics, [str(users["topic"].value_counts().idxmax())], None, spec)
    if name == "topic_count":
        return {"number": len(topics), "tol": spec.get("tol", 0.2)}
    if name in ("topic_users", "topic_creators"):  # the size of that topic's group, beside it
        table = pd.read_parquet(folder / f"{name.split('_')[1]}.parquet")
        return {"number": int((table["topic"] == arg).sum()), "tol": spec.get("tol", 0.25),
                "near": topic_terms(topics[arg]), "words": True}
    if name == "top_video_topics":
        count, _, flag = arg.partition(":")
        measure = f"sum({flag}::INTEGER)" if flag in ("liked", "shared", "commented") else "count(*)"
        top = ctx.query(f"SELECT video_id FROM watch_events GROUP BY video_id "
                        f"ORDER BY {measure} DESC, video_id LIMIT {int(count)}")
        videos = pd.read_parquet(folder / "videos.parquet").set_index("video_id")["topic"]
        names = list(dict.fromkeys(videos.loc[top["video_id"].tolist()].tolist()))
        return _mention(topics, names, at_least or 2)
    if name == "bridge_creators":
        ids = [int(i) for i in effects["bridge_creator_ids"]]
        handles = ctx.query("SELECT creator_id, handle FROM creators WHERE creator_id IN ("
                            + ", ".join(map(str, ids)) + ")")
        by_id = dict(zip(handles["creator_id"], handles["handle"], strict=True))
        return {"values": [[by_id.get(i, str(i)), i] for i in ids], "at_least": at_least or 3}
    if name == "significant_difference":
        return {"significant": True}
    if name == "null_difference":
        return {"significant": False}
    raise KeyError(f"unknown planted-truth key '{key}'")
