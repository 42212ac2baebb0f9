"""A scripted tool-calling chat model for graph tests (turn by turn, as in langgraph's tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]


def call(name: str, call_id: str | None = None, **args: Any) -> dict[str, Any]:
    """A tool call for a scripted AIMessage."""
    return {"name": name, "args": args, "id": call_id or f"call_{name}", "type": "tool_call"}


def tool_turn(*calls: dict[str, Any], tokens: int = 10) -> AIMessage:
    """An AIMessage that calls tools."""
    return AIMessage("", tool_calls=list(calls), usage_metadata=_usage(tokens))


def answer(text: str, tokens: int = 10) -> AIMessage:
    """A final AIMessage."""
    return AIMessage(text, usage_metadata=_usage(tokens))


def _usage(tokens: int) -> dict[str, int]:
    return {"input_tokens": tokens, "output_tokens": tokens, "total_tokens": 2 * tokens}


class ScriptedChatModel(BaseChatModel):
    """Replies with the scripted steps in order; records every prompt it was sent."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    steps: list[Any]
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        self.bound_tools = [getattr(t, "name", str(t)) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        if not self.steps:
            raise AssertionError("the scripted model ran out of steps")
        step = self.steps.pop(0)
        message = step(list(messages)) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])
