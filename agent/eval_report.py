"""The evaluation report: per-case results, the figures drawn from them, and their outputs.

A :class:`Report` holds one :class:`CaseResult` per case and derives everything else from
them: accuracy overall and per category, tool-choice accuracy, latency, model calls, tokens
and cost. It writes ``report.json`` (read back by ``--resume`` and ``--baseline``) and
``report.md``, prints a table in the terminal, and compares itself with an earlier report.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ANSWER_CHARS = 1200  # answers are cut to this length in the report files
RESULT_ANSWER_CHARS = 300  # ... and to this in the per-case results
REPORT_VERSION = 1


@dataclass
class CaseResult:
    """The outcome of one case: pass or fail, why, what was said and what was run."""

    id: str
    category: str
    turns: list[str]
    passed: bool
    reason: str
    expected: Any = None
    answer: str = ""
    tool: list[str] | None = None  # the tool(s) the case expects in its last turn
    tools_called: list[str] = field(default_factory=list)  # in the last turn
    tool_ok: bool | None = None
    trace: list[list[dict[str, Any]]] = field(default_factory=list)  # per turn
    latency_ms: list[float] = field(default_factory=list)  # per turn
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reference_error: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _ratio(passed: int, cases: int) -> float | None:
    return round(passed / cases, 4) if cases else None


@dataclass
class Report:
    """A whole evaluation run (or the runs merged by ``--resume``)."""

    suite: str
    suite_path: str
    model: str
    db: str
    results: list[CaseResult]
    suite_cases: int  # cases in the suite, run or not
    started: str = ""
    finished: str = ""
    workers: int = 1
    baseline: dict[str, Any] | None = None

    # -- figures ------------------------------------------------------------------------------
    @property
    def cases(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.passed, self.cases)

    @property
    def complete(self) -> bool:
        return self.cases >= self.suite_cases

    def by_category(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.results:
            entry = out.setdefault(r.category, {"cases": 0, "passed": 0})
            entry["cases"] += 1
            entry["passed"] += int(r.passed)
        for entry in out.values():
            entry["accuracy"] = _ratio(entry["passed"], entry["cases"])
        return out

    def tool_figures(self) -> dict[str, Any]:
        scored = [r for r in self.results if r.tool_ok is not None]
        right = sum(bool(r.tool_ok) for r in scored)
        misses = [{"id": r.id, "expected": r.tool, "called": r.tools_called}
                  for r in scored if not r.tool_ok]
        return {"accuracy": _ratio(right, len(scored)), "cases": len(scored), "right": right,
                "misses": misses}

    def latency(self) -> dict[str, Any]:
        """Per question asked (each turn), in milliseconds."""
        turns = [ms for r in self.results for ms in r.latency_ms]
        per_case = [sum(r.latency_ms) for r in self.results if r.latency_ms]
        return {"median": _percentile(turns, 50), "p95": _percentile(turns, 95),
                "mean": round(statistics.fmean(turns), 1) if turns else None,
                "max": round(max(turns), 1) if turns else None, "questions": len(turns),
                "case_median": _percentile(per_case, 50)}

    def usage(self) -> dict[str, Any]:
        questions = sum(len(r.latency_ms) for r in self.results) or 0
        total = {"model_calls": 0, "input_tokens": 0, "output_tokens": 0}
        cost, cost_known = 0.0, True
        for r in self.results:
            for key in total:
                total[key] += int(r.usage.get(key, 0) or 0)
            if r.usage.get("cost_usd") is None:
                cost_known = cost_known and not r.usage
            else:
                cost += float(r.usage["cost_usd"])
        per = {k: round(v / questions, 2) if questions else None for k, v in total.items()}
        return {**total, "cost_usd": round(cost, 6) if cost_known else None,
                "cost_known": cost_known, "questions": questions, "per_question": per,
                "per_case": {k: round(v / self.cases, 2) if self.cases else None
                             for k, v in total.items()}}

    def failures(self) -> list[dict[str, Any]]:
        return [{"id": r.id, "category": r.category, "questions": r.turns,
                 "expected": r.expected, "answer": _cut(r.answer), "reason": r.reason,
                 "tools_called": r.tools_called, "trace": r.trace, "error": r.error}
                for r in self.results if not r.passed]

    # -- outputs ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        tools = self.tool_figures()
        return {
            "version": REPORT_VERSION, "suite": self.suite, "suite_path": self.suite_path,
            "model": self.model, "db": self.db, "started": self.started,
            "finished": self.finished, "workers": self.workers, "complete": self.complete,
            "suite_cases": self.suite_cases, "accuracy": self.accuracy, "cases": self.cases,
            "passed": self.passed, "by_category": self.by_category(),
            "tool_accuracy": tools["accuracy"], "tool_choice": tools,
            "latency_ms": self.latency(), "usage": self.usage(),
            "failures": self.failures(), "baseline": self.baseline,
            "results": [_result_dict(r) for r in self.results],
        }

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.md`` into ``out``; return their paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        json_path = write_json(out, self.to_dict())
        md_path = out / "report.md"
        md_path.write_text(self.markdown(), encoding="utf-8")
        return json_path, md_path

    def markdown(self) -> str:
        return render_markdown(self.to_dict())


def write_json(out: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``out/report.json`` atomically."""
    path = Path(out) / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n",
                   encoding="utf-8")
    tmp.replace(path)
    return path


