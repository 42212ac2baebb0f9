"""Who names segments and labels items: a model (:class:`LLMLabeler`) or the data alone
(:class:`DeterministicLabeler`), behind two small interfaces.

Both build on the same evidence (:mod:`tools.evidence`). A model's answer is structured
(pydantic schemas below) and then checked against the evidence: a segment name whose words
are not supported by the evidence (for instance "Spam" asked for by an injected title) is
rejected and the deterministic name is used instead. Titles and searches reach a prompt only
inside a delimited data block, and only as aggregates that passed the privacy checks.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pydantic import BaseModel, Field

import prompts
from tools.evidence import STOPWORDS, EvidenceSet, SegmentEvidence, words_of
from tools.llm_cache import CachedModel
from tools.taxonomy import OTHER, ItemText, Taxonomy, TaxonomyLeaf, score_items

MAX_NAME_WORDS = 5
MAX_DESCRIPTION = 300
ITEM_BATCH = 25
PHRASE_SHARE = 0.3  # a two-word term replaces its word when at least this distinctive
# Words a name may use without evidence: they describe an audience, not a topic.
DESCRIPTORS: frozenset[str] = frozenset("""
fans fan lovers lover enthusiasts enthusiast viewers viewer audience community crowd followers
watchers junkies buffs addicts aficionados hobbyists learners beginners casual heavy young
mixed general global content videos video clips tips life culture scene world hub daily
everyday people users fandom devotees explorers seekers makers creators club squad crew
""".split())


class SegmentLabel(BaseModel):
    """A name for one audience segment, grounded in its evidence."""

    name: str = Field(description="at most 5 words, built from the evidence terms")
    description: str = Field(description="one sentence describing the segment")
    top_interests: list[str] = Field(default_factory=list, description="3-6 evidence terms")
    confidence: float = Field(default=0.5, description="0 to 1: how well the evidence fits")


class ItemAssignment(BaseModel):
    """The label of one numbered item."""

    index: int
    label: str


class ItemLabels(BaseModel):
    """Labels of a batch of numbered items."""

    labels: list[ItemAssignment]


class DraftCategory(BaseModel):
    """A level-1 category of a proposed taxonomy and its level-2 children."""

    name: str
    children: list[str]


class TaxonomyDraft(BaseModel):
    """A two-level interest taxonomy proposed from a sample of items."""

    categories: list[DraftCategory]


@dataclass(frozen=True)
class Label:
    """A segment's label as saved: name, description, interests, confidence, where from."""

    name: str
    description: str
    top_interests: tuple[str, ...]
    confidence: float
    source: str  # "deterministic" | "model" | "fallback"


class SegmentLabeler(ABC):
    """Names segments from their evidence."""

    @abstractmethod
    def label_segment(self, segment: SegmentEvidence, evidence: EvidenceSet) -> Label:
        """A label for ``segment`` (one model call at most)."""


class ItemLabeler(ABC):
    """Assigns items to the leaves of a taxonomy."""

    @abstractmethod
    def label_items(self, items: Sequence[ItemText], taxonomy: Taxonomy) -> list[str]:
        """One taxonomy label (or :data:`tools.taxonomy.OTHER`) per item."""

    def propose_taxonomy(self, sample: Sequence[ItemText], fallback: Taxonomy) -> Taxonomy:
        """A taxonomy for these items; the data-derived ``fallback`` by default."""
        return fallback


# ---------------------------------------------------------------- deterministic


def count_words(name: str) -> int:
    """Words of a name: whitespace-separated pieces with a letter or digit ("·" is none)."""
    return sum(1 for w in name.split() if any(ch.isalnum() for ch in w))


def _display(term: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in term.lstrip("#").split())


def name_candidates(segment: SegmentEvidence) -> list[str]:
    """Word terms best for a name, most distinctive first, no two sharing a word.

    A hashtag adds its score to the word it spells ("#kpop" to "kpop"); a term found in
    several sources (titles, searches, tags) ranks higher; a word gives way to a two-word
    term containing it that is nearly as distinctive ("kick" becomes "free kick").
    """
    scores: dict[str, float] = {}
    words: set[str] = set()
    for t in segment.support:
        key = t.term.lstrip("#")
        scores[key] = scores.get(key, 0.0) + t.score * (1.0 + 0.25 * (len(t.sources) - 1))
        if not t.is_tag:
            words.add(key)
    ranked = sorted(words, key=lambda k: (-scores[k], k))
    chosen: list[str] = []
    for key in ranked:
        if " " not in key:
            key = next((p for p in ranked if " " in p and key in p.split()
                        and scores[p] >= PHRASE_SHARE * scores[key]), key)
        if any(set(key.split()) & set(c.split()) for c in chosen):
            continue
        chosen.append(key)
    return chosen


