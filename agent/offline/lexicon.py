"""The offline model's operator vocabulary: general analytics English, nothing about one database.

Words that name things (tables, columns, values, metrics) come from the live catalog in
:mod:`agent.offline.grounding`; this module only knows how analysts phrase operations
(counting, ranking, splitting, comparing, time windows) and a light stemmer.
"""

from __future__ import annotations

import re

# Words that never ground to the catalog on their own (question scaffolding).
STOPWORDS = frozenset("""
a an the of in on at to for from with without by per each every all any some and or but
is are was were be been being am do does did done has have had having can could would should
will shall may might must what which who whom whose when where why how that this these those
there here it its it's they them their we us our i me my you your he she his her
as than then so such very just only also too not no nor more most less least much many few
into onto over under up down out about across along among between through during before after
since until till while within ever own same other others another one ones s t
please show tell give list get got let lets see find know want need look make
values number numbers thing things something anything data info information
stuff overall kind kinds type types sort whole current currently now again
what's whats that's it's how's there's who's where's let's i'm we're themselves itself
ourselves yourself yourselves himself herself
""".split())

# Words and short phrases the frame reads as operators (never grounded alone).
COUNT_PHRASES = ("how many", "number of", "count of", "count", "counts", "tally of")
DISTINCT_WORDS = frozenset({"distinct", "unique", "different"})
AGG_WORDS: dict[str, str] = {
    "average": "avg", "avg": "avg", "mean": "avg", "typical": "avg",
    "total": "sum", "sum": "sum", "overall": "sum", "combined": "sum",
    "median": "median",
    "minimum": "min", "min": "min", "maximum": "max", "max": "max",
}
TOP_WORDS = frozenset({"top", "most", "highest", "biggest", "largest", "best", "leading",
                       "greatest", "popular", "busiest", "more"})
BOTTOM_WORDS = frozenset({"bottom", "least", "lowest", "fewest", "smallest", "worst", "less",
                          "fewer"})
DIM_WORDS = frozenset({"per", "by", "each", "every", "across", "within"})
DIM_PHRASES = ("broken down by", "break down by", "breakdown by", "split by", "grouped by",
               "group by", "for each", "for every", "in each", "by each", "segmented by")
COMPARE_WORDS = frozenset({"vs", "versus", "compare", "compared", "comparing", "comparison",
                           "against", "difference", "differences", "gap", "gaps"})
COMPARATIVES = frozenset({"bigger", "larger", "higher", "smaller", "lower", "better", "worse",
                          "greater", "longer", "shorter", "faster", "slower", "cheaper",
                          "pricier", "more", "less", "fewer"})
RATE_WORDS = frozenset({"often", "likely", "frequently", "likelihood", "probability"})
ANAPHORA = frozenset({"those", "these", "them", "that", "it", "ones"})
TREND_PHRASES = ("over time", "trend", "trends", "evolution", "evolve", "evolved",
                 "changed", "change over", "time series", "timeline", "progression", "developed",
                 "develop", "grown", "grew", "growth", "week by week", "day by day",
                 "month by month", "week over week", "month over month", "moved", "growing",
                 "shrinking", "declining", "rising", "falling", "increasing", "decreasing",
                 "going up", "going down", "up or down", "trended", "trending")
GRAIN_WORDS: dict[str, str] = {
    "daily": "day", "day": "day", "days": "day", "weekly": "week", "week": "week",
    "weeks": "week", "monthly": "month", "month": "month", "months": "month",
    "hourly": "hour", "hour": "hour",
}
SHARE_WORDS = frozenset({"share", "percentage", "percent", "proportion", "fraction", "ratio",
                         "%", "pct"})
DESCRIBE_WORDS = frozenset({"tables", "table", "columns", "column", "fields", "field", "schema",
                            "dataset", "datasets", "describe", "attributes", "database",
                            "metrics", "data"})
LIST_WORDS = frozenset({"list", "show", "display", "which", "examples", "example"})
FOLLOWUP_STARTS = ("and", "what about", "how about", "same", "now", "only", "just", "instead",
                   "also", "then", "but", "ok", "okay", "split", "break", "restrict",
                   "filter", "limit", "exclude", "excluding", "except")
NEGATIONS = frozenset({"not", "no", "non", "never", "without", "didn't", "didnt", "wasn't",
                       "weren't", "isn't", "aren't", "don't", "doesn't", "un"})
