"""The offline chat model: a deterministic ``BaseChatModel`` that plans tool calls and answers.

Each call reads the whole conversation (restored from a checkpointer after a restart, so no
state is kept between calls): the questions so far give the frame (ground → frame), the
frame gives the next tool call (plan), and this turn's tool results give the answer (say).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from agent.offline import answer as say
from agent.offline.answer_tools import say_analysis
from agent.offline.conversation import frame_turns
from agent.offline.frame import Dim, Frame
from agent.offline.grounding import build_index
from agent.offline.handoff import PREVIOUS_REF, Step, stats_step, tool_steps
from agent.offline.lexicon import TOOL_DESCRIPTIONS
from agent.offline.planner import Plan, plan_frame
from agent.offline.sqlbuild import PlanError
from tools.catalog import Catalog

log = logging.getLogger(__name__)
MODEL_NAME = "offline"
SQL_TOOLS = ("list_tables", "describe_table", "run_sql")
LABELS_TABLE = "item_labels"  # the session table label_items saves
GOAL_KEY = "atlas_offline_goal"  # what this turn's tool calls are for (kept in the messages)


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content may be a string or a list of parts."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return " ".join(parts)


class OfflineChatModel(BaseChatModel):
    """Atlas's built-in model: a small semantic parser over the live catalog, no LLM.

    Attributes:
        context: the session's ToolContext (catalog, results).
        tool_names: names of the bound tools (analysis tools are used only when bound).
        tool_params: per bound tool, (parameter names, required parameter names).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    context: Any
    tool_names: tuple[str, ...] = ()
    tool_params: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = Field(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "atlas-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": MODEL_NAME}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> OfflineChatModel:
        """A copy that knows which tools (and which of their arguments) it may call."""
        names: list[str] = []
        params: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for tool in tools:
            try:
                spec = convert_to_openai_tool(tool)["function"]
            except Exception:  # noqa: BLE001 - an odd tool spec must not stop the model
                name = getattr(tool, "name", None) or getattr(tool, "__name__", str(tool))
                names.append(str(name))
                continue
            names.append(spec["name"])
            schema = spec.get("parameters") or {}
            params[spec["name"]] = (tuple(schema.get("properties", {})),
                                    tuple(schema.get("required", [])))
        return self.model_copy(update={"tool_names": tuple(names), "tool_params": params})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        try:
            reply = self.respond(messages)
        except Exception as error:  # noqa: BLE001 - the offline model never raises
            log.exception("offline model failed")
            reply = AIMessage(f"I hit an internal problem reading this question ({error}). "
                              f"Please rephrase it.\n\n{say.FOOTER}")
        text_in = sum(len(message_text(m)) for m in _read(messages))
        text_out = len(message_text(reply)) + len(json.dumps(reply.tool_calls, default=str))
        usage = {"input_tokens": max(1, text_in // 4), "output_tokens": max(1, text_out // 4)}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        reply.usage_metadata = usage  # type: ignore[assignment]
        reply.response_metadata = {"model_name": MODEL_NAME}
        return ChatResult(generations=[ChatGeneration(message=reply)])

    # -- the turn ----------------------------------------------------------------------------

    def bound(self) -> set[str]:
        """Tools that may be called (unbound: only the SQL tools are assumed)."""
        return set(self.tool_names) if self.tool_names else set(SQL_TOOLS)

    def respond(self, messages: list[BaseMessage]) -> AIMessage:
        """The next message of the conversation: tool calls, or the answer."""
        humans = [n for n, m in enumerate(messages) if isinstance(m, HumanMessage)]
        catalog: Catalog = self.context.catalog()
        if not humans:
            return AIMessage(say.say_help(catalog, ""))
        questions = [message_text(messages[n]) for n in humans]
        turn = messages[humans[-1] + 1:]
        frame = frame_turns(questions, catalog, build_index(catalog))
        goal = next((m.additional_kwargs.get(GOAL_KEY) for m in turn
                     if isinstance(m, AIMessage) and m.additional_kwargs.get(GOAL_KEY)), None)
        if goal and goal != frame.tool and goal not in SQL_TOOLS:
            # Keep the plan this turn started with: the tools it ran may have added session
            # tables that would make the same words read differently now.
            frame = replace(frame, intent="tool", tool=goal)
        if frame.intent == "help":
            return AIMessage(say.say_help(catalog, questions[-1]))
        if frame.intent == "clarify":
            examples = catalog if frame.unknown and not frame.choices else None
            return AIMessage(say.say_clarify(frame.clarify or "Which one did you mean?", examples))
        results = [m for m in turn if isinstance(m, ToolMessage)]
        calls = sum(len(m.tool_calls) for m in messages if isinstance(m, AIMessage))
        try:
            steps, plan = self._steps(frame, catalog, results)
        except PlanError as error:
            return AIMessage(say.say_error(str(error), catalog))
        if not steps:
            tool = frame.tool or ""
            return AIMessage(say.say_unavailable(
                tool, TOOL_DESCRIPTIONS.get(tool, tool.replace("_", " ")), catalog))
        done = [m for m in results if m.status != "error"]
        if results and results[-1].status == "error":
            return self._after_error(frame, catalog, steps, plan, results, calls)
        ran = {m.name for m in done}
        pending = [s for s in steps if s.tool not in ran]
        if pending:
            step = pending[0]
            args = {k: (_summary(done[-1]).get("ref") if v == PREVIOUS_REF and done else v)
                    for k, v in step.args.items()}
            goal = frame.tool if frame.intent == "tool" else None
            return self._call(step.tool, args, calls, goal=goal)
        return AIMessage(self._say(plan, frame, done))

    def _steps(self, frame: Frame, catalog: Catalog, results: list[ToolMessage]
               ) -> tuple[list[Step], Plan | None]:
        """The tool calls that answer the frame, and the SQL plan the answer reads."""
        bound = self.bound()
        failed_sql = any(m.status == "error" and m.name == "run_sql" for m in results)
        if frame.intent == "tool":
            return tool_steps(frame, catalog, bound, self.tool_params), None
        if frame.tool == "label_items" and "label_items" in bound:
            items = next((d.table for d in frame.dims if d.column is None), frame.fact)
            steps = [Step("label_items", {"items": items} if items else {})]
            labels = catalog.table(LABELS_TABLE)
            if labels is None or labels.column("label") is None:
                return steps, None
            labelled = replace(frame, dims=(*frame.dims, Dim(LABELS_TABLE, "label")))
            plan = plan_frame(labelled, catalog)
            return [*steps, Step(plan.tool, plan.args)], plan
        if frame.intent != "describe" and not any(m.name == "run_sql" for m in results) \
                and not any(m.status == "error" for m in results):
            step = stats_step(frame, catalog, bound)
            if step is not None:
                return [step], None
        plan = plan_frame(frame, catalog, safe=failed_sql)
        if plan.tool not in bound:
            raise PlanError(f"the `{plan.tool}` tool is not connected")
        steps = [Step(plan.tool, plan.args)]
        if frame.tool == "make_chart" and "make_chart" in bound:
            steps.append(Step("make_chart", {"ref": PREVIOUS_REF, "title": plan.args["title"]}))
        return steps, plan

    def _after_error(self, frame: Frame, catalog: Catalog, steps: list[Step],
                     plan: Plan | None, results: list[ToolMessage], calls: int) -> AIMessage:
        """Retry once with a fix (safer SQL, or plain SQL instead of an analysis tool)."""
        last = results[-1]
        failures = [m for m in results if m.status == "error"]
        if len(failures) == 1 and last.name == "run_sql" and plan is not None:
            safer = plan_frame(frame, catalog, safe=True)
            if safer.args != plan_frame(frame, catalog).args:
                return self._call(safer.tool, safer.args, calls)
        if last.name not in SQL_TOOLS and frame.answerable and \
                not any(m.name == "run_sql" for m in results):
            try:
                fallback = plan_frame(frame, catalog)
            except PlanError:
                fallback = None
            if fallback is not None and fallback.tool in self.bound():
                return self._call(fallback.tool, fallback.args, calls)
        return AIMessage(say.say_error(message_text(last), catalog))

    def _call(self, tool: str, args: dict[str, Any], calls: int,
              goal: str | None = None) -> AIMessage:
        call = {"name": tool, "args": args, "id": f"offline_{calls + 1}", "type": "tool_call"}
        extra = {GOAL_KEY: goal} if goal else {}
        return AIMessage("", tool_calls=[call], additional_kwargs=extra)

    def _say(self, plan: Plan | None, frame: Frame, done: list[ToolMessage]) -> str:
        analysis = [(m.name or "", _summary(m)) for m in done
                    if m.name not in SQL_TOOLS and m.name != "make_chart"]
        sql = [m for m in done if m.name in SQL_TOOLS]
        if analysis and not (sql and plan is not None):
            return say_analysis(analysis, frame, plan_or_none(frame, self.context.catalog()))
        if analysis:
            head = say_analysis(analysis, frame, None).split("\n\nFilters:")[0]
            return head + "\n\n" + self._say(plan, frame, sql)
        if plan is None or not sql:
            return say.say_error("no result came back", self.context.catalog())
        last = sql[-1]
        summary = _summary(last)
        if plan.tool == "list_tables":
            return say.say_tables(summary)
        if plan.tool == "describe_table":
            return say.say_table(summary)
        ref = summary.get("ref")
        df = None
        if ref:
            try:
                df = self.context.results.get(ref)
            except Exception:  # noqa: BLE001 - fall back to the preview rows
                df = None
        if df is None:
            df = pd.DataFrame(summary.get("rows", []), columns=summary.get("columns", []))
        text = say.say_result(plan, frame, df, ref)
        charts = [_summary(m).get("ref") for m in done if m.name == "make_chart"]
        if charts and charts[-1]:
            text = text.replace(say.FOOTER, f"Chart: {charts[-1]}.\n{say.FOOTER}")
        elif frame.tool == "make_chart":
            text = text.replace(say.FOOTER, "Note: charts are not connected in this session; "
                                f"here are the numbers.\n{say.FOOTER}")
        return text


def plan_or_none(frame: Frame, catalog: Catalog) -> Plan | None:
    """The SQL plan of a frame (for its filters and dates), or None."""
    if not frame.measures:
        return None
    try:
        return plan_frame(frame, catalog)
    except PlanError:
        return None


def _read(messages: list[BaseMessage]) -> list[BaseMessage]:
    """What the offline model reads (for its token estimate): every question of the
    conversation and this turn's tool results; not the system prompt, which it never uses."""
    humans = [n for n, m in enumerate(messages) if isinstance(m, HumanMessage)]
    last = humans[-1] if humans else len(messages)
    return [m for n, m in enumerate(messages)
            if isinstance(m, HumanMessage) or (n > last and isinstance(m, ToolMessage))]


def _summary(message: ToolMessage) -> dict[str, Any]:
    artifact = getattr(message, "artifact", None)
    if isinstance(artifact, dict) and isinstance(artifact.get("summary"), dict):
        return artifact["summary"]
    try:
        data = json.loads(message_text(message))
    except (TypeError, ValueError):
        return {"text": message_text(message)}
    return data if isinstance(data, dict) else {"rows": data}
