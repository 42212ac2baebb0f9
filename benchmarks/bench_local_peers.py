"""Atlas against two simpler peers on one local model (a script, not a test).

Three systems answer the same 12 single-turn questions of the other-domain suite
(``tests/evals/other_domain.yaml``: an online bookshop, a database unlike the app's sample) with
the SAME local open model, loaded once in this process by llama-cpp-python (default
Qwen2.5-Coder-1.5B-Instruct Q4_K_M, ``.atlas/models/``; ``make local-model`` fetches it):

- ``langchain_sql_agent`` — LangChain's SQL agent as in its "Build a SQL agent" tutorial
  (docs.langchain.com/oss/python/langchain/sql-agent): ``SQLDatabase`` +
  ``SQLDatabaseToolkit(db=db, llm=llm).get_tools()`` (sql_db_list_tables, sql_db_schema,
  sql_db_query, sql_db_query_checker), the tutorial's system prompt (dialect ``duckdb``,
  ``top_k=5``) and ``langchain.agents.create_agent``. The real toolkit runs on DuckDB through
  duckdb-engine, over a read-only connection to a copy of the database file. One caveat:
  duckdb-engine's reflection fails with SQLAlchemy >= 2.0.45 on DuckDB 2 (DuckDB has no
  ``pg_catalog.pg_collation``), hence ``sqlalchemy<2.0.45`` in the ``peers`` extra.
  SQLAlchemy's reflection also leaves out columns of types it does not know (``books.tags``,
  a ``VARCHAR[]``) from ``sql_db_schema``'s CREATE TABLE; none of the 12 questions needs it.
- ``one_shot_sql`` — a plain one-shot text-to-SQL prompt: the CREATE TABLE statements DuckDB
  keeps for the database, then the question; the model writes one DuckDB SELECT, which runs
  read-only (on another copy); the answer is the result's first 20 rows as text (and that
  table). A query that fails is a failed answer: no retry.
- ``atlas`` — Atlas itself (``agent.analyst.Analyst``, model ``local:<path>``), run and scored
  by the eval runner's own :func:`agent.evals.run_case`. Atlas also reads the suite's
  semantic notes beside the database (the suite builds it ``with_notes: true``); the peers see
  only the database.

The peers use Atlas's own LangChain adapter, :class:`agent.local_llm.LocalChatModel`, on the
llama.cpp model and lock that :func:`agent.local_llm.load_llama` returns (lru-cached: Atlas's
``make_local_model`` gets the same object; ``shared_model`` in the output checks it). The
adapter turns the model's Qwen-format output into real LangChain tool calls, so the SQL agent
gets the same tool-call parsing Atlas gets, including reading a reply that only writes a
```` ```sql ```` fence as a call of its query tool (``sql_tool="sql_db_query"``, whose
argument is ``query``). The query checker's calls go to the same model with no tools bound.

Every system may make at most ``--max-calls`` model calls per question (default 8): the SQL
agent through LangGraph's ``recursion_limit`` (a model step plus a tool step per call; a run
stopped there fails), Atlas through its ``max_steps`` setting (its own default is 12).

Questions: all ``lookups_rankings``, ``filters_time`` and ``breakdowns`` cases of the suite
(5 + 4 + 3, :data:`CASE_IDS`). Ground truth comes from the suite's reference SQL, resolved by
:func:`agent.evals.resolve_suite` on the same database; every answer is scored by
:func:`agent.evals.score` on an :class:`agent.evals.Evidence`: the SQL agent's final AI message
text; the one-shot result as text plus its table; Atlas's answer and tables as in an eval run.

Measured per system and case: passed, why, seconds (wall clock, model already loaded), model
calls (chat-model invocations, query checker included; a call the adapter continues under a
grammar counts once, as in Atlas's usage), input and output tokens (from each AIMessage's
``usage_metadata``). Totals: passed/N, median seconds, median model calls, tokens.

Run (2 CPU cores: about 1-3 minutes a question for the agents, ~30 s for one-shot)::

    .venv/bin/python benchmarks/bench_local_peers.py                     # all 12 x 3
    .venv/bin/python benchmarks/bench_local_peers.py --limit 1 --systems one_shot_sql
    .venv/bin/python benchmarks/bench_local_peers.py --resume            # continue a run

Options: ``--model PATH`` (a GGUF), ``--systems a,b`` (default all three), ``--cases id,id``,
``--limit N``, ``--threads N`` (default 2), ``--max-calls N``, ``--out PATH`` (default
``bench-out/local_peers.json``), ``--resume`` (keep the results already in ``--out`` for the same
model and cap; run only the rest). Needs the ``local`` and ``peers`` extras
(``pip install -e '.[local,peers]'``). Prints a table and writes the JSON after every case;
scratch files (database copies, Atlas's state) go to ``bench-out/local_peers/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import LLMResult

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench-out"
sys.path.insert(0, str(REPO))

from agent.config import DEFAULT_DB, Settings  # noqa: E402
from agent.evals import (  # noqa: E402
    Case,
    EvalError,
    Evidence,
    load_suite,
    resolve_suite,
    run_case,
    score,
    suite_settings,
)
from agent.local_llm import LocalChatModel, load_llama, resolve_model_path  # noqa: E402

SUITE = REPO / "tests" / "evals" / "other_domain.yaml"
DEFAULT_MODEL = REPO / ".atlas" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SYSTEMS = ("langchain_sql_agent", "one_shot_sql", "atlas")
CATEGORIES = ("lookups_rankings", "filters_time", "breakdowns")
CASE_IDS = (
    # lookups_rankings
    "od_customers_total", "od_revenue_total", "od_top_genre_copies", "od_top_markets_revenue",
    "od_best_seller",
    # filters_time
    "od_app_orders_december", "od_revenue_last_30_days", "od_gift_orders", "od_students_germany",
    # breakdowns
    "od_orders_by_channel", "od_revenue_by_segment", "od_avg_price_by_genre",
)
MAX_CALLS = 8
TOP_K = 5
ONE_SHOT_ROWS = 20
SQL_TIMEOUT_S = 30.0
ANSWER_CHARS = 1500
TRACE_CHARS = 400

# The tutorial's system prompt, verbatim; formatted with dialect=db.dialect and top_k=5.
SQL_AGENT_PROMPT = """
You are an agent designed to interact with a SQL database.
Given an input question, create a syntactically correct {dialect} query to run,
then look at the results of the query and return the answer. Unless the user
specifies a specific number of examples they wish to obtain, always limit your
query to at most {top_k} results.