def _result_dict(r: CaseResult) -> dict[str, Any]:
    """One case, lean: the expectation, the whole answer and the trace are in ``failures``."""
    data = asdict(r)
    del data["trace"], data["expected"]
    data["answer"] = _cut(r.answer, RESULT_ANSWER_CHARS)
    return data


def _cut(text: str, limit: int = ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def load_report(path: Path) -> dict[str, Any]:
    """An earlier ``report.json`` (``path`` may be the file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    return json.loads(path.read_text(encoding="utf-8"))


def previous_results(payload: dict[str, Any]) -> list[CaseResult]:
    """The cases of an earlier report, with the details its failures carry."""
    failures = {f["id"]: f for f in payload.get("failures", [])}
    out = []
    for entry in payload.get("results", []):
        result = CaseResult.from_dict(entry)
        failure = failures.get(result.id)
        if failure:
            result.trace, result.expected = failure.get("trace", []), failure.get("expected")
            result.answer = failure.get("answer", result.answer)
        out.append(result)
    return out


# -- baseline -------------------------------------------------------------------------------
def compare_reports(current: dict[str, Any], baseline: dict[str, Any],
                    baseline_path: str = "") -> dict[str, Any]:
    """What got better or worse since ``baseline``: flipped case ids and accuracy deltas."""
    before = {r["id"]: r for r in baseline.get("results", [])}
    after = {r["id"]: r for r in current.get("results", [])}
    both = [i for i in after if i in before]

    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 4)

    cats: dict[str, dict[str, Any]] = {}
    names = list(current.get("by_category", {})) + [
        c for c in baseline.get("by_category", {}) if c not in current.get("by_category", {})]
    for cat in names:
        now = current.get("by_category", {}).get(cat, {}).get("accuracy")
        then = baseline.get("by_category", {}).get(cat, {}).get("accuracy")
        cats[cat] = {"before": then, "after": now, "delta": delta(now, then)}
    return {
        "path": baseline_path, "model": baseline.get("model"),
        "accuracy": {"before": baseline.get("accuracy"), "after": current.get("accuracy"),
                     "delta": delta(current.get("accuracy"), baseline.get("accuracy"))},
        "tool_accuracy": {"before": baseline.get("tool_accuracy"),
                          "after": current.get("tool_accuracy"),
                          "delta": delta(current.get("tool_accuracy"),
                                         baseline.get("tool_accuracy"))},
        "by_category": cats,
        "fixed": [i for i in both if after[i]["passed"] and not before[i]["passed"]],
        "broken": [i for i in both if before[i]["passed"] and not after[i]["passed"]],
        "new": [i for i in after if i not in before],
        "missing": [i for i in before if i not in after],
    }


# -- markdown -------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.0f} pts"


def render_markdown(data: dict[str, Any]) -> str:
    """``report.md``: the figures, the baseline comparison and every failure with its trace."""
    lat, use, tools = data["latency_ms"], data["usage"], data["tool_choice"]
    cost = "n/a (unknown price)" if use["cost_usd"] is None else f"${use['cost_usd']:.4f}"
    lines = [
        f"# Evaluation: {data['suite']} — model `{data['model']}`", "",
        f"- database: `{data['db']}`", f"- run: {data['started']} → {data['finished']}"
        f" ({data['workers']} workers)",
        f"- **accuracy {_pct(data['accuracy'])}** ({data['passed']}/{data['cases']} cases"
        + ("" if data["complete"] else f", {data['suite_cases']} in the suite: partial run")
        + ")",
        f"- tool choice {_pct(tools['accuracy'])} ({tools['right']}/{tools['cases']} cases "
        "that name a tool)",
        f"- latency per question: median {lat['median']} ms, p95 {lat['p95']} ms "
        f"({lat['questions']} questions)",
        f"- per question: {use['per_question']['model_calls']} model calls, "
        f"{use['per_question']['input_tokens']} input / {use['per_question']['output_tokens']} "
        f"output tokens; total cost {cost}", "",
        "| category | cases | passed | accuracy |", "|---|---:|---:|---:|",
    ]
    for cat, entry in sorted(data["by_category"].items()):
        lines.append(f"| {cat} | {entry['cases']} | {entry['passed']} | {_pct(entry['accuracy'])} |")
    lines.append(f"| **all** | {data['cases']} | {data['passed']} | {_pct(data['accuracy'])} |")
    base = data.get("baseline")
    if base:
        lines += ["", f"## Against the baseline `{base['path']}` (model `{base['model']}`)", "",
                  f"accuracy {_pct(base['accuracy']['before'])} → "
                  f"{_pct(base['accuracy']['after'])} {_signed(base['accuracy']['delta'])}", "",
                  "| category | before | after | change |", "|---|---:|---:|---:|"]
        for cat, entry in base["by_category"].items():
            lines.append(f"| {cat} | {_pct(entry['before'])} | {_pct(entry['after'])} | "
                         f"{_signed(entry['delta'])} |")
        lines += ["", f"- now passing: {', '.join(base['fixed']) or 'none'}",
                  f"- now failing: {', '.join(base['broken']) or 'none'}"]
    if tools["misses"]:
        lines += ["", "## Tool choice misses", ""]
        lines += [f"- `{m['id']}`: expected {', '.join(m['expected'] or [])}; called "
                  f"{', '.join(m['called']) or 'no tool'}" for m in tools["misses"]]
    lines += ["", f"## Failures ({len(data['failures'])})"]
    for f in data["failures"]:
        lines += ["", f"### `{f['id']}` ({f['category']})", ""]
        lines += [f"> {q}" for q in f["questions"]]
        lines += ["", f"- why: {f['reason']}",
                  f"- expected: `{json.dumps(_brief(f['expected']), ensure_ascii=False, default=str)}`",
                  "- answer:", "", "```text", f["answer"] or "(empty)", "```"]
        steps = [step for turn in f["trace"] for step in turn]
        if steps:
            lines += ["", "trace (all turns):", ""]
            for step in steps:
                args = {k: v for k, v in (step.get("args") or {}).items() if k != "sql"}
                mark = "ok" if step.get("ok") else "FAILED"
                lines.append(f"- `{step.get('tool')}` {mark} "
                             f"{json.dumps(args, ensure_ascii=False, default=str)}")
                if step.get("sql"):
                    lines.append(f"  - sql: `{' '.join(str(step['sql']).split())}`")
                if step.get("error"):
                    lines.append(f"  - error: {step['error']}")
    return "\n".join(lines) + "\n"


def _brief(expected: Any) -> Any:
    """An expectation for reading: a list of alternatives shows its first one and a count."""
    if isinstance(expected, dict):
        return {k: _brief(v) for k, v in expected.items()}
    if isinstance(expected, list):
        if expected and all(isinstance(v, list) for v in expected) and any(
                len(v) > 2 for v in expected):
            return [f"{v[0]} (or {len(v) - 1} more)" if len(v) > 1 else v[0] for v in expected]
        return [_brief(v) for v in expected]
    return expected


# -- terminal -------------------------------------------------------------------------------
def print_report(console: Any, data: dict[str, Any]) -> None:
    """The per-category table and the headline figures, for the terminal (rich)."""
    from rich.table import Table

    table = Table(title=f"{data['suite']} — {data['model']}", title_justify="left")
    for name in ("category", "cases", "passed", "accuracy"):
        table.add_column(name, justify="left" if name == "category" else "right")
    base = (data.get("baseline") or {}).get("by_category", {})
    if base:
        table.add_column("vs baseline", justify="right")
    for cat, entry in sorted(data["by_category"].items()):
        row = [cat, str(entry["cases"]), str(entry["passed"]), _pct(entry["accuracy"])]
        if base:
            row.append(_signed(base.get(cat, {}).get("delta")))
        table.add_row(*row)
    total = ["all", str(data["cases"]), str(data["passed"]), _pct(data["accuracy"])]
    if base:
        total.append(_signed(data["baseline"]["accuracy"]["delta"]))
    table.add_row(*total, style="bold")
    console.print(table)
    lat, use = data["latency_ms"], data["usage"]
    cost = "n/a" if use["cost_usd"] is None else f"${use['cost_usd']:.4f}"
    console.print(f"tool choice {_pct(data['tool_accuracy'])} · latency median "
                  f"{lat['median']} ms, p95 {lat['p95']} ms · per question "
                  f"{use['per_question']['model_calls']} model calls, "
                  f"{use['per_question']['input_tokens']} in / "
                  f"{use['per_question']['output_tokens']} out tokens · cost {cost}")
    if data.get("baseline"):
        b = data["baseline"]
        console.print(f"now passing: {', '.join(b['fixed']) or 'none'} · now failing: "
                      f"{', '.join(b['broken']) or 'none'}")
    for f in data["failures"]:
        console.print(f"[red]✗[/red] {f['id']} ({f['category']}): {f['reason']}")
