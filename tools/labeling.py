"""label_segments and label_items: names for segments, interest labels for items.

The labeler is a chat model when one is configured (``ATLAS_MODEL``), else the offline
deterministic labeler; :func:`labeling_model` picks it and is the seam tests monkeypatch.
Model calls are cached by (prompt version, model, database fingerprint, inputs) and metered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from langchain_core.language_models import BaseChatModel

import prompts
from agent.llm import make_chat_model
from tools.base import ToolContext, ToolOutput, derived_cache
from tools.cache import cache_key
from tools.catalog import TableInfo
from tools.classifier import leaf_documents, train_and_predict
from tools.errors import ToolArgumentError
from tools.evidence import (
    SEGMENT_SOURCES,
    EvidenceSet,
    SegmentEvidence,
    collect_evidence,
    evidence_frame,
    item_text_columns,
    k_anonymity,
    membership_digest,
    segment_table,
)
from tools.features import FEATURE_TIMEOUT_S, discover_schema, q
from tools.labelers import (
    DeterministicLabeler,
    Label,
    LLMLabeler,
    count_words,
    name_candidates,
)
from tools.llm_cache import CachedModel, Usage, llm_cache, model_name
from tools.taxonomy import (
    OTHER,
    ItemText,
    Taxonomy,
    data_taxonomy,
    label_counts,
    parse_taxonomy,
    score_items,
)

LABELS_TABLE = "segment_labels"
ITEMS_TABLE = "item_labels"
SMALL_NAME = "Other (small segments)"
EVIDENCE_VERSION = "2"
ITEMS_VERSION = "2"
TAXONOMY_SAMPLE = 150
MIN_PROPOSAL_COVERAGE = 0.15
"""A model's taxonomy must match at least this share of the items the data's matches."""
MIN_SAMPLE = 50
SEED = 0


def labeling_model(ctx: ToolContext) -> BaseChatModel | None:
    """The chat model that labels, or None for the offline deterministic labeler."""
    if ctx.settings.model == "offline":
        return None
    return make_chat_model(ctx.settings, ctx)


def _labeler(ctx: ToolContext) -> tuple[DeterministicLabeler | LLMLabeler, Usage]:
    model = labeling_model(ctx)
    if model is None:
        return DeterministicLabeler(), Usage("offline")
    cached = CachedModel(model, model_name(ctx, model), llm_cache(ctx), ctx.workspace.fingerprint())
    return LLMLabeler(cached), cached.usage


# ---------------------------------------------------------------- label_segments


def _ensure_segments(ctx: ToolContext, kind: str) -> list[str]:
    """Run the tool that makes ``kind`` segments when the session has none; what ran."""
    from tools.registry import run_tool

    if kind not in SEGMENT_SOURCES:
        return []  # segment_table() explains the unknown kind
    table, _, tool = SEGMENT_SOURCES[kind]
    found = ctx.catalog().table(table)
    if found is not None and found.origin == "session":
        return []
    run_tool(ctx, tool)
    return [tool]


def label_segments(ctx: ToolContext, segment_kind: str = "cluster", top_terms: int = 12
                   ) -> ToolOutput:
    """Name the user segments found by cluster_users or detect_communities.

    Use after cluster_users ("cluster") or detect_communities ("community") when the person
    wants to know what the segments are about; when the session has no such segments yet,
    it runs that tool first with its defaults. Each segment gets a short name, a one-sentence
    description and its top interests, grounded in evidence: the terms that distinguish what
    its members watch and search (class-based TF-IDF), the most watched titles, size and
    demographics. Saves the session table segment_labels(segment_kind, segment_id, name,
    description, top_interests), which SQL can join to user_clusters or user_communities.
    Segments smaller than the privacy floor are called "Other (small segments)".

    Args:
        segment_kind: "cluster" (user_clusters) or "community" (user_communities).
        top_terms: distinctive terms per segment to weigh (3-50).
    """
    kind = str(segment_kind).strip().lower()
    if not 3 <= int(top_terms) <= 50:
        raise ToolArgumentError("top_terms must be between 3 and 50")
    ran = _ensure_segments(ctx, kind)
    catalog = ctx.catalog()
    seg = segment_table(catalog, kind)
    floor = int(ctx.settings.privacy_floor)
    args = {"kind": kind, "top_terms": int(top_terms), "floor": floor,
            "members": membership_digest(ctx.workspace, seg)}
    key = cache_key(ctx.workspace.fingerprint(), "segment_evidence", args, EVIDENCE_VERSION)
    evidence, _ = derived_cache(ctx).get_or_compute(
        key, lambda: collect_evidence(ctx.workspace, catalog, seg, int(top_terms), floor))
    labeler, usage = _labeler(ctx)
    named = [s for s in evidence.segments if _members(s) >= floor]
    labels = unique_names([(s, labeler.label_segment(s, evidence)) for s in named])
    small = [s for s in evidence.segments if _members(s) < floor]
    rows = [{"segment_kind": kind, "segment_id": s.segment_id, "name": lbl.name,
             "description": lbl.description, "top_interests": list(lbl.top_interests)}
            for s, lbl in labels]
    rows += [{"segment_kind": kind, "segment_id": s.segment_id, "name": SMALL_NAME,
              "description": f"segments under {floor} members, not described", "top_interests": []}
             for s in small]
    replaced = _save_labels(ctx, kind, pd.DataFrame(rows))
    shown = [s for s in evidence.segments if _members(s) >= floor]
    ref = ctx.results.put_table(_evidence_table(evidence, shown, labels),
                                f"Segment labels and evidence ({kind})", evidence.sql)
    segments = [{"segment_id": s.segment_id, "size": s.size, "share": s.share, "name": lbl.name,
                 "description": lbl.description, "top_interests": list(lbl.top_interests)[:6],
                 "confidence": lbl.confidence, "source": lbl.source} for s, lbl in labels]
    summary: dict[str, Any] = {
        "table": LABELS_TABLE, "segment_kind": kind, "segments": segments,
        "labeler": "deterministic (offline)" if isinstance(labeler, DeterministicLabeler)
        else f"model {usage.model}", **usage.summary(), "replaced": replaced, "evidence_ref": ref,
    }
    if ran:
        summary["ran_first"] = ran
    rejected = sum(1 for _, lbl in labels if lbl.source == "fallback")
    if rejected and not isinstance(labeler, DeterministicLabeler):
        summary["model_names_rejected"] = rejected
    if small:
        summary["other"] = {"segments": len(small), "members": sum(s.size for s in small),
                            "note": f"segments under {floor} members are not named"}
    if segments:
        first = segments[0]
        table = seg.table
        summary["reading"] = (
            f"Named {len(segments)} {kind}s; the largest, {kind} {first['segment_id']} "
            f"({first['share']:.0%} of members), is '{first['name']}'. Join {LABELS_TABLE} "
            f"(segment_kind = '{kind}') with {table} on {seg.segment_col} = segment_id.")
    else:
        summary["reading"] = f"Every {kind} is under the privacy floor of {floor}; none named."
    return ToolOutput(summary=summary, sql=evidence.sql, rows=len(rows), refs=[ref])


def _members(segment: SegmentEvidence) -> int:
    """Members that count for the privacy floor: users, or creators in a creator-only one."""
    return segment.size if segment.size or segment.creators is None else segment.creators


def unique_names(labels: list[tuple[SegmentEvidence, Label]]
                 ) -> list[tuple[SegmentEvidence, Label]]:
    """Make names unique within a run: a later duplicate gets a distinguishing term."""
    used: set[str] = set()
    out = []
    for seg, label in labels:
        name = label.name
        if name.lower() in used:
            name = _distinguish(name, seg, used)
        used.add(name.lower())
        out.append((seg, label if name == label.name else
                    Label(name, label.description, label.top_interests, label.confidence,
                          label.source)))
    return out


def _distinguish(name: str, seg: SegmentEvidence, used: set[str]) -> str:
    base, _, category = name.partition(" · ")
    have = {w.lower() for w in base.split()}
    terms = name_candidates(seg) + [t.term.lstrip("#") for t in seg.support]
    for term in dict.fromkeys(terms):
        if set(term.lower().split()) & have:
            continue
        extra = " ".join(w[:1].upper() + w[1:] for w in term.split())
        first = base.split()[0]
        for cand in (f"{base} {extra} · {category}", f"{base} {extra}",
                     f"{first} {extra} · {category}", f"{first} {extra}"):
            cand = cand.removesuffix(" · ")
            if count_words(cand) <= 5 and cand.lower() not in used:
                return cand
    return " ".join(base.split()[:3] + [str(seg.segment_id)])


def _save_labels(ctx: ToolContext, kind: str, rows: pd.DataFrame) -> bool:
    """Replace this kind's rows of segment_labels, keeping the other kind's."""
    columns = ["segment_kind", "segment_id", "name", "description", "top_interests"]
    if LABELS_TABLE in ctx.workspace.session_tables:
        old = ctx.workspace.frame(f"SELECT * FROM {LABELS_TABLE}")
        if list(old.columns) == columns:
            old = old[old["segment_kind"] != kind]
            rows = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    rows = rows[columns].sort_values(["segment_kind", "segment_id"], ignore_index=True)
    rows["segment_id"] = rows["segment_id"].astype("int64")
    # arrow-typed so that a column of only empty lists is still VARCHAR[]
    rows["top_interests"] = pd.Series([list(v) for v in rows["top_interests"]],
                                      dtype=pd.ArrowDtype(pa.list_(pa.string())))
    return ctx.save_table(LABELS_TABLE, rows)


def _evidence_table(evidence: EvidenceSet, shown: list[SegmentEvidence],
                    labels: list[tuple[SegmentEvidence, Label]]) -> pd.DataFrame:
    keep = EvidenceSet(evidence.kind, tuple(shown), evidence.total, evidence.k_anonymity,
                       evidence.sql)
    frame = evidence_frame(keep)
    names = {s.segment_id: lbl for s, lbl in labels}
    if len(frame):
        frame.insert(1, "name", [names[i].name for i in frame["segment_id"]])
        frame.insert(2, "description", [names[i].description for i in frame["segment_id"]])
        frame.insert(3, "confidence", [names[i].confidence for i in frame["segment_id"]])
    return frame


# ---------------------------------------------------------------- label_items


@dataclass(frozen=True)
class ItemSpec:
    """Which table holds the items, what identifies them and which text describes them."""

    table: str
    key: str
    keyed: bool  # False: the items are the distinct values of a text column (searches)
    text_cols: tuple[str, ...]
    tag_col: str | None
    category_col: str | None
    personal: bool
    user_col: str | None


def item_spec(ctx: ToolContext, items: str) -> ItemSpec:
    """Resolve the ``items`` argument (a table name) to its key and text columns."""
    catalog = ctx.catalog()
    table = catalog.table(str(items).strip())
    usable = [t.name for t in catalog.tables.values() if t.origin == "warehouse"
              and any(c.kind in ("text", "list") and (c.distinct or 0) > 50 for c in t.columns)]
    if table is None or table.origin != "warehouse":
        raise ToolArgumentError(f"unknown items '{items}'; tables with text: {', '.join(usable)}")
    text, _, tags, category = item_text_columns(table)
    key = _unique_key(table)
    if key is not None and (text or tags):
        return ItemSpec(table.name, key, True, tuple(text), tags[0] if tags else None, category,
                        False, None)
    free = [c for c in table.columns if c.kind == "text" and not c.is_key
            and (c.distinct or 0) > 1]
    if not free:
        raise ToolArgumentError(f"{table.name} has no text to label; tables with text: "
                                f"{', '.join(usable)}")
    col = max(free, key=lambda c: c.distinct or 0)
    user = next((c.name for c in table.columns if c.is_key), None)
    # text rows that carry an id were written by someone: personal even without notes
    return ItemSpec(table.name, col.name, False, (col.name,), None, None,
                    col.personal or user is not None, user)


def _unique_key(table: TableInfo) -> str | None:
    keys = [c for c in table.columns if c.is_key and c.distinct is not None
            and c.distinct >= 0.9 * max(table.rows, 1)]
    return keys[0].name if keys else None


def _fetch_items(ctx: ToolContext, spec: ItemSpec) -> pd.DataFrame:
    """item, text, tags, category (and users for text items), ordered by item."""
    if spec.keyed:
        text = " || ' ' || ".join(f"coalesce(CAST({q(c)} AS VARCHAR), '')" for c in spec.text_cols)
        sql = (f"SELECT {q(spec.key)} AS item, {text or chr(39) * 2} AS text, "
               f"{q(spec.tag_col) if spec.tag_col else 'NULL'} AS tags, "
               f"{f'CAST({q(spec.category_col)} AS VARCHAR)' if spec.category_col else 'NULL'} "
               f"AS category FROM {q(spec.table)} ORDER BY 1")
    else:
        users = f"count(DISTINCT {q(spec.user_col)})" if spec.user_col else "count(*)"
        sql = (f"SELECT CAST({q(spec.key)} AS VARCHAR) AS item, CAST({q(spec.key)} AS VARCHAR) "
               f"AS text, NULL AS tags, NULL AS category, {users} AS users FROM {q(spec.table)} "
               f"WHERE {q(spec.key)} IS NOT NULL GROUP BY 1 ORDER BY 1")
    return ctx.workspace.frame(sql, timeout_s=FEATURE_TIMEOUT_S)


def _texts(df: pd.DataFrame) -> list[ItemText]:
    return [ItemText(str(t), tuple(g) if isinstance(g, list) else (), None if c is None else str(c))
            for t, g, c in zip(df["text"], df["tags"], df["category"], strict=True)]


def _taxonomy(ctx: ToolContext, spec: ItemSpec, given: list[str] | None,
              labeler: DeterministicLabeler | LLMLabeler, sample: list[ItemText]) -> Taxonomy:
    if given:
        return parse_taxonomy(given)
    source = spec
    if not spec.tag_col and not spec.category_col:  # e.g. searches: borrow the item table's
        schema = discover_schema(ctx.catalog())
        if schema.item_table:
            source = item_spec(ctx, schema.item_table)
    table = ctx.catalog().table(source.table)
    fallback = data_taxonomy(ctx.workspace, source.table, source.key, source.text_cols,
                             source.tag_col, source.category_col, table.rows if table else 0)
    proposed = labeler.propose_taxonomy(sample[:TAXONOMY_SAMPLE], fallback)
    return proposed if proposed is fallback else checked_proposal(proposed, fallback, sample)


def keyword_coverage(items: list[ItemText], taxonomy: Taxonomy) -> float:
    """Share of ``items`` whose words or hashtags match some label of ``taxonomy``."""
    if not items:
        return 0.0
    return sum(label != OTHER for label in score_items(items, taxonomy)) / len(items)


def checked_proposal(proposed: Taxonomy, fallback: Taxonomy, sample: list[ItemText]) -> Taxonomy:
    """The model's taxonomy, or the data-derived one when the model's misses the data.

    A small model sometimes drafts labels for one corner of the sample only (ten kinds of
    workout for a whole platform). Its labels' words must match at least
    :data:`MIN_PROPOSAL_COVERAGE` as many sampled items as the data-derived taxonomy's do.
    """
    mine, theirs = keyword_coverage(sample, proposed), keyword_coverage(sample, fallback)
    facts = {"model_draft_coverage": round(mine, 3), "data_taxonomy_coverage": round(theirs, 3)}
    if theirs > 0 and mine < MIN_PROPOSAL_COVERAGE * theirs:
        return Taxonomy(fallback.leaves, fallback.source + "; the model's draft was set aside",
                        {**fallback.notes, **facts,
                         "model_draft": proposed.labels[:12]})
    return Taxonomy(proposed.leaves, proposed.source, {**proposed.notes, **facts})


def label_items(ctx: ToolContext, items: str = "videos", taxonomy: list[str] | None = None,
                sample_share: float = 0.01, max_sample: int = 2000) -> ToolOutput:
    """Assign items (videos, or search queries) to interest labels of a taxonomy.

    Use when the person wants items categorised by interest or topic ("what are our videos
    about", "tag searches with these categories"). Give a taxonomy (labels, optionally
    "parent > child"), or leave it empty to have a two-level one proposed from the data. The
    labeler labels a small sample; a fast text classifier trained on those labels labels the
    rest, and its agreement with held-out labels is reported. Saves the session table
    item_labels(<item key>, label, source) for SQL joins; returns label counts.

    Args:
        items: the table of items to label, e.g. "videos" or "searches".
        taxonomy: labels to assign, e.g. ["Food > Street food", "Sports"]; empty to propose.
        sample_share: share of items the labeler labels (0.0001-1); the classifier does the rest.
        max_sample: most items the labeler labels (10-100000).
    """
    if not 0 < float(sample_share) <= 1:
        raise ToolArgumentError("sample_share must be above 0 and at most 1, e.g. 0.01")
    if not 10 <= int(max_sample) <= 100_000:
        raise ToolArgumentError("max_sample must be between 10 and 100000")
    spec = item_spec(ctx, items)
    labeler, usage = _labeler(ctx)
    given = [str(t) for t in taxonomy] if taxonomy else None
    args = {"spec": spec, "taxonomy": given, "share": float(sample_share),
            "max": int(max_sample), "model": usage.model, "floor": ctx.settings.privacy_floor,
            "prompts": [prompts.version(n) for n in ("label_items", "taxonomy")]}

    def compute() -> tuple[pd.DataFrame, dict[str, Any]]:
        return _label_items(ctx, spec, given, labeler, float(sample_share), int(max_sample))

    key = cache_key(ctx.workspace.fingerprint(), "label_items", args, ITEMS_VERSION)
    (table, facts), hit = derived_cache(ctx).get_or_compute(key, compute)
    table = table.rename(columns={"item": spec.key})
    replaced = ctx.save_table(ITEMS_TABLE, table)
    ref = ctx.results.put_table(table if not spec.personal else
                                table.groupby(["label", "source"], as_index=False).size(),
                                f"Item labels ({spec.table})")
    summary = {"table": ITEMS_TABLE, "item_table": spec.table, "item_key": spec.key, **facts,
               **usage.summary(), "cache_hit": hit, "replaced": replaced, "ref": ref}
    top = facts["label_counts"][0] if facts["label_counts"] else ["none", 0, 0]
    agreement = facts["classifier"].get("agreement_with_labeler")
    summary["reading"] = (
        f"Labeled {facts['items']:,} {spec.table} with {facts['taxonomy']['leaves']} labels; "
        f"the most common is '{top[0]}' ({top[2]:.0%}). The labeler saw "
        f"{facts['share_sent_to_labeler']:.2%} of them"
        + (f"; the classifier agrees with its held-out labels {agreement:.0%} of the time."
           if agreement is not None else "."))
    return ToolOutput(summary=summary, rows=len(table), refs=[ref])


class _Clock:
    """Seconds per phase of label_items."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def _label_items(ctx: ToolContext, spec: ItemSpec, given: list[str] | None,
                 labeler: DeterministicLabeler | LLMLabeler, share: float, max_sample: int
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    clock = _Clock()
    df = _fetch_items(ctx, spec)
    clock.lap("fetch")
    n = len(df)
    if n == 0:
        raise ToolArgumentError(f"{spec.table} has no items to label")
    rng = np.random.default_rng(SEED)
    pool = np.arange(n)
    if spec.personal and isinstance(labeler, LLMLabeler):  # only k-anonymous text to a model
        pool = np.flatnonzero(df["users"].to_numpy() >= k_anonymity(ctx.settings.privacy_floor))
    size = min(len(pool), max_sample, max(int(share * n), min(MIN_SAMPLE, n)))
    chosen = np.sort(rng.choice(pool, size=size, replace=False)) if size else pool[:0]
    texts = _texts(df)
    sample = [texts[i] for i in chosen]
    tax = _taxonomy(ctx, spec, given, labeler, sample)
    clock.lap("taxonomy")
    sample_labels = labeler.label_items(sample, tax) if size else []
    clock.lap("labeler")
    labels = np.empty(n, dtype=object)
    source = np.full(n, "classifier", dtype=object)
    labels[chosen] = sample_labels
    source[chosen] = "labeler"
    rest = np.setdiff1d(np.arange(n), chosen)
    predicted, fit = train_and_predict([texts[i] for i in chosen], list(sample_labels),
                                       [texts[i] for i in rest], seed=SEED,
                                       seeds=[d for leaf in tax.leaves
                                              for d in leaf_documents(leaf)])
    labels[rest] = predicted
    clock.lap("classifier")
    table = pd.DataFrame({"item": df["item"], "label": labels, "source": source})
    facts = {
        "items": n, "labeled_by_labeler": int(size),
        "share_sent_to_labeler": round(size / n, 5),
        "taxonomy": {"source": tax.source, "leaves": len(tax.leaves), "labels": tax.labels[:40],
                     **tax.notes},
        "classifier": fit, "label_counts": label_counts(list(labels)), "seconds": clock.laps,
    }
    return table, facts
