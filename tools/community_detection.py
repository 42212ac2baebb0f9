"""Community detection on weighted graphs: Leiden with an automatic resolution, and Louvain.

Algorithm: Leiden (igraph's C implementation) with the modularity objective at resolution γ;
networkx's Louvain is kept as the reference (``algorithm="louvain"``). When γ is not given
it is chosen automatically by Newman's (2016) equivalence between modularity and the
degree-corrected planted-partition model: for a partition, the model's maximum-likelihood
fit (ω_in, ω_out) gives γ = (ω_in − ω_out) / (ln ω_in − ln ω_out); alternating "optimise
modularity at γ" and "re-fit γ" stops at a self-consistent resolution. Unlike γ = 1 this
has no fixed resolution limit: γ grows with the number of well-separated communities.
To cost about one Leiden pass on large graphs the alternation runs on an aggregate graph:
one Leiden pass at a fine resolution (γ = 32) finds small dense pieces, the alternation
merges pieces on the graph of pieces (cheap), and one warm-started pass at the chosen γ on
the full graph polishes node memberships (it may still split or move nodes).
``n_communities=K`` bisects γ until K communities come out (greedy modularity merges
when no γ gives exactly K). Every community is checked to be connected; disconnected
ones (possible with Louvain) are split into their components, except when K was asked
for (then they are only reported: splitting would break the count).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import igraph as ig
import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

SEED = 0
FINE_RESOLUTION = 32.0
MIN_RESOLUTION, MAX_RESOLUTION = 1e-4, 1e4
AUTO_ROUNDS = 20
BISECT_STEPS = 40
ALGORITHMS = ("leiden", "louvain")
# igraph draws from one process-wide RNG: seed it per call, one call at a time.
_IGRAPH_RNG_LOCK = threading.Lock()


@contextmanager
def _seeded_igraph(seed: int) -> Iterator[None]:
    with _IGRAPH_RNG_LOCK:
        ig.set_random_number_generator(random.Random(seed))
        try:
            yield
        finally:
            ig.set_random_number_generator(random)


@dataclass(frozen=True)
class EdgeList:
    """An undirected weighted graph on nodes 0..n-1 as arrays (self-loops allowed)."""

    n: int
    source: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    prebuilt: ig.Graph | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, n: int, source: np.ndarray, target: np.ndarray,
              weight: np.ndarray | None = None) -> EdgeList:
        """Canonical edges (source ≤ target) with parallel edges summed; weights must be > 0."""
        s, t = np.asarray(source, dtype=np.int64), np.asarray(target, dtype=np.int64)
        w = np.ones(len(s)) if weight is None else np.asarray(weight, dtype=np.float64)
        lo, hi = np.minimum(s, t), np.maximum(s, t)
        keep = w > 0
        key, inverse = np.unique(lo[keep] * n + hi[keep], return_inverse=True)
        summed = np.bincount(inverse, weights=w[keep], minlength=len(key))
        return cls(n, key // n, key % n, summed)

    @classmethod
    def from_graph(cls, graph: nx.Graph | ig.Graph, weight: str = "weight") -> EdgeList:
        """Edges of a networkx graph (nodes in ``graph.nodes()`` order) or an igraph graph."""
        if isinstance(graph, ig.Graph):
            pairs = np.array(graph.get_edgelist(), dtype=np.int64).reshape(-1, 2)
            w = (np.asarray(graph.es[weight], dtype=np.float64)
                 if weight in graph.es.attributes() else np.ones(len(pairs)))
            if graph.is_simple() and not graph.is_directed() and (w > 0).all():
                # already one edge per pair: keep igraph's own edge order and skip a rebuild
                return cls(graph.vcount(), pairs[:, 0], pairs[:, 1], w, prebuilt=graph)
            return cls.build(graph.vcount(), pairs[:, 0], pairs[:, 1], w)
        index = {node: i for i, node in enumerate(graph.nodes())}
        rows = [(index[a], index[b], float(d.get(weight, 1.0))) for a, b, d in graph.edges(data=True)]
        arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return cls.build(len(index), arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2])

    @property
    def total(self) -> float:
        """m: the total edge weight (a self-loop counts once)."""
        return float(self.weight.sum())

    def strength(self) -> np.ndarray:
        """Weighted degree of every node (a self-loop counts twice)."""
        return (np.bincount(self.source, self.weight, self.n)
                + np.bincount(self.target, self.weight, self.n))

    def aggregate(self, membership: np.ndarray) -> EdgeList:
        """The graph of communities: internal weight becomes a self-loop."""
        k = int(membership.max()) + 1 if self.n else 0
        return EdgeList.build(k, membership[self.source], membership[self.target], self.weight)

    def igraph(self) -> ig.Graph:
        """An igraph copy with edge attribute ``weight`` and vertex attribute ``strength``."""
        if self.prebuilt is not None:
            g = self.prebuilt.copy()
            for name in g.es.attributes():
                del g.es[name]
            for name in g.vs.attributes():
                del g.vs[name]
        else:
            g = ig.Graph(n=self.n, edges=list(zip(self.source.tolist(), self.target.tolist(),
                                                  strict=True)))
        g.es["weight"] = self.weight.tolist()
        g.vs["strength"] = self.strength().tolist()
        return g

    def networkx(self) -> nx.Graph:
        """A networkx copy on nodes 0..n-1 with edge attribute ``weight``."""
        g = nx.Graph()
        g.add_nodes_from(range(self.n))
        g.add_weighted_edges_from(zip(self.source.tolist(), self.target.tolist(),
                                      self.weight.tolist(), strict=True))
        return g


@dataclass(frozen=True)
class Partition:
    """Community labels 0..k-1 (largest first) and how they were found."""

    membership: np.ndarray
    resolution: float
    rule: str
    modularity: float
    disconnected: int = 0  # communities that were not connected subgraphs
    split: bool = False  # whether those were split into their components

    @property
    def count(self) -> int:
        """Number of communities."""
        return int(self.membership.max()) + 1 if len(self.membership) else 0


def modularity(edges: EdgeList, membership: np.ndarray, resolution: float = 1.0) -> float:
    """Newman's modularity of ``membership`` (at ``resolution``; 1 = the standard one)."""
    m = edges.total
    if m <= 0:
        return 0.0
    inside = edges.weight[membership[edges.source] == membership[edges.target]].sum()
    kappa = np.bincount(membership, weights=edges.strength())
    return float(inside / m - resolution * (kappa ** 2).sum() / (4 * m * m))