def deterministic_name(segment: SegmentEvidence) -> str:
    """One or two distinctive terms (words or two-word phrases) and the dominant category
    ("Kpop Dance Cover · Music & Dance"), at most five words; a category of more than two
    words is left out."""
    category = segment.category
    cat_words = count_words(category) if category else 0
    budget = MAX_NAME_WORDS - cat_words if cat_words <= 2 else MAX_NAME_WORDS
    picked: list[str] = []
    used = 0
    for cand in name_candidates(segment):
        words = count_words(cand)
        if used + words <= budget:
            picked.append(cand)
            used += words
        if len(picked) == 2 or used >= budget:
            break
    tail = f" · {category}" if category and cat_words <= 2 else ""
    if not picked:
        return f"Segment {segment.segment_id}{tail}"
    return " ".join(_display(p) for p in picked) + tail


def _demo_order(column: str) -> int:
    """Which demographic a description mentions first: country, then age, then the rest."""
    name = column.lower()
    return 0 if "country" in name else 1 if "age" in name else 2


def deterministic_label(segment: SegmentEvidence) -> Label:
    """The offline label: name, one-sentence description, interests, confidence."""
    interests = tuple(t.term for t in segment.terms[:6])
    about = ", ".join(t.term for t in segment.terms[:3]) or "no single interest"
    where = f"mostly {segment.category} content" if segment.category else "a mix of content"
    demo = ""
    shown = [(c, v, sh) for c, (v, sh) in segment.demographics.items()
             if v.lower() not in ("true", "false", "(missing)")]
    if shown:
        col, value, share = min(shown, key=lambda d: (_demo_order(d[0]), d[0]))
        demo = f"; most common {col.replace('_', ' ')}: {value} ({share:.0%})"
    description = (f"{segment.size:,} users ({segment.share:.1%}) watching {where}, "
                   f"distinguished by {about}{demo}.")
    confidence = segment.categories[0][1] if segment.categories else 0.5
    return Label(deterministic_name(segment), description, interests,
                 round(min(0.95, max(0.3, confidence)), 2), "deterministic")


class DeterministicLabeler(SegmentLabeler, ItemLabeler):
    """Offline labels from the evidence alone: no model, the same answer every time."""

    def label_segment(self, segment: SegmentEvidence, evidence: EvidenceSet) -> Label:
        """Name from the most distinctive terms plus the dominant category."""
        return deterministic_label(segment)

    def label_items(self, items: Sequence[ItemText], taxonomy: Taxonomy) -> list[str]:
        """Keyword and hashtag match scoring against each leaf's words."""
        return score_items(items, taxonomy)


# ---------------------------------------------------------------- validation


def _norm(word: str) -> str:
    word = word.lower().replace("-", "")
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _supported(word: str, pool: set[str]) -> bool:
    w = _norm(word)
    if w in pool:
        return True
    return len(w) >= 4 and any(len(p) >= 4 and (w in p or p in w) for p in pool)


def _pool(terms: Sequence[str]) -> set[str]:
    return {_norm(w) for t in terms for w in words_of(t.replace("-", ""))}


def content_words(text: str) -> list[str]:
    """Words of a name that must be grounded: not stopwords, not audience descriptors."""
    return [w for w in words_of(text.replace("-", "")) if w not in STOPWORDS
            and _norm(w) not in {_norm(d) for d in DESCRIPTORS} and len(w) > 1]


def name_supported(name: str, segment: SegmentEvidence, vocabulary: frozenset[str]) -> bool:
    """Every content word is a word of the database's evidence, one of this segment's."""
    words = content_words(name)
    if not words:
        return False
    own = _pool([t.term for t in segment.support] + [c for c, _ in segment.categories])
    everything = own | {_norm(w) for w in vocabulary}
    return all(_supported(w, everything) for w in words) and any(_supported(w, own) for w in words)


def clean_name(name: str) -> str | None:
    """A model's name tidied (quotes, spaces), or None when it cannot be a name."""
    name = re.sub(r"\s+", " ", str(name)).strip().strip("\"'`.:;!").strip()
    if not name or len(name) > 60 or any(ch in name for ch in "<>{}[]|\\/\n"):
        return None
    return name if count_words(name) <= MAX_NAME_WORDS else None