HELP_WORDS = frozenset({"help", "hello", "hi", "hey", "thanks", "thank"})

# Comparison operators before a number ("longer than 60 s", "at least 3").
GREATER = ("more than", "greater than", "longer than", "larger than", "bigger than", "higher than",
           "older than", "over", "above", "exceeding", "beyond", "after")
GREATER_EQ = ("at least", "no less than", "or more", "minimum of", "since")
LESS = ("less than", "fewer than", "shorter than", "smaller than", "lower than", "younger than",
        "under", "below", "before")
LESS_EQ = ("at most", "no more than", "up to", "or less", "maximum of", "until")

# Units of quantities, in seconds or as plain factors.
DURATION_UNITS: dict[str, float] = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "day": 86400, "days": 86400,
}
SCALE_SUFFIXES: dict[str, float] = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}

# Abbreviations found in column names, read as words ("watch_s" → "watch seconds").
NAME_ABBREVIATIONS: dict[str, str] = {
    "s": "seconds", "sec": "seconds", "ms": "milliseconds", "min": "minutes", "mins": "minutes",
    "hrs": "hours", "qty": "quantity", "amt": "amount", "avg": "average", "num": "number",
    "cnt": "count", "pct": "percent", "dt": "date", "ts": "time", "desc": "description",
    "cat": "category", "usr": "user", "os": "os", "eur": "euros", "usd": "dollars",
    "gbp": "pounds", "qty_sold": "quantity sold", "yr": "year", "lang": "language",
}
UNIT_SUFFIXES = frozenset({"s", "sec", "ms", "min", "mins", "h", "hrs", "eur", "usd", "gbp",
                           "pct", "kb", "mb", "km", "kg", "id", "at", "on", "date", "ts", "is",
                           "has", "n", "num"})
SECONDS_SUFFIXES = frozenset({"s", "sec", "secs", "seconds"})
MONEY_SUFFIXES: dict[str, str] = {"eur": "€", "usd": "$", "gbp": "£"}

# Words of a catalog name too generic to stand for the whole name on their own.
GENERIC_WORDS = frozenset({"id", "at", "on", "is", "has", "date", "time", "tim", "dat", "rate",
                           "rat", "count", "number", "numb", "total", "event", "item", "record",
                           "row", "log", "entri", "entry", "info", "data", "valu", "value",
                           "second", "minut", "hour", "day", "dai", "week", "month", "year",
                           "name", "nam", "typ", "type", "flag", "s", "n", "amount", "code",
                           "cod", "statu", "status", "averag", "sum", "per", "of", "band"})

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")

# Words that ask for an analysis tool (used only when the tool is bound).
GROUPING_WORDS = frozenset({"segment", "segments", "segmentation", "segmented", "cluster",
                            "clusters", "clustering", "clustered", "group", "groups", "grouping",
                            "persona", "personas", "tribes", "archetypes"})
STRONG_GROUPING = frozenset({"cluster", "clusters", "clustering", "clustered", "segmentation",
                             "personas", "archetypes"})
COMMUNITY_WORDS = frozenset({"community", "communities"})
LABEL_WORDS = frozenset({"name", "names", "naming", "label", "labels", "labelling", "labeling",
                         "tag", "tags", "call", "title", "describe", "theme", "themes", "topic",
                         "topics"})
LABEL_VERBS = frozenset({"name", "label", "tag", "call", "naming", "labelling", "labeling"})
STRATEGY_WORDS = frozenset({"strategy", "strategic", "commission", "invest", "investment",
                            "recommend", "recommendations", "recommendation", "opportunity",
                            "opportunities", "underserved", "under-served", "supply", "demand",
                            "hungry", "roadmap", "prioritize", "prioritise"})
CORRELATE_WORDS = frozenset({"correlation", "correlate", "correlated", "correlates",
                             "relationship", "associated", "association"})
CHART_WORDS = frozenset({"chart", "plot", "graph", "visualize", "visualise", "visualization",
                         "histogram"})
STAT_WORDS = frozenset({"significant", "significance", "statistically", "real", "really",
                        "noise", "chance", "meaningful", "genuine", "reliable", "random",
                        "effect"})
YES_NO_STARTS = frozenset({"do", "does", "did", "is", "are", "was", "were", "has", "have",
                           "can", "will"})