def newman_resolution(edges: EdgeList, membership: np.ndarray) -> float | None:
    """γ of the degree-corrected planted-partition model fitted to ``membership`` (Newman
    2016), or None when the partition has no assortative structure to fit."""
    m2 = 2 * edges.total
    inside = 2 * edges.weight[membership[edges.source] == membership[edges.target]].sum()
    expected = (np.bincount(membership, weights=edges.strength()) ** 2).sum() / m2
    if m2 <= 0 or inside <= 0 or expected >= m2 or inside >= m2:
        return None
    w_in, w_out = inside / expected, (m2 - inside) / (m2 - expected)
    if not w_in > w_out > 0:
        return None
    gamma = (w_in - w_out) / (math.log(w_in) - math.log(w_out))
    return float(min(max(gamma, MIN_RESOLUTION), MAX_RESOLUTION))


def by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..k-1, largest community first (ties: the one with the lowest node)."""
    _, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True,
                                          return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)]


def split_disconnected(edges: EdgeList, membership: np.ndarray) -> tuple[np.ndarray, int]:
    """Split every community that is not a connected subgraph into its components.

    Returns:
        (membership, number of communities that were not connected)
    """
    inside = membership[edges.source] == membership[edges.target]
    adj = sp.coo_matrix((np.ones(int(inside.sum())), (edges.source[inside], edges.target[inside])),
                        shape=(edges.n, edges.n))
    _, component = connected_components(adj, directed=False)
    pairs = np.unique(np.column_stack([membership, component]), axis=0)
    _, pieces = np.unique(pairs[:, 0], return_counts=True)
    disconnected = int((pieces > 1).sum())
    if disconnected == 0:
        return membership, 0
    return by_size(membership * (int(component.max()) + 1) + component), disconnected


Runner = Callable[[float, np.ndarray | None], np.ndarray]


def _leiden_runner(edges: EdgeList, seed: int, iterations: int = 2) -> Runner:
    g = edges.igraph()

    def run(resolution: float, initial: np.ndarray | None = None) -> np.ndarray:
        with _seeded_igraph(seed):
            found = g.community_leiden(
                objective_function="modularity", weights="weight", node_weights="strength",
                resolution=resolution, n_iterations=iterations,
                initial_membership=None if initial is None else initial.tolist())
        return np.asarray(found.membership, dtype=np.int64)

    return run


def _louvain_runner(edges: EdgeList, seed: int) -> Runner:
    g = edges.networkx()

    def run(resolution: float, initial: np.ndarray | None = None) -> np.ndarray:
        labels = np.zeros(edges.n, dtype=np.int64)
        found = nx.community.louvain_communities(g, weight="weight", resolution=resolution,
                                                 seed=seed)
        for i, members in enumerate(found):
            labels[list(members)] = i
        return labels

    return run


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings describe the same partition."""
    return len(np.unique(np.column_stack([a, b]), axis=0)) == len(np.unique(a)) == len(np.unique(b))


