"""Ground a question in the live catalog: which words name which tables, columns, values, metrics.

The index is built from whatever database Atlas is pointed at: table and column names split
into words, the notes' synonyms, metric names, distinct values of low-cardinality text
columns and top values of list columns, with country and language codes widened to their
names through pycountry. Words are matched as n-grams, exactly on light stems or fuzzily
(rapidfuzz) for typos; a span may keep several candidate readings, resolved by the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pycountry
from rapidfuzz import fuzz

from agent.offline import lexicon as lx
from tools.catalog import Catalog, ColumnInfo, TableInfo

MAX_NGRAM = 4


@dataclass(frozen=True)
class Ref:
    """A thing of the catalog a question word can name."""

    kind: str  # "table" | "column" | "value" | "metric"
    table: str
    column: str | None = None
    value: str | None = None
    metric: str | None = None
    list_value: bool = False


@dataclass(frozen=True)
class Token:
    """One word of the question."""

    i: int
    text: str
    low: str
    stem: str
    number: float | None = None
    hashtag: bool = False


@dataclass(frozen=True)
class Match:
    """A span of tokens [start, end) and the catalog things it may name (best first)."""

    start: int
    end: int
    refs: tuple[Ref, ...]
    score: float
    text: str
    fuzzy: bool = False
    weights: tuple[float, ...] = ()
    by_name: bool = False  # the best reading is a catalog name or value, not a synonym
    alternates: tuple[Ref, ...] = ()  # every reading of the span, best first


@dataclass
class CatalogIndex:
    """Phrases of the catalog (as tuples of stems) and what each names."""

    catalog: Catalog
    phrases: dict[tuple[str, ...], list[tuple[Ref, float]]] = field(default_factory=dict)
    named: set[tuple[tuple[str, ...], Ref]] = field(default_factory=set)

    def add(self, words: list[str] | tuple[str, ...], ref: Ref, weight: float,
            name: bool = False) -> None:
        """Index ``words`` (raw words, stemmed here) as a name of ``ref``."""
        key = tuple(lx.stem(w) for w in words if w)
        if not key or len(key) > MAX_NGRAM or (
                ref.kind != "value" and all(k in lx.STOPWORDS for k in key)):
            return
        if name:
            self.named.add((key, ref))
        bucket = self.phrases.setdefault(key, [])
        for n, (old, w) in enumerate(bucket):
            if old == ref:
                bucket[n] = (ref, max(w, weight))
                return
        bucket.append((ref, weight))


def _name_variants(name: str) -> list[tuple[list[str], float]]:
    """Word lists that name a catalog identifier, with a weight each."""
    words = lx.split_name(name)
    out: list[tuple[list[str], float]] = [(words, 1.0)]
    expanded = [lx.NAME_ABBREVIATIONS.get(w, w) for w in words]
    if expanded != words:
        out.append((" ".join(expanded).split(), 1.0))
    core = list(words)
    while len(core) > 1 and core[-1] in lx.UNIT_SUFFIXES:
        core = core[:-1]
    while len(core) > 1 and core[0] in ("is", "has", "n", "num"):
        core = core[1:]
    if core != words:
        out.append((core, 0.9))
    if len(words) > 1:
        out.append(([name.replace("_", "").lower()], 0.95))
    for w in core:
        if len(core) > 1 and lx.stem(w) not in lx.GENERIC_WORDS and len(w) > 2:
            out.append(([w], 0.6))
    return out


def _code_aliases(column: ColumnInfo, values: tuple[str, ...]) -> dict[str, list[str]]:
    """Country or language names for columns holding ISO codes (pycountry, not a hand list)."""
    name = column.name.lower() + " " + " ".join(column.synonyms).lower()
    codes = [v for v in values if 2 <= len(v) <= 3 and v.isalpha()]
    if not codes or len(codes) < 0.6 * len(values):
        return {}
    is_country = any(h in name for h in lx.COUNTRY_HINTS)
    is_language = any(h in name for h in lx.LANGUAGE_HINTS)
    if not (is_country or is_language):
        upper = sum(v.isupper() for v in codes) >= 0.6 * len(codes)
        is_country, is_language = upper, not upper
    out: dict[str, list[str]] = {}
    for v in codes:
        names: list[str] = []
        if is_country:
            c = pycountry.countries.get(alpha_2=v.upper()) if len(v) == 2 else \
                pycountry.countries.get(alpha_3=v.upper())
            if c is not None:
                names += [c.name, getattr(c, "common_name", ""), getattr(c, "official_name", ""),
                          c.alpha_3 if len(v) == 2 else c.alpha_2]
        if is_language:
            lang = pycountry.languages.get(alpha_2=v.lower()) if len(v) == 2 else \
                pycountry.languages.get(alpha_3=v.lower())
            if lang is not None:
                names.append(lang.name)
        names = [n for n in names if n]
        if is_country:
            names += [d for n in names if " " not in n for d in _demonyms(n)]
        if names:
            out[v] = names
    return out


def _demonyms(name: str) -> list[str]:
    """Likely adjectives of a one-word country name ("Brazil" → "Brazilian", "Mexico" →
    "Mexican", "Japan" → "Japanese"): spelling rules, not a list of countries."""
    stem = name[:-1] if name[-1:] in "aeoy" else name
    out = [name + "n", name + "ian", name + "ese", stem + "an", stem + "ian"]
    return out + ([stem] if name.endswith("y") else [])  # "Germany" → "German"


def _index_table(index: CatalogIndex, t: TableInfo) -> None:
    tref = Ref("table", t.name)
    for words, w in _name_variants(t.name):
        index.add(words, tref, w, name=True)
    for syn in t.synonyms:
        index.add(lx.split_name(syn), tref, 1.0)
    for c in t.columns:
        cref = Ref("column", t.name, c.name)
        for words, w in _name_variants(c.name):
            index.add(words, cref, w - 0.02, name=True)
        for syn in c.synonyms:
            index.add(lx.split_name(syn), cref, 0.98)
        values = c.values
        if not values or c.personal:
            continue
        aliases = _code_aliases(c, values) if c.kind == "text" else {}
        for v in values:
            vref = Ref("value", t.name, c.name, v, list_value=c.kind == "list")
            weight = 0.97 if c.kind == "list" else 1.0
            words = lx.split_name(v)
            index.add(words, vref, weight)
            if len(words) > 1:
                index.add(["".join(words)], vref, weight - 0.02)
            for alias in aliases.get(v, ()):
                index.add(lx.split_name(alias), vref, weight)


def build_index(catalog: Catalog) -> CatalogIndex:
    """Index every table, column, value and metric of ``catalog``."""
    index = CatalogIndex(catalog)
    for t in catalog.tables.values():
        _index_table(index, t)
    for m in catalog.metrics.values():
        mref = Ref("metric", m.table, metric=m.name)
        for words, w in _name_variants(m.name):
            index.add(words, mref, w + 0.05 if w >= 0.9 else w)
        for syn in m.synonyms:
            index.add(lx.split_name(syn), mref, 1.05)
    return index


def make_tokens(text: str) -> list[Token]:
    """Tokenize and stem the question."""
    out: list[Token] = []
    for i, raw in enumerate(lx.tokenize(text)):
        hashtag = raw.startswith("#")
        body = raw.lstrip("#")
        if body.lower().endswith("'s") and len(body) > 3:
            body = body[:-2]
        low = body.lower()
        number = None
        num_text = low.rstrip("%").replace(",", "")
        try:
            number = float(num_text) if num_text and num_text[0].isdigit() else None
        except ValueError:
            number = None
        if low in lx.NUMBER_WORDS:
            number = float(lx.NUMBER_WORDS[low])
        out.append(Token(i, body, low, lx.stem(low), number, hashtag))
    return out


def _short_value_ok(tok: Token, ref: Ref) -> bool:
    """Short codes ('US', 'IN', 'ios') match only when they cannot be an ordinary word."""
    value = ref.value or ""
    if len(tok.low) > 3:
        return True
    if tok.low in lx.STOPWORDS:
        return tok.text == value and not value.islower()
    return True


def _candidates(index: CatalogIndex, toks: list[Token]) -> list[tuple[Ref, float]]:
    key = tuple(t.stem for t in toks)
    found = index.phrases.get(key)
    if not found and 1 < len(toks) <= 3 and all(t.low.isalpha() for t in toks):
        # "indie game" for the value "indiegame"
        joined = index.phrases.get((lx.stem("".join(t.low for t in toks)),), [])
        found = [(r, w - 0.05) for r, w in joined if r.kind == "value"]
    if not found:
        return []
    if len(toks) == 1:
        found = [(r, w) for r, w in found if r.kind != "value" or _short_value_ok(toks[0], r)]
        if toks[0].hashtag:
            found = [(r, w + 0.1 if r.list_value else w) for r, w in found]
    return found


def _fuzzy(index: CatalogIndex, toks: list[Token]) -> tuple[list[tuple[Ref, float]], float]:
    text = " ".join(t.stem for t in toks)
    if len(text) < 5:
        return [], 0.0
    best: list[tuple[Ref, float]] = []
    best_score = 0.0
    for key, refs in index.phrases.items():
        if len(key) != len(toks):
            continue
        score = fuzz.ratio(text, " ".join(key))
        threshold = 88 if len(toks) > 1 else 80 if len(text) >= 6 else 88
        if score < threshold:
            continue
        if score > best_score:
            best, best_score = list(refs), score
        elif score == best_score:
            best += refs
    return best, best_score


def ground(tokens: list[Token], index: CatalogIndex, skip: set[int]) -> list[Match]:
    """Matches of the question's n-grams, best non-overlapping ones, in question order.

    Args:
        tokens: the question's tokens.
        index: the catalog index.
        skip: token positions already read as operators, numbers or dates.
    """
    spans: list[Match] = []
    n = len(tokens)
    for start in range(n):
        for end in range(start + 1, min(n, start + MAX_NGRAM) + 1):
            part = tokens[start:end]
            if any(t.i in skip for t in part) or any(t.number is not None for t in part):
                break
            if part[0].low in lx.STOPWORDS and len(part) == 1 and not (
                    part[0].text.isupper() and len(part[0].text) >= 2):
                continue
            if part[-1].low in lx.STOPWORDS and len(part) > 1:
                continue
            found = _candidates(index, part)
            fuzzy = False
            if not found and (len(part) > 1 or len(part[0].low) >= 5) \
                    and not any(t.low in lx.STOPWORDS or t.low in lx.DESCRIBE_WORDS
                                for t in part):
                found, score = _fuzzy(index, part)
                # A fuzzy span never outranks the exact words inside it.
                penalty = 0.5 / len(part) if len(part) > 1 else 0.0
                found = [(r, w * 0.8 * score / 100 - penalty) for r, w in found]
                fuzzy = True
            if not found:
                continue
            top = max(w for _, w in found)
            best: dict[Ref, float] = {}
            for r, w in sorted(found, key=lambda x: -x[1]):
                if w >= top - 0.06 and r not in best:
                    best[r] = w
            text = " ".join(t.text for t in part)
            first = next(iter(best))
            named = first.kind == "value" or (tuple(t.stem for t in part), first) in index.named
            every = tuple(dict.fromkeys(r for r, _ in sorted(found, key=lambda x: -x[1])))
            spans.append(Match(start, end, tuple(best), top * len(part), text, fuzzy,
                               tuple(best.values()), named, every))
    spans.sort(key=lambda m: (-m.score, m.start))
    chosen: list[Match] = []
    taken: set[int] = set()
    for m in spans:
        if any(i in taken for i in range(m.start, m.end)):
            continue
        chosen.append(m)
        taken.update(range(m.start, m.end))
    return sorted(chosen, key=lambda m: m.start)
