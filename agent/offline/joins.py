"""Join paths between tables, found from the catalog's keys alone.

A table's key is ``<singular table name>_id`` or ``id``, or a first ``*_id`` column whose
values are (nearly) all distinct. A column of another table with the same name, or one whose
notes name ``table.key`` in its description, is a many-to-one edge to it. Paths follow
those edges only (so a join never multiplies the rows of the table being measured), at most
two hops, found breadth-first.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from agent.offline.lexicon import stem
from tools.catalog import Catalog, TableInfo

MAX_HOPS = 2
UNIQUE_RATIO = 0.97
NAMED_KEY_RATIO = 0.9  # approximate distinct counts: a named key may look a little short
NOTE_REF = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\b")


@dataclass(frozen=True)
class Edge:
    """``src.src_col`` refers to ``dst.dst_col`` (many rows of src to one of dst)."""

    src: str
    src_col: str
    dst: str
    dst_col: str


def primary_key(t: TableInfo) -> str | None:
    """The column that identifies one row of ``t``, if one can be told from names or values."""
    names = {c.name.lower(): c.name for c in t.columns}
    words = t.name.lower().split("_")
    for candidate in (f"{stem(t.name.lower())}_id", f"{t.name.lower().rstrip('s')}_id",
                      f"{stem(words[-1])}_id", "id"):
        col = t.column(names[candidate]) if candidate in names else None
        # A name is not enough when the values say otherwise ("cluster_id" of user_clusters).
        if col is not None and (not col.distinct or not t.rows
                                or col.distinct >= NAMED_KEY_RATIO * t.rows):
            return col.name
    first = t.columns[0] if t.columns else None
    if first is not None and first.is_key and first.distinct and t.rows \
            and first.distinct >= UNIQUE_RATIO * t.rows:
        return first.name
    return None


def edges(catalog: Catalog) -> list[Edge]:
    """Every many-to-one edge of the catalog."""
    keys = {name: primary_key(t) for name, t in catalog.tables.items()}
    out: list[Edge] = []
    for name, t in catalog.tables.items():
        own = keys.get(name)
        for c in t.columns:
            if not c.is_key:
                continue
            # A key's own notes name the columns that refer to it, not what it refers to.
            noted = set() if own is not None and own.lower() == c.name.lower() else {
                (m.group(1).lower(), m.group(2).lower())
                for m in NOTE_REF.finditer(c.description or "")}
            for other, key in keys.items():
                if other == name or key is None:
                    continue
                if key.lower() == c.name.lower() or (other, key.lower()) in noted:
                    out.append(Edge(name, c.name, other, key))
    return out


def paths_from(catalog: Catalog, root: str) -> dict[str, tuple[Edge, ...]]:
    """Shortest many-to-one paths from ``root`` to every table reachable in two hops."""
    graph: dict[str, list[Edge]] = {}
    for e in edges(catalog):
        graph.setdefault(e.src, []).append(e)
    found: dict[str, tuple[Edge, ...]] = {root: ()}
    queue = deque([root])
    while queue:
        here = queue.popleft()
        if len(found[here]) >= MAX_HOPS:
            continue
        for e in sorted(graph.get(here, []), key=lambda e: (e.dst, e.src_col)):
            if e.dst not in found:
                found[e.dst] = (*found[here], e)
                queue.append(e.dst)
    return found


def distance(catalog: Catalog, root: str, table: str) -> int:
    """Hops from ``root`` to ``table`` (99 when unreachable; 50 when only a semi-join links them)."""
    paths = paths_from(catalog, root)
    if table in paths:
        return len(paths[table])
    if bridge(catalog, root, {table}) is not None:
        return 50
    return 99


def bridge(catalog: Catalog, root: str, needed: set[str]) -> tuple[str, str, str] | None:
    """A table that links ``root`` to ``needed`` tables it cannot reach by joins.

    Returns (bridge table, column in the bridge, table.column on root's side) for a semi-join
    ``root_side.col IN (SELECT bridge.col FROM bridge ... )``, or None.
    """
    reach = paths_from(catalog, root)
    best: tuple[int, str, str, str] | None = None
    for name in sorted(catalog.tables):
        if name in reach and name != root and name not in needed:
            continue
        sub = paths_from(catalog, name)
        if not needed <= set(sub):
            continue
        for near in sorted(reach):
            key = primary_key(catalog.tables[near])
            if key is None or catalog.tables[name].column(key) is None:
                continue
            cost = len(reach[near]) + sum(len(sub[t]) for t in needed)
            if best is None or cost < best[0]:
                best = (cost, name, key, near)
    return None if best is None else (best[1], best[2], best[3])