def _self_consistent(edges: EdgeList, run: Runner, start: np.ndarray, gamma: float,
                     cap: float = MAX_RESOLUTION) -> tuple[np.ndarray, float]:
    """Alternate modularity optimisation at γ (at most ``cap``) and re-fitting γ."""
    current = start
    for _ in range(AUTO_ROUNDS):
        found = run(min(gamma, cap), None)
        fitted = newman_resolution(edges, found) or gamma
        done = abs(fitted - gamma) <= 0.01 * gamma or _same(found, current)
        current, gamma = found, fitted
        if done:
            break
    return current, gamma


def _auto_leiden(edges: EdgeList, seed: int) -> tuple[np.ndarray, float]:
    """Self-consistent γ at about the cost of one Leiden pass (see the module notes)."""
    full = _leiden_runner(edges, seed, iterations=1)
    fine = full(FINE_RESOLUTION, None)
    pieces = edges.aggregate(fine)
    start = np.arange(pieces.n)
    gamma = newman_resolution(pieces, start) or 1.0
    merged, gamma = _self_consistent(pieces, _leiden_runner(pieces, seed, -1), start, gamma,
                                     cap=FINE_RESOLUTION)
    membership = full(gamma, merged[fine])
    refit = newman_resolution(edges, membership)
    if refit is not None and abs(refit - gamma) > 0.05 * gamma:  # the polish moved a lot
        gamma = refit
        membership = full(gamma, membership)
    return membership, gamma


def _bisect(run: Runner, k: int) -> tuple[np.ndarray, float, bool]:
    """γ for which ``run`` finds exactly ``k`` communities (geometric bisection).

    Returns:
        (membership, γ, exact): when no γ gives exactly k, the nearest partition with more
        than k communities and exact=False.
    """
    def count(labels: np.ndarray) -> int:
        return len(np.unique(labels))

    gamma = 1.0
    labels = run(gamma, None)
    low: tuple[float, np.ndarray] | None = None
    high: tuple[float, np.ndarray] | None = None
    for _ in range(BISECT_STEPS):
        c = count(labels)
        if c == k:
            return labels, gamma, True
        if c < k:
            low = (gamma, labels)
        else:
            high = (gamma, labels)
        if high is None:
            if gamma >= MAX_RESOLUTION:
                break
            gamma = min(gamma * 4, MAX_RESOLUTION)
        elif low is None:
            if gamma <= MIN_RESOLUTION:
                break
            gamma = max(gamma / 4, MIN_RESOLUTION)
        else:
            gamma = math.sqrt(low[0] * high[0])
            if high[0] / low[0] < 1.0001:
                break
        labels = run(gamma, None)
    if high is None:
        return labels, gamma, False
    return high[1], high[0], False


