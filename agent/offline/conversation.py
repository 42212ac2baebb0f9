"""The frame of a conversation's latest question, rebuilt from all its questions.

Nothing is kept in memory between calls: the conversation is restored from a checkpointer
after a restart, so the previous frame is recomputed by reading the earlier questions again,
in order, each one editing the frame before it when it is a follow-up. A reply to a
clarifying question ("the video's one", "the second") re-reads the question it answers
with that reading preferred.
"""

from __future__ import annotations

from agent.offline.assemble import assemble
from agent.offline.frame import Frame
from agent.offline.grounding import CatalogIndex
from agent.offline.reading import Reading, read
from tools.catalog import Catalog

ORDINALS = {"first": 0, "1": 0, "1st": 0, "former": 0, "second": 1, "2": 1, "2nd": 1,
            "latter": 1, "third": 2, "3": 2, "3rd": 2}


def _pick(r: Reading, choices: tuple[tuple[str, str | None], ...]) -> tuple[str, str | None] | None:
    """Which of the offered readings a reply names, if any."""
    for m in r.matches:
        for ref in m.refs:
            for choice in choices:
                if (ref.table, ref.column) == choice:
                    return choice
    for m in r.matches:
        tables = {ref.table for ref in m.refs}
        hits = [c for c in choices if c[0] in tables]
        if len(hits) == 1:
            return hits[0]
    if len(r.toks) <= 4:
        for t in r.toks:
            if t.low in ORDINALS and ORDINALS[t.low] < len(choices):
                return choices[ORDINALS[t.low]]
    return None


def frame_turns(questions: list[str], catalog: Catalog, index: CatalogIndex) -> Frame:
    """The frame of the last question, given every question of the conversation in order."""
    answerable: Frame | None = None
    last: Frame | None = None
    for question in questions:
        r = read(question, catalog, index)
        frame = None
        if last is not None and last.choices:
            pick = _pick(r, last.choices)
            if pick is not None:
                frame = assemble(read(last.question, catalog, index), answerable, prefer=pick)
        if frame is None:
            frame = assemble(r, answerable)
        if frame.answerable:
            answerable = frame
        last = frame
    return last if last is not None else Frame(intent="help")