You can order the results by a relevant column to return the most interesting
examples in the database. Never query for all the columns from a specific table,
only ask for the relevant columns given the question.

You MUST double check your query before executing it. If you get an error while
executing a query, rewrite the query and try again.

DO NOT make any DML statements (INSERT, UPDATE, DELETE, DROP etc.) to the
database.

To start you should ALWAYS look at the tables in the database to see what you
can query. Do NOT skip this step.

Then you should query the schema of the most relevant tables.
"""

ONE_SHOT_SYSTEM = ("You are an expert in DuckDB SQL. Given a database schema and a question, "
                   "write one DuckDB SELECT query that answers the question. Reply with the "
                   "query only, in a ```sql code block.")
ONE_SHOT_USER = "Database schema:\n{schema}\n\nQuestion: {question}"

SQL_FENCE = re.compile(r"```(?:sql|duckdb)?\s*\n?(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
SELECT_START = re.compile(r"\b(?:WITH|SELECT)\b", re.IGNORECASE)

warnings.filterwarnings("ignore", message=".*langchain-community.*")
warnings.filterwarnings("ignore", message=".*duckdb-engine doesn't yet support.*")
warnings.filterwarnings("ignore", message=".*Did not recognize type.*")


# -- model and usage ------------------------------------------------------------------------
class UsageCounter(BaseCallbackHandler):
    """Counts chat-model calls and sums their token usage (every nested run included)."""

    def __init__(self) -> None:
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self._lock = threading.Lock()

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """One finished model call: count it and add its usage."""
        with self._lock:
            for generations in response.generations:
                for generation in generations:
                    message = getattr(generation, "message", None)
                    usage = getattr(message, "usage_metadata", None) or {}
                    self.calls += 1
                    self.input_tokens += int(usage.get("input_tokens", 0) or 0)
                    self.output_tokens += int(usage.get("output_tokens", 0) or 0)


def text_of(message: Any) -> str:
    """The text of a message's content (a string or a list of blocks)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content or []
                   if isinstance(b, str) or b.get("type") == "text")


def _cut(value: Any, n: int = TRACE_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= n else text[:n] + " …"


# -- results --------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One system's answer to one question, scored."""

    id: str
    category: str
    question: str
    passed: bool
    why: str
    seconds: float
    model_calls: int | None
    input_tokens: int | None
    output_tokens: int | None
    answer: str = ""
    error: str | None = None
    sql: list[str] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)


