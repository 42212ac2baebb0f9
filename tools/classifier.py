"""The fast item classifier of label_items: TF-IDF over item text → logistic regression.

It learns from the labeler's labels on a small sample and labels every other item. Its
agreement with the labeler is measured on held-out labels by k-fold cross-validation
(every labeled item is held out once), then it is refit on the whole sample.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from tools.taxonomy import OTHER, ItemText, TaxonomyLeaf

FOLDS = 5
CHUNK = 100_000
MAX_FEATURES = 200_000


def document(item: ItemText) -> str:
    """One string per item: its text, its hashtags as ``#tag`` tokens, its category token."""
    parts = [item.text, " ".join(f"#{t.lower().lstrip('#')}" for t in item.tags)]
    if item.category:
        parts.append("category_" + re.sub(r"\W+", "_", item.category.lower()))
    return " ".join(parts)


def leaf_documents(leaf: TaxonomyLeaf) -> list[tuple[str, str]]:
    """A taxonomy leaf as short training documents: its label, then one per keyword.

    Short documents keep each keyword's TF-IDF weight high, so that an item sharing a
    single keyword with a leaf (a two-word search query) is drawn to it.
    """
    docs = [leaf.label.replace(">", " ")]
    docs += [f"{k} {k.lstrip('#')}" if k.startswith("#") else k for k in leaf.keywords]
    return [(d, leaf.label) for d in docs]


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1,
                           max_features=MAX_FEATURES, token_pattern=r"(?u)#?\b\w\w+\b",
                           lowercase=True, dtype=np.float32)


def _fit(docs: Sequence[str], labels: Sequence[str], seed: int
         ) -> tuple[TfidfVectorizer, LogisticRegression | None, str]:
    """A fitted vectorizer and model; no model when there is only one label."""
    vec = _vectorizer().fit(docs)
    classes = sorted(set(labels))
    if len(classes) < 2:
        return vec, None, classes[0] if classes else OTHER
    # newton-cg: ~50x faster than lbfgs here (many classes x sparse features), same accuracy
    model = LogisticRegression(C=10.0, solver="newton-cg", max_iter=200, random_state=seed)
    model.fit(vec.transform(docs), list(labels))
    return vec, model, classes[0]


def _predict(vec: TfidfVectorizer, model: LogisticRegression | None, constant: str,
             docs: Sequence[str]) -> list[str]:
    if model is None:
        return [constant] * len(docs)
    out: list[str] = []
    for start in range(0, len(docs), CHUNK):
        out.extend(model.predict(vec.transform(docs[start:start + CHUNK])).tolist())
    return out


def train_and_predict(sample: Sequence[ItemText], labels: Sequence[str],
                      rest: Sequence[ItemText], seed: int = 0,
                      seeds: Sequence[tuple[str, str]] = ()) -> tuple[list[str], dict[str, Any]]:
    """Labels for ``rest`` from a classifier trained on (``sample``, ``labels``), and its fit.

    ``seeds`` are (document, label) pairs always in the training data — one per taxonomy
    leaf, its keywords — so that a small sample still knows every label's vocabulary.

    Returns:
        (predicted labels of ``rest``, {"model", "agreement_with_labeler", "held_out", ...}).
    """
    docs = [document(i) for i in sample]
    seed_docs = [d for d, _ in seeds]
    seed_labels = [lbl for _, lbl in seeds]
    fit: dict[str, Any] = {"model": "TF-IDF (words, bigrams, hashtags) + logistic regression",
                           "trained_on": len(docs)}
    if len(docs) >= 2 * FOLDS and len(set(labels)) >= 2:
        agree = np.zeros(len(docs), dtype=bool)
        y = np.asarray(labels, dtype=object)
        for train, test in KFold(FOLDS, shuffle=True, random_state=seed).split(docs):
            vec, model, constant = _fit([docs[i] for i in train] + seed_docs,
                                        list(y[train]) + seed_labels, seed)
            agree[test] = np.asarray(_predict(vec, model, constant, [docs[i] for i in test]),
                                     dtype=object) == y[test]
        fit["agreement_with_labeler"] = round(float(agree.mean()), 4)
        fit["held_out"] = f"{FOLDS}-fold cross-validation: each of {len(docs)} labeled items once"
    else:
        fit["agreement_with_labeler"] = None
        fit["held_out"] = "too few labeled items or labels to hold any out"
    if not rest:
        return [], fit
    vec, model, constant = (_fit(docs + seed_docs, list(labels) + seed_labels, seed)
                            if docs or seed_docs else (None, None, OTHER))
    predicted = _predict(vec, model, constant, [document(i) for i in rest]) if vec is not None \
        else [OTHER] * len(rest)
    return predicted, fit