TOOL_DESCRIPTIONS: dict[str, str] = {
    "cluster_users": "grouping users into behavioural clusters",
    "detect_communities": "finding communities of creators and viewers",
    "label_segments": "naming segments",
    "label_items": "labelling items",
    "draft_strategy": "drafting a strategy",
    "make_chart": "drawing charts",
    "correlate": "measuring correlations",
}

# Column names that make a good human label for an entity, best first.
LABEL_HINTS = ("name", "title", "handle", "label", "username", "display", "email", "slug")

# Column-name hints for value aliasing (country codes, language codes).
COUNTRY_HINTS = ("country", "region", "nation", "market", "geo")
LANGUAGE_HINTS = ("lang", "locale")

TOKEN_RE = re.compile(
    r"#?[a-z0-9][a-z0-9_\-']*(?:\.[0-9]+)?%?|%|\d{4}-\d{2}-\d{2}", re.IGNORECASE
)


def stem(word: str) -> str:
    """A light, consistent stem: plural, -ing, -ed, -ion and final -e/-y folded.

    Both question words and catalog words go through it, so only consistency matters
    ("countries" and "country" → "countri"; "watched" and "watching" → "watch").
    """
    w = word.lower().strip("'")
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses") or w.endswith(("ches", "shes", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    elif w.endswith("ion") and len(w) > 6:
        w = w[:-3]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if w.endswith("y") and len(w) > 3:
        w = w[:-1] + "i"
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    return w


def split_name(name: str) -> list[str]:
    """Split a catalog name into words: ``watch_events`` → watch, events; ``signupDate`` too."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [p.lower() for p in re.split(r"[^A-Za-z0-9]+", spaced) if p]


def tokenize(text: str) -> list[str]:
    """The question's tokens, original case kept (dates, numbers, #hashtags, % kept whole;
    hyphenated words split: "gift-wrapped" → gift, wrapped; "13-17" stays whole)."""
    out: list[str] = []
    for tok in TOKEN_RE.findall(text.replace("’", "'")):
        parts = tok.split("-")
        if len(parts) > 1 and all(p.isalpha() for p in parts) and not tok.startswith("#"):
            out += parts
        else:
            out.append(tok)
    return out

# Adjectives that point at a kind of quantity: "longest" → a duration, "cheapest" → money.
ADJECTIVE_KINDS: dict[str, tuple[str, str]] = {
    "longest": ("duration", "desc"), "shortest": ("duration", "asc"),
    "longer": ("duration", "desc"), "shorter": ("duration", "asc"),
    "expensive": ("money", "desc"), "priciest": ("money", "desc"), "pricier": ("money", "desc"),
    "cheapest": ("money", "asc"), "cheaper": ("money", "asc"),
    "newest": ("time", "desc"), "latest": ("time", "desc"), "recent": ("time", "desc"),
    "oldest": ("time", "asc"), "earliest": ("time", "asc"),
}

# Ordinary verbs and nouns of questions that carry no catalog meaning: unmatched, they are
# not a sign of a question Atlas cannot read.
FILLER_WORDS = frozenset("""
sign signed signing register registered happen happened happening occur occurred exist exists
live living based located come comes came coming made place placed bought buy
use used using uploaded upload created create go going went take took taken get gets getting
got receive received generate generated bring brought account accounts see seen look
currently total altogether overall roughly approximately exactly recently period periods time
times date dates range figure figures metric metrics stat stats statistic statistics numbers
quick quickly tell show me please could would you can i we our my summary breakdown split
end ends ended ending turn turned result results resulted become became actually really new
aged interesting insight insights overview happening active fastest slowest quickest
likely often frequently regular normal usual typically lasted last lasting carry carries
carrying contain contains containing include includes including feature features featured
tagged labelled labeled marked having hold holds year years old olds
break across split question answer hey hi hello thanks common frequent often popular
""".split())

# Verbs and nouns that ask for an amount of money (spending, paying, revenue).
MONEY_VERBS = frozenset({"spend", "spends", "spent", "spending", "pay", "pays", "paid", "paying",
                         "earn", "earns", "earned", "earning", "cost", "costs", "revenue",
                         "revenues", "turnover", "income", "gmv", "takings", "worth"})

NUMBER_WORDS: dict[str, int] = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "fifty": 50, "hundred": 100, "dozen": 12,
}