def scored(case: Case, expect: Any, evidence: Evidence, started: float, counter: UsageCounter,
           **extra: Any) -> Outcome:
    """Score ``evidence`` against ``expect`` and record it with the time and usage."""
    seconds = round(time.perf_counter() - started, 2)
    passed, why = score(expect, evidence)
    return Outcome(case.id, case.category, case.turns[-1], passed, why, seconds, counter.calls,
                   counter.input_tokens, counter.output_tokens, evidence.text[:ANSWER_CHARS],
                   evidence.error, **extra)


# -- the peers ------------------------------------------------------------------------------
def build_sql_agent(db_path: Path, model: LocalChatModel, max_calls: int
                    ) -> Callable[[Case, Any], Outcome]:
    """The tutorial's agent on a read-only copy of the database; returns a runner."""
    from langchain.agents import create_agent
    from langchain_community.agent_toolkits import SQLDatabaseToolkit
    from langchain_community.utilities import SQLDatabase
    from langgraph.errors import GraphRecursionError

    db = SQLDatabase.from_uri(f"duckdb:///{db_path}", engine_args={"connect_args": {
        "read_only": True, "config": {"enable_external_access": False}}})
    tools = SQLDatabaseToolkit(db=db, llm=model).get_tools()
    system_prompt = SQL_AGENT_PROMPT.format(dialect=db.dialect, top_k=TOP_K)
    agent = create_agent(model, tools, system_prompt=system_prompt)

    def run(case: Case, expect: Any) -> Outcome:
        counter = UsageCounter()
        config = {"recursion_limit": 2 * max_calls, "callbacks": [counter]}
        messages: list[BaseMessage] = []
        error = None
        started = time.perf_counter()
        try:
            for state in agent.stream({"messages": [HumanMessage(case.turns[-1])]}, config,
                                      stream_mode="values"):
                messages = list(state.get("messages", []))
        except GraphRecursionError:
            error = f"stopped at the cap of {max_calls} model calls (recursion_limit)"
        except Exception as exc:  # noqa: BLE001 - a failed run is a failed answer
            error = f"{type(exc).__name__}: {exc}"
        final = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        evidence = Evidence(text_of(final) if final is not None else "", [], error)
        trace: list[dict[str, Any]] = []
        sql: list[str] = []
        for m in messages:
            if isinstance(m, AIMessage):
                for call in m.tool_calls:
                    trace.append({"call": call["name"], "args": _cut(call["args"])})
                    if call["name"] == "sql_db_query":
                        sql.append(str(call["args"].get("query", call["args"])))
                for bad in m.invalid_tool_calls:
                    trace.append({"invalid_call": _cut(bad.get("args") or ""),
                                  "error": _cut(bad.get("error") or "")})
            elif isinstance(m, ToolMessage):
                trace.append({"result": _cut(text_of(m)), "tool": m.name})
        return scored(case, expect, evidence, started, counter, sql=sql, trace=trace)

    return run


def extract_sql(text: str) -> str | None:
    """The query in a reply: the first fenced block, else the text from its first SELECT/WITH."""
    fenced = [b.strip() for b in SQL_FENCE.findall(text) if b.strip()]
    candidate = fenced[0] if fenced else text
    start = SELECT_START.search(candidate)
    if start is None:
        return None
    return candidate[start.start():].strip().rstrip(";").strip() or None


def build_one_shot(db_path: Path, model: LocalChatModel) -> Callable[[Case, Any], Outcome]:
    """The one-shot text-to-SQL system on a read-only copy of the database; returns a runner."""
    con = duckdb.connect(str(db_path), read_only=True, config={"enable_external_access": False})
    schema = "\n".join(r[0] for r in con.execute(
        "SELECT sql FROM duckdb_tables() ORDER BY table_name").fetchall())

    def query(sql: str) -> pd.DataFrame:
        timer = threading.Timer(SQL_TIMEOUT_S, con.interrupt)
        timer.start()
        try:
            return con.execute(sql).df()
        finally:
            timer.cancel()

    def run(case: Case, expect: Any) -> Outcome:
        counter = UsageCounter()
        started = time.perf_counter()
        sql: str | None = None
        try:
            reply = model.invoke([SystemMessage(ONE_SHOT_SYSTEM), HumanMessage(
                ONE_SHOT_USER.format(schema=schema, question=case.turns[-1]))],
                config={"callbacks": [counter]})
            sql = extract_sql(text_of(reply))
            if sql is None:
                raise EvalError(f"no SELECT in the reply: {_cut(text_of(reply), 200)}")
            head = query(sql).head(ONE_SHOT_ROWS)
            evidence = Evidence(Evidence("", [head]).table_text(ONE_SHOT_ROWS), [head])
        except Exception as exc:  # noqa: BLE001 - a failed query is a failed answer
            evidence = Evidence("", [], f"{type(exc).__name__}: {exc}")
        return scored(case, expect, evidence, started, counter, sql=[sql] if sql else [])

    return run