def _merge_to(edges: EdgeList, labels: np.ndarray, k: int) -> np.ndarray:
    """Greedily merge the pair of communities with the best modularity gain until k remain
    (pairs without an edge between them only when nothing else is left)."""
    labels = by_size(labels)
    groups = edges.aggregate(labels)
    c = groups.n
    w = np.zeros((c, c))
    np.add.at(w, (groups.source, groups.target), groups.weight)
    w = w + w.T - np.diag(np.diag(w))
    kappa = groups.strength()
    m = max(groups.total, 1e-12)
    alive = np.ones(c, dtype=bool)
    parent = np.arange(c)
    for _ in range(c - k):
        gain = w / m - np.outer(kappa, kappa) / (2 * m * m)
        linked = (w > 0) & np.outer(alive, alive)
        np.fill_diagonal(linked, False)
        if not linked.any():  # no edges left between communities: merge the two smallest
            live = np.flatnonzero(alive)
            a, b = live[np.argsort(kappa[live], kind="stable")[:2]]
        else:
            a, b = np.unravel_index(np.where(linked, gain, -np.inf).argmax(), gain.shape)
        a, b = min(a, b), max(a, b)
        w[a] += w[b]
        w[:, a] += w[:, b]
        w[b], w[:, b] = 0, 0
        kappa[a] += kappa[b]
        kappa[b] = 0
        alive[b] = False
        parent[parent == b] = a
    return by_size(parent[labels])


def detect(edges: EdgeList, resolution: float | None = None, n_communities: int | None = None,
           algorithm: str = "leiden", seed: int = SEED) -> Partition:
    """Communities of ``edges`` by Leiden or Louvain, then connectivity-checked.

    Args:
        edges: the graph.
        resolution: the modularity resolution γ; None chooses it (see the module notes).
        n_communities: ask for exactly this many communities (overrides ``resolution``).
        algorithm: "leiden" or "louvain".
        seed: the random seed (results are deterministic for a seed).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")
    if edges.n == 0:
        return Partition(np.zeros(0, dtype=np.int64), 1.0, "empty graph", 0.0)
    run = _leiden_runner(edges, seed) if algorithm == "leiden" else _louvain_runner(edges, seed)
    if n_communities is not None:
        k = int(n_communities)
        if not 1 <= k <= edges.n:
            raise ValueError(f"n_communities must be between 1 and {edges.n}")
        labels, gamma, exact = _bisect(run, k)
        rule = f"γ bisected to give {k} communities"
        if not exact:
            labels = _merge_to(edges, labels, k)
            rule += " (then greedy modularity merges)"
    elif resolution is not None:
        gamma, labels, rule = float(resolution), run(float(resolution), None), "given"
    elif algorithm == "leiden":
        labels, gamma = _auto_leiden(edges, seed)
        rule = "automatic: self-consistent degree-corrected planted-partition fit (Newman 2016)"
    else:
        first = run(1.0, None)
        labels, gamma = _self_consistent(edges, run, first, newman_resolution(edges, first) or 1.0)
        rule = "automatic: self-consistent degree-corrected planted-partition fit (Newman 2016)"
    labels = by_size(labels)
    parts, disconnected = split_disconnected(edges, labels)
    split = disconnected > 0 and n_communities is None
    if split:
        labels = parts
    return Partition(labels, float(gamma), rule, modularity(edges, labels), disconnected, split)


def find_communities(graph: nx.Graph | ig.Graph, resolution: float | None = None,
                     n_communities: int | None = None, algorithm: str = "leiden",
                     weight: str = "weight", seed: int = SEED) -> list[int]:
    """Community labels (0 = largest) of every node of a networkx or igraph graph.

    Nodes come in ``graph.nodes()`` order (networkx) or vertex-id order (igraph); edges
    weigh their ``weight`` attribute (1 when absent). See :func:`detect` for the arguments.
    """
    edges = EdgeList.from_graph(graph, weight)
    return detect(edges, resolution, n_communities, algorithm, seed).membership.tolist()
