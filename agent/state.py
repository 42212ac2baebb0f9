"""The graph's state: the conversation plus this question's step and token counters."""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class AgentState(TypedDict, total=False):
    """State kept per session by the checkpointer.

    ``steps`` and the token counters are reset by every new question (the input sets them).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    steps: int
    input_tokens: int
    output_tokens: int