# -- Atlas ----------------------------------------------------------------------------------
def build_atlas(settings: Settings) -> tuple[Callable[[Case, Any], Outcome], Callable[[], None]]:
    """Atlas's Analyst on the suite's database; returns a runner and a closer."""
    from agent.analyst import Analyst

    analyst = Analyst(settings)
    token = uuid.uuid4().hex[:8]

    def run(case: Case, expect: Any) -> Outcome:
        started = time.perf_counter()
        result = run_case(analyst, case, expect, f"bench-peers-{case.id}-{token}")
        u = result.usage or {}
        sql = [s["sql"] for turn in result.trace for s in turn if s.get("sql")]
        trace = [{"call": s["tool"], "args": _cut(s.get("args")), "ok": s.get("ok"),
                  "rows": s.get("rows")} for turn in result.trace for s in turn]
        return Outcome(case.id, case.category, case.turns[-1], result.passed, result.reason,
                       round(time.perf_counter() - started, 2), u.get("model_calls"),
                       u.get("input_tokens"), u.get("output_tokens"),
                       (result.answer or "")[:ANSWER_CHARS], result.error, sql, trace)

    return run, analyst.close


# -- report ---------------------------------------------------------------------------------
def totals(rows: Sequence[dict[str, Any]], n_cases: int) -> dict[str, Any]:
    """Passed/N, median seconds and model calls, summed tokens of one system's results."""
    def med(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(values), 2) if values else None

    passed = sum(bool(r["passed"]) for r in rows)
    return {"passed": passed, "run": len(rows), "cases": n_cases,
            "score": f"{passed}/{len(rows)}",
            "median_seconds": med("seconds"), "median_model_calls": med("model_calls"),
            "input_tokens": sum(r.get("input_tokens") or 0 for r in rows),
            "output_tokens": sum(r.get("output_tokens") or 0 for r in rows)}


