"""The one event stream every front-end renders (ARCHITECTURE.md decision 13)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolStarted:
    """The agent called a tool."""

    call_id: str
    tool: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolFinished:
    """A tool returned (ok) or failed (not ok; ``summary`` holds the error sentence)."""

    call_id: str
    tool: str
    ok: bool
    summary: Any
    sql: str | None = None
    rows: int | None = None
    ms: float = 0.0
    refs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AnswerDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class Table:
    """A result table to show, kept in the session's result store by ``ref``."""

    ref: str
    title: str


@dataclass(frozen=True)
class Chart:
    """A figure to show, kept in the session's result store by ``ref``."""

    ref: str
    title: str


@dataclass(frozen=True)
class Error:
    """Something went wrong; ``message`` is a sentence a person can act on."""

    message: str


@dataclass(frozen=True)
class Usage:
    """What one answer cost."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0


@dataclass(frozen=True)
class Done:
    """The answer is complete."""

    answer: str
    usage: Usage = field(default_factory=Usage)


Event = ToolStarted | ToolFinished | AnswerDelta | Table | Chart | Error | Done


def event_dict(event: Event) -> dict[str, Any]:
    """An event as a plain dict with its type name under ``"event"``."""
    return {"event": type(event).__name__, **asdict(event)}