def accept_label(answer: dict | None, segment: SegmentEvidence, evidence: EvidenceSet) -> Label:
    """The model's label when it passes the checks, else the deterministic one (fallback)."""
    fallback = deterministic_label(segment)
    if not answer:
        return replace(fallback, source="fallback")
    name = clean_name(answer.get("name", ""))
    if name is None or not name_supported(name, segment, evidence.vocabulary()):
        return replace(fallback, source="fallback")
    description = re.sub(r"\s+", " ", str(answer.get("description", ""))).strip()
    if not description or len(description) > MAX_DESCRIPTION or "<" in description:
        description = fallback.description
    own = _pool([t.term for t in segment.support])
    raw = answer.get("top_interests")
    interests = tuple(i.strip() for i in (raw if isinstance(raw, list) else [])[:8]
                      if isinstance(i, str) and 0 < len(i.strip()) <= 40
                      and content_words(i) and all(_supported(w, own) for w in content_words(i)))
    try:
        confidence = float(answer.get("confidence", 0.5))
    except (TypeError, ValueError):
        confidence = 0.5
    return Label(name, description, interests or fallback.top_interests,
                 round(min(1.0, max(0.0, confidence)), 2), "model")


# ---------------------------------------------------------------- model


def _safe(text: str, limit: int = 160) -> str:
    """Untrusted text for a data block: no angle brackets (no fake tags), one line, capped."""
    return re.sub(r"\s+", " ", text.replace("<", "(").replace(">", ")"))[:limit]


def segment_data(segment: SegmentEvidence, evidence: EvidenceSet) -> str:
    """The evidence of one segment as the JSON text of a prompt's data block."""
    data = {
        "segment_kind": evidence.kind, "members": segment.size,
        "share_of_all_members": f"{segment.share:.1%}",
        "distinctive_terms": [_safe(t.term, 60) for t in segment.terms],
        "top_categories": [f"{_safe(c, 60)} ({s:.0%})" for c, s in segment.categories],
        "most_watched_titles": [_safe(t) for t in segment.representatives],
        "demographics": {c: f"{_safe(v, 30)} ({s:.0%})" for c, (v, s) in
                         segment.demographics.items()},
    }
    return json.dumps(data, ensure_ascii=False, indent=1)


class LLMLabeler(SegmentLabeler, ItemLabeler):
    """Labels from a chat model (cached, metered), checked against the evidence."""

    def __init__(self, model: CachedModel) -> None:
        self.model = model

    def label_segment(self, segment: SegmentEvidence, evidence: EvidenceSet) -> Label:
        """One model call (or a cache hit) per segment; unsupported names fall back."""
        prompt = prompts.render("label_segment", data=segment_data(segment, evidence),
                                max_words=MAX_NAME_WORDS)
        answer = self.model.ask(prompts.version("label_segment"), prompt, SegmentLabel)
        return accept_label(answer, segment, evidence)

    def label_items(self, items: Sequence[ItemText], taxonomy: Taxonomy) -> list[str]:
        """Batches of numbered items; a missing or unknown label falls back to keywords."""
        fallback = score_items(items, taxonomy)
        labels = list(fallback)
        known = {leaf.label.lower(): leaf.label for leaf in taxonomy.leaves}
        known[OTHER.lower()] = OTHER
        names = "\n".join(f"- {_safe(leaf.label, 80)}" for leaf in taxonomy.leaves)
        for start in range(0, len(items), ITEM_BATCH):
            batch = items[start:start + ITEM_BATCH]
            lines = "\n".join(f"{i + 1}. {_safe(it.text, 240)}" for i, it in enumerate(batch))
            prompt = prompts.render("label_items", labels=names, items=lines, other=OTHER)
            answer = self.model.ask(prompts.version("label_items"), prompt, ItemLabels)
            for entry in (answer or {}).get("labels", []):
                i = int(entry.get("index", 0)) - 1
                label = known.get(str(entry.get("label", "")).strip().lower())
                if 0 <= i < len(batch) and label is not None:
                    labels[start + i] = label
        return labels

    def propose_taxonomy(self, sample: Sequence[ItemText], fallback: Taxonomy) -> Taxonomy:
        """A two-level taxonomy drafted by the model from sampled items (as in TnT-LLM)."""
        lines = "\n".join(f"- {_safe(it.text, 200)}" for it in sample)
        prompt = prompts.render("taxonomy", items=lines)
        answer = self.model.ask(prompts.version("taxonomy"), prompt, TaxonomyDraft)
        if not answer:
            return fallback
        leaves: list[TaxonomyLeaf] = []
        for cat in answer.get("categories", [])[:15]:
            parent = clean_name(cat.get("name", ""))
            for child in cat.get("children", [])[:10]:
                child_name = clean_name(child)
                if parent and child_name:
                    label = f"{parent} > {child_name}"
                    leaves.append(TaxonomyLeaf(label, tuple(content_words(label))))
        labels = {leaf.label.lower() for leaf in leaves}
        if len(leaves) < 2 or len(labels) != len(leaves):
            return fallback
        return Taxonomy(tuple(leaves), "proposed by the model")