def render(report: dict[str, Any]) -> str:
    """The results as a plain-text table: a row per case, a column per system."""
    systems = report["systems"]
    head = f"{'case':<26}" + "".join(f"{s:>26}" for s in systems)
    lines = [head, "-" * len(head)]
    for cid in report["cases"]:
        cells = []
        for s in systems:
            r = report["results"].get(s, {}).get(cid)
            cells.append("" if r is None else
                         f"{'PASS' if r['passed'] else 'fail'} {r['seconds']:7.1f}s "
                         f"{r['model_calls'] if r['model_calls'] is not None else '-':>2} calls")
        lines.append(f"{cid:<26}" + "".join(f"{c:>26}" for c in cells))
    lines.append("-" * len(head))
    t = report["totals"]
    lines.append(f"{'passed':<26}" + "".join(f"{t[s]['score']:>26}" for s in systems))
    lines.append(f"{'median seconds':<26}" + "".join(
        f"{t[s]['median_seconds'] if t[s]['median_seconds'] is not None else '-':>26}"
        for s in systems))
    lines.append(f"{'median model calls':<26}" + "".join(
        f"{t[s]['median_model_calls'] if t[s]['median_model_calls'] is not None else '-':>26}"
        for s in systems))
    lines.append(f"{'tokens in / out':<26}" + "".join(
        f"{str(t[s]['input_tokens']) + ' / ' + str(t[s]['output_tokens']):>26}"
        for s in systems))
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> None:
    """Recompute the totals and write the report (atomically)."""
    report["totals"] = {s: totals(list(report["results"].get(s, {}).values()),
                                  len(report["cases"])) for s in report["systems"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(out)


def pick_cases(suite_cases: Sequence[Case], ids: Sequence[str] | None, limit: int | None
               ) -> list[Case]:
    """The chosen single-turn cases, in :data:`CASE_IDS` order (or the order given)."""
    by_id = {c.id: c for c in suite_cases}
    wanted = list(ids) if ids else list(CASE_IDS)
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise SystemExit(f"unknown case ids: {', '.join(unknown)}")
    multi = [i for i in wanted if len(by_id[i].turns) != 1]
    if multi:
        raise SystemExit(f"only single-turn cases can be compared: {', '.join(multi)}")
    if not ids:
        drift = sorted({c.id for c in suite_cases if c.category in CATEGORIES} ^ set(CASE_IDS))
        if drift:
            print(f"note: the suite's {', '.join(CATEGORIES)} cases and CASE_IDS differ: {drift}")
    cases = [by_id[i] for i in wanted]
    return cases[:limit] if limit is not None else cases


def _nothing() -> None:
    """Nothing to close."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a GGUF chat model")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma list of {', '.join(SYSTEMS)}")
    parser.add_argument("--cases", default=None, help="comma list of case ids")
    parser.add_argument("--limit", type=int, default=None, help="run the first N cases")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--max-calls", type=int, default=MAX_CALLS,
                        help="model calls allowed per question, every system")
    parser.add_argument("--out", type=Path, default=OUT / "local_peers.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results already in --out (same model and cap)")
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or any(s not in SYSTEMS for s in systems):
        raise SystemExit(f"--systems takes a comma list of {', '.join(SYSTEMS)}")
    ids = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None

    work = OUT / "local_peers"
    suite = load_suite(SUITE)
    cases = pick_cases(suite.cases, ids, args.limit)
    # the suite's own database (built by its header's builder) with its semantic notes
    settings = suite_settings(suite, Settings(db=DEFAULT_DB, home=work / "atlas-home"))
    model_path = resolve_model_path(str(args.model), Path(settings.home))
    settings = settings.with_overrides(model=f"local:{model_path}", llm_threads=args.threads,
                                       max_steps=args.max_calls)
    expectations = resolve_suite(suite, settings, cases)

    report: dict[str, Any] = {
        "benchmark": "local_peers", "suite": str(SUITE.relative_to(REPO)),
        "model": str(model_path), "threads": args.threads, "max_calls": args.max_calls,
        "systems": systems, "cases": [c.id for c in cases], "results": {},
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
    }
    if args.resume and args.out.exists():
        earlier = json.loads(args.out.read_text(encoding="utf-8"))
        if (earlier.get("model"), earlier.get("max_calls")) == (str(model_path), args.max_calls):
            report["results"] = {s: {cid: r for cid, r in rows.items() if cid in report["cases"]}
                                 for s, rows in earlier.get("results", {}).items()
                                 if s in systems}
            report["started"] = earlier.get("started", report["started"])
        else:
            print(f"note: {args.out} is of another model or cap; starting afresh")

    started = time.perf_counter()
    llama, lock = load_llama(str(model_path), args.threads)
    report["model_load_s"] = round(time.perf_counter() - started, 1)
    name = f"local:{model_path.name}"

    for system in systems:
        done = report["results"].setdefault(system, {})
        todo = [c for c in cases if c.id not in done]
        if not todo:
            continue
        close: Callable[[], None] = _nothing
        if system == "langchain_sql_agent":
            copy = work / "peers" / "sql_agent.duckdb"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(settings.db, copy)
            model = LocalChatModel(llama=llama, lock=lock, model_name=name, sql_tool="sql_db_query")
            run = build_sql_agent(copy, model, args.max_calls)
        elif system == "one_shot_sql":
            copy = work / "peers" / "one_shot.duckdb"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(settings.db, copy)
            run = build_one_shot(copy, LocalChatModel(llama=llama, lock=lock, model_name=name,
                                                      sql_tool=None))
        else:
            run, close = build_atlas(settings)
        try:
            for case in todo:
                outcome = run(case, expectations[case.id])
                done[case.id] = asdict(outcome)
                print(f"[{system}] {case.id}: {'PASS' if outcome.passed else 'fail'} "
                      f"({outcome.seconds:.1f}s, {outcome.model_calls} calls) {outcome.why}",
                      flush=True)
                write(report, args.out)
        finally:
            close()

    info = load_llama.cache_info()
    report["shared_model"] = {"llama_loads": info.misses, "reuses": info.hits,
                              "same_model_for_all": info.misses == 1}
    report["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    write(report, args.out)
    print()
    print(render(report))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
