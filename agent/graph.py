"""The LangGraph agent: a model node and a tool node in a loop, with a step limit and a
token budget that end the turn with an honest sentence instead of looping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from pydantic import ValidationError

from agent.state import AgentState
from tools.errors import AtlasError

STEP_LIMIT_ANSWER = (
    "I could not finish this within {steps} steps, so I stopped rather than loop. "
    "Try a narrower question (one metric, one breakdown), or ask again to continue."
)
BUDGET_ANSWER = (
    "I stopped because this question used its token budget ({used:,} of {budget:,} tokens). "
    "Ask a narrower question, or raise ATLAS_TOKEN_BUDGET."
)


def _tool_error(call: dict[str, Any], message: str) -> ToolMessage:
    return ToolMessage(content=f"Error: {message}", tool_call_id=call["id"], name=call["name"],
                       status="error", artifact={"ok": False, "error": message})


def build_graph(
    model: BaseChatModel,
    tools: list[BaseTool],
    system_prompt: Callable[[], str],
    *,
    max_steps: int,
    token_budget: int,
    checkpointer: BaseCheckpointSaver | None = None,
) -> Any:
    """Compile the agent graph for one session.

    Args:
        model: the chat model (tools are bound here, from the same list the tool node runs).
        tools: the session's tools.
        system_prompt: builds the system prompt on every model call (session tables change).
        max_steps: model calls allowed per question.
        token_budget: input+output tokens allowed per question.
        checkpointer: memory per session (thread id = session id).
    """
    bound = model.bind_tools(tools) if tools else model
    by_name = {t.name: t for t in tools}

    def call_model(state: AgentState) -> dict[str, Any]:
        steps = state.get("steps", 0)
        used = state.get("input_tokens", 0) + state.get("output_tokens", 0)
        if used >= token_budget:
            return {"messages": [AIMessage(BUDGET_ANSWER.format(used=used, budget=token_budget))]}
        if steps >= max_steps:
            return {"messages": [AIMessage(STEP_LIMIT_ANSWER.format(steps=max_steps))]}
        messages = [SystemMessage(system_prompt()), *state["messages"]]
        reply = bound.invoke(messages)
        usage = getattr(reply, "usage_metadata", None) or {}
        update: dict[str, Any] = {
            "messages": [reply],
            "steps": steps + 1,
            "input_tokens": state.get("input_tokens", 0) + int(usage.get("input_tokens", 0)),
            "output_tokens": state.get("output_tokens", 0) + int(usage.get("output_tokens", 0)),
        }
        return update

    def call_tools(state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        results: list[ToolMessage] = []
        for call in getattr(last, "tool_calls", []):
            tool = by_name.get(call["name"])
            if tool is None:
                results.append(_tool_error(
                    call, f"there is no tool '{call['name']}'; tools are: {', '.join(by_name)}"))
                continue
            try:
                results.append(tool.invoke({**call, "type": "tool_call"}))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                    for e in exc.errors()
                )
                results.append(_tool_error(call, f"invalid arguments for {call['name']}: {problems}"))
            except AtlasError as exc:
                results.append(_tool_error(call, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a tool bug must not end the conversation
                results.append(_tool_error(
                    call, f"the tool {call['name']} failed unexpectedly ({type(exc).__name__}: "
                          f"{json.dumps(str(exc))[:300]}); try other arguments or another tool"))
        for bad in getattr(last, "invalid_tool_calls", None) or []:
            name = bad.get("name") or "unknown"
            results.append(_tool_error(
                {"id": bad.get("id") or f"invalid_{len(results)}", "name": name},
                f"the arguments for {name} were not valid JSON ({bad.get('error') or 'unparsable'});"
                " call it again with a JSON object"))
        return {"messages": results}

    def route(state: AgentState) -> str:
        last = state["messages"][-1]
        wants_tools = isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls)
        return "tools" if wants_tools else END

    graph = StateGraph(AgentState)
    graph.add_node("model", call_model)
    graph.add_node("tools", call_tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer)
