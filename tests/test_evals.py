"""The evaluation runner: scorers, report/baseline/resume mechanics, the suites themselves
(offline, with the floors), and the same suite over an OpenAI-compatible stand-in server."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from agent.config import Settings
from agent.eval_report import compare_reports, load_report, render_markdown
from agent.evals import (
    EvalError,
    Evidence,
    ResolveContext,
    direction_of,
    extract_numbers,
    is_clarification,
    load_suite,
    resolve_expectation,
    resolve_suite,
    run_suite,
    score,
    significance_verdict,
    suite_settings,
)
from tests.model import ScriptedChatModel, answer, call, tool_turn
from tests.openai_stub import OpenAIStub, Reply, reply, tool_call

EVALS = Path(__file__).resolve().parent / "evals"
SAMPLE_SUITE = EVALS / "sample.yaml"
OTHER_SUITE = EVALS / "other_domain.yaml"
SAMPLE_CATEGORIES = {"lookups_rankings", "filters_time", "breakdowns", "comparisons", "trends",
                     "clustering", "communities", "labeling", "strategy", "follow_ups",
                     "ambiguous"}
FLOOR_OVERALL, FLOOR_CATEGORY = 0.8, 0.6


def passes(expect: dict[str, Any], text: str, *tables: pd.DataFrame) -> bool:
    return score(expect, Evidence(text, list(tables)))[0]


# -- numbers --------------------------------------------------------------------------------
def test_numbers_are_read_with_commas_percent_and_suffixes() -> None:
    found = extract_numbers("1,234 views, 12.3% liked, 1.2k shares, 3.4M plays, -5 follows")
    assert [(w.value, w.percent) for w in found] == [
        (1234.0, False), (12.3, True), (1200.0, False), (3_400_000.0, False), (-5.0, False)]
    # dates, clock times and age bands are not read as negative numbers
    assert [w.value for w in extract_numbers("on 2026-09-30 at 23:59, ages 13-17")] == [13, 17]


@pytest.mark.parametrize(("expect", "text", "ok"), [
    ({"number": 1234}, "There were 1,234 views.", True),
    ({"number": 1234}, "There were 1,334 views.", False),
    ({"number": 1234}, "About 1.2k views.", True),  # its displayed precision
    ({"number": 1234}, "About 1k views.", False),  # the slack is capped at 5%
    ({"number": 3_412_000}, "3.4M plays", True),
    ({"number": 0.327, "percent": True}, "Completion rate: 32.7%.", True),
    ({"number": 32.7, "percent": True}, "a completion rate of 0.327", True),
    ({"number": 0.327, "percent": True}, "completion rate 32.7 percent", True),
    ({"number": 0.327, "percent": True}, "completion rate 35%", False),
    ({"number": 0.327}, "32.7% finished", True),  # a written % is also its fraction
    ({"number": 29_017_540, "unit": "seconds"}, "8,060 hours watched", True),
    ({"number": 29_017_540, "unit": "seconds"}, "8,060 views", False),
    ({"number": 100, "tol": 0.1}, "roughly 109", True),
    ({"number": 100}, "on 2026-01-00 there were 98 and 102", False),
])
def test_number_expectations(expect: dict[str, Any], text: str, ok: bool) -> None:
    assert passes(expect, text) is ok


def test_numbers_near_a_term() -> None:
    spec = {"number": 1647, "tol": 0.1, "near": ["kpop", "k-pop"], "words": True}
    text = "Clusters:\n- #1 users 1,657: #soccer, #futbol\n- #2 users 900: #kpop, #dancecover"
    assert not passes(spec, text)
    assert passes(spec, text.replace("900", "1,640"))
    assert passes(spec, "The K-pop segment has 1,650 users. Football has 1,900.")
    table = pd.DataFrame({"cluster": [1, 2], "users": [1657, 1600],
                          "top": ["#soccer, #futbol", "#kpop, #bts"]})
    assert passes(spec, "See the clusters.", table)
    assert not passes({**spec, "number": 1900}, "See the clusters.", table)


def test_numbers_are_found_in_the_answer_tables() -> None:
    table = pd.DataFrame({"country": ["BR", "MX"], "watch_hours": [12.5, 8.0],
                          "share": [0.61, 0.39]})
    assert passes({"numbers": [0.61, 0.39]}, "See the table.", table)
    assert passes({"number": 45_000, "unit": "seconds"}, "See the table.", table)
    assert not passes({"number": 0.5}, "See the table.", table)


# -- values and mentions --------------------------------------------------------------------
def test_values_unordered_ordered_and_aliases() -> None:
    spec = {"values": ["US", "BR", "IN"], "ordered": True}
    assert passes(spec, "The United States leads, then Brazil (BR), then India.")
    assert not passes(spec, "Brazil leads, then the US, then India.")
    assert passes({**spec, "ordered": False}, "Brazil leads, then the US, then India.")
    # a two-letter code is not found in ordinary words
    assert not passes({"values": ["IN"]}, "users in the US")
    assert passes({"values": ["ios"]}, "iOS users watch more.")
    assert passes({"values": ["en"]}, "Most videos are in English.")
    assert passes({"values": ["2026-09-26T00:00:00"]}, "The busiest day was Sep 26.")
    assert passes({"values": [["pantry_leo", 109906]]}, "Creator 109906 gained the most.")
    assert passes({"values": ["a", "b", "c"], "at_least": 2}, "values: a, c")
    assert not passes({"values": ["Travel"]}, "Travelling is fun")


def test_values_in_tables_keep_their_order_down_a_column() -> None:
    table = pd.DataFrame({"category": ["Lifestyle", "Sports", "Food"], "n": [3, 2, 1]})
    assert passes({"values": ["Lifestyle", "Sports"], "ordered": True}, "Here:", table)
    assert not passes({"values": ["Sports", "Lifestyle"], "ordered": True}, "Here:", table)
    assert passes({"values": [3, 2]}, "Here:", table)
    # only the top rows count: a table of every category does not say Food comes first
    assert not passes({"values": ["Food"]}, "Here:", table)
    assert passes({"values": ["Lifestyle"]}, "Here:", table)


def test_mentions() -> None:
    assert passes({"mentions": ["Indie", "games"]}, "indie games are growing")
    assert not passes({"mentions": ["indie", "cooking"]}, "indie games are growing")
    assert passes({"mentions": ["indie", "cooking"], "any": True}, "indie games are growing")
    assert passes({"mentions": [["k-pop", "kpop"], "pets"], "at_least": 1}, "KPOP fans")
    # words: anchored at a word start; short terms must be whole words
    assert passes({"mentions": ["indie game"], "words": True}, "#indiegame fans")
    assert not passes({"mentions": ["cat"], "words": True}, "by category")
    assert passes({"mentions": ["cat"], "words": True}, "cats and dogs")
    table = pd.DataFrame({"segment": ["Budget cooking fans"]})
    assert passes({"mentions": ["budget cooking"]}, "Named the segments.", table)


def test_mentions_together_and_first() -> None:
    pair = {"mentions": [["football", "soccer"], ["sneakers"]], "together": True}
    listing = "Communities:\n- #4 football, goals\n- #10 sneakers, kicks"
    assert not passes(pair, listing)
    assert passes(pair, listing + "\nThe most shared fans: soccer and sneakers (312 users).")
    rows = pd.DataFrame({"a": ["pets", "football"], "b": ["kpop", "sneakers"]})
    assert passes(pair, "See the overlaps.", rows)
    first = {"mentions": [["indie game"]], "words": True, "before": [["pets"], ["kpop"]]}
    assert passes(first, "Indie games grew 4x; pets and kpop stayed flat.")
    assert not passes(first, "Pets grew the most; indie games came second.")
    top = pd.DataFrame({"topic": ["Indie games", "Pets"], "growth": [4.1, 1.2]})
    assert passes(first, "Growth by topic is in the table.", top)


# -- clarification, significance, direction --------------------------------------------------
@pytest.mark.parametrize(("text", "ok"), [
    ("Do you mean views or watch time over the last 7 days?", True),
    ("There is no revenue data in this database, so I cannot answer that.", True),
    ("Did you mean completion rate? It could mean either likes or shares.", True),
    ("'Best' could mean most viewed or most liked. Which one should I use?", True),
    ("I could not match 'churn'. What should I count? For example views in the top 5 "
     "countries.", True),
    ("There were 12,345 views. Anything else?", False),
    ("The completion rate is 32.7%. Do you want it by country?", False),
    ("I can't be sure, but it's about 1.2k users.", False),
    ("Engagement is fine.", False),
    ("", False),
])
def test_clarify_heuristic(text: str, ok: bool) -> None:
    assert is_clarification(Evidence(text))[0] is ok


def test_a_failed_run_is_not_a_clarification() -> None:
    assert not is_clarification(Evidence("Which one?", error="the model crashed"))[0]
    assert not score({"number": 3}, Evidence("3", error="boom"))[0]


def test_significance_and_direction_wording() -> None:
    assert significance_verdict("iOS users watch 12% more (p < 0.001): statistically "
                                "significant.") is True
    assert significance_verdict("The gap is not statistically significant (p = 0.41).") is False
    assert significance_verdict("This isn't significant; it could be chance.") is False
    assert significance_verdict("There is no real difference.") is False
    assert significance_verdict("Android has 8.6%, iOS 8.7%.") is None
    assert direction_of("Weekly views rose from 64k to 95k.") == "up"
    assert direction_of("Broken down by week, searches fell by 10%.") == "down"
    assert direction_of("Completion stayed flat at 33%.") == "flat"
    assert passes({"direction": "flat"}, "It decreased by 0.1 pts, which is not significant.")
    assert not passes({"direction": "flat"}, "Down (it fell) 12%. A change of slope in October "
                                             "is not significant.")
    assert not passes({"direction": "up"}, "No clear trend; it is stable.")
    assert passes({"significant": False}, "No, the difference is within the noise.")
    # the person's words echoed back are not a verdict
    assert direction_of("No column matches 'growing' or 'shrinking'. Which table?") is None
    assert direction_of("Did searches grow? I can't tell.") is None
    assert significance_verdict('You asked whether it is "significant"; which metric?') is None
    assert significance_verdict("This isn't significant.") is False
    assert significance_verdict("iOS is 12% higher, a significant gap.\nThe change of slope "
                                "in May is not significant.") is True


def test_either_and_all_combinators() -> None:
    spec = {"either": [{"number": 10}, {"number": 0.5, "percent": True}]}
    assert passes(spec, "50% of users") and passes(spec, "10 users")
    assert not passes(spec, "20 users")
    assert not passes({"all": [{"number": 10}, {"mentions": ["android"]}]}, "10 iOS users")


# -- reference SQL --------------------------------------------------------------------------
@pytest.fixture()
def tiny_db(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE plays(user_id INTEGER, country VARCHAR, minutes DOUBLE, "
                "ts TIMESTAMP)")
    con.execute("INSERT INTO plays VALUES (1, 'BR', 10, '2026-01-01'), (2, 'BR', 5, "
                "'2026-01-02'), (3, 'US', 7, '2026-01-03'), (4, 'MX', 1, '2026-01-03')")
    con.close()
    return path


def reference(expect: dict[str, Any], db: Path) -> Any:
    con = duckdb.connect(str(db), read_only=True)
    try:
        ctx = ResolveContext(db, lambda sql: con.execute(sql).df(), Settings(db=db))
        return resolve_expectation(expect, ctx)
    finally:
        con.close()


def test_sql_expectations_against_a_tiny_db(tiny_db: Path) -> None:
    assert reference({"sql": "SELECT count(*) FROM plays", "tol": 0}, tiny_db) == {
        "number": 4.0, "tol": 0}
    assert reference({"sql": "SELECT country FROM plays GROUP BY 1 ORDER BY sum(minutes) "
                             "DESC", "ordered": True}, tiny_db) == {
        "values": ["BR", "US", "MX"], "ordered": True}
    assert reference({"sql": "SELECT country FROM plays ORDER BY minutes DESC LIMIT 1"},
                     tiny_db) == {"values": ["BR"]}
    assert reference({"sql": "SELECT minutes FROM plays ORDER BY 1"}, tiny_db) == {
        "numbers": [1.0, 5.0, 7.0, 10.0]}
    assert reference({"sql": "SELECT country, sum(minutes) FROM plays GROUP BY 1 ORDER BY 1",
                      "all": True}, tiny_db) == {"all": [{"numbers": [15.0, 1.0, 7.0]},
                                                         {"values": ["BR", "MX", "US"]}]}
    assert reference({"sql": "SELECT country, user_id FROM plays WHERE minutes > 6 ORDER BY 2",
                      "aliases": True}, tiny_db) == {"values": [["BR", 1], ["US", 3]]}
    assert reference({"significant": {"sql": "SELECT 3.2 > 1.96"}}, tiny_db) == {
        "significant": True}
    assert reference({"direction": {"sql": "SELECT -0.3"}}, tiny_db)["direction"] == "down"
    assert reference({"direction": {"sql": "SELECT 0.01", "flat": 0.05}}, tiny_db)[
        "direction"] == "flat"
    with pytest.raises(EvalError, match="no rows"):
        reference({"sql": "SELECT 1 WHERE false"}, tiny_db)
    with pytest.raises(EvalError, match="unknown expectation"):
        reference({"nonsense": 1}, tiny_db)
    expect = reference({"sql": "SELECT sum(minutes) FROM plays"}, tiny_db)
    assert passes(expect, "People played 23 minutes.")


def test_reference_queries_are_read_only(tiny_db: Path, tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(json.dumps([{"id": "x", "turns": ["q"], "expect": {
        "sql": "CREATE TABLE evil AS SELECT 1"}}]))
    out = resolve_suite(load_suite(suite), Settings(db=tiny_db, home=tmp_path / "h"))
    assert isinstance(out["x"], EvalError)
    with duckdb.connect(str(tiny_db), read_only=True) as con:
        assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["plays"]


def test_suite_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {id: a, turns: [q]}\n")
    with pytest.raises(EvalError, match="no 'expect'"):
        load_suite(bad)
    bad.write_text("- {id: a, turns: [q], expect: {number: 1}}\n"
                   "- {id: a, turns: [r], expect: {number: 1}}\n")
    with pytest.raises(EvalError, match="used twice"):
        load_suite(bad)
    good = tmp_path / "good.yaml"
    good.write_text("- {id: a, category: c, question: q, expect: {number: 1}, tool: run_sql}\n")
    [case] = load_suite(good).cases
    assert case.turns == ["q"] and case.tool == ["run_sql"]


# -- report, baseline, resume (scripted model over a tiny DB) -------------------------------
TINY_SUITE = """\
suite: tiny
cases:
  - id: count_plays
    category: lookups
    turns: ["count the plays"]
    tool: run_sql
    expect: {sql: "SELECT count(*) FROM plays"}
  - id: top_country
    category: lookups
    turns: ["top country by minutes"]
    tool: run_sql
    expect: {sql: "SELECT country FROM plays GROUP BY 1 ORDER BY sum(minutes) DESC LIMIT 1"}
  - id: vague
    category: ambiguous
    turns: ["hello", "how are things?"]
    expect: {clarify: true}
"""


class Scripts:
    """Scripted models per case (by session id), counting which cases ran."""

    def __init__(self, wrong: set[str] = frozenset()) -> None:
        self.wrong = set(wrong)
        self.ran: list[str] = []
        self.lock = threading.Lock()

    def steps(self, case: str) -> list[Any]:
        if case == "count_plays":
            off = " + 1" if case in self.wrong else ""  # a wrong answer, in the table too
            return [tool_turn(call("run_sql", "c1", sql=f"SELECT count(*){off} AS n FROM plays")),
                    answer("See the table.")]
        if case == "top_country":
            return [tool_turn(call("list_tables", "c2")),
                    answer("US plays the most." if case in self.wrong else "Brazil.")]
        return [answer("Hi!"), answer("There were 1,234 plays." if case in self.wrong
                                      else "Do you mean plays or minutes?")]

    def __call__(self, ctx: Any) -> ScriptedChatModel:
        case = next(c for c in ("count_plays", "top_country", "vague") if c in ctx.session)
        with self.lock:
            self.ran.append(case)
        return ScriptedChatModel(steps=self.steps(case))


def tiny_suite(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE)
    return path


def test_report_figures_and_files(tiny_db: Path, tmp_path: Path, isolated_home: Path) -> None:
    settings = Settings(db=tiny_db, home=isolated_home)
    out = tmp_path / "out"
    report = run_suite(tiny_suite(tmp_path), settings, workers=2, model_factory=Scripts(
        wrong={"top_country"}), out=out)
    data = json.loads((out / "report.json").read_text())
    assert data == json.loads(json.dumps(report.to_dict(), default=str))
    assert (data["cases"], data["passed"], data["accuracy"]) == (3, 2, pytest.approx(2 / 3,
                                                                                     abs=1e-3))
    assert data["by_category"] == {
        "lookups": {"cases": 2, "passed": 1, "accuracy": 0.5},
        "ambiguous": {"cases": 1, "passed": 1, "accuracy": 1.0}}
    assert data["tool_accuracy"] == 0.5  # top_country called list_tables, not run_sql
    assert data["tool_choice"]["misses"] == [{"id": "top_country", "expected": ["run_sql"],
                                              "called": ["list_tables"]}]
    assert set(data["latency_ms"]) >= {"median", "p95"} and data["latency_ms"]["questions"] == 4
    usage = data["usage"]
    assert (usage["model_calls"], usage["input_tokens"], usage["output_tokens"]) == (6, 60, 60)
    assert usage["per_question"]["model_calls"] == 1.5 and usage["cost_usd"] == 0.0
    [failure] = data["failures"]
    assert failure["id"] == "top_country" and failure["answer"] == "US plays the most."
    assert failure["expected"] == {"values": ["BR"]} and "BR" in failure["reason"]
    assert failure["trace"] == [[{"tool": "list_tables", "args": {}, "ok": True, "sql": None,
                                  "rows": 1, "ms": failure["trace"][0][0]["ms"]}]]
    assert [r["id"] for r in data["results"]] == ["count_plays", "top_country", "vague"]
    assert (data["model"], data["db"], data["suite"]) == ("offline", str(tiny_db), "tiny")
    passed = data["results"][0]
    assert passed["passed"] and passed["tools_called"] == ["run_sql"]
    assert "trace" not in passed and "expected" not in passed  # lean: details in failures
    md = (out / "report.md").read_text()
    assert "accuracy 67%" in md and "`top_country`" in md and "list_tables" in md
    assert "| lookups | 2 | 1 | 50% |" in md


def test_resume_runs_only_the_missing_cases(tiny_db: Path, tmp_path: Path,
                                            isolated_home: Path) -> None:
    settings = Settings(db=tiny_db, home=isolated_home)
    out, suite = tmp_path / "out", tiny_suite(tmp_path)
    first = Scripts(wrong={"top_country"})
    partial = run_suite(suite, settings, workers=1, limit=2, model_factory=first, out=out)
    assert first.ran == ["count_plays", "top_country"] and not partial.complete
    assert json.loads((out / "report.json").read_text())["complete"] is False
    second = Scripts()
    whole = run_suite(suite, settings, workers=1, model_factory=second, out=out, resume=True)
    assert second.ran == ["vague"]
    assert whole.complete and whole.cases == 3 and whole.passed == 2
    assert [r.tools_called for r in whole.results] == [["run_sql"], ["list_tables"], []]
    [failure] = whole.to_dict()["failures"]  # carried over from the first part, with its trace
    assert failure["id"] == "top_country" and failure["trace"][0][0]["tool"] == "list_tables"
    assert failure["expected"] == {"values": ["BR"]} and failure["answer"] == "US plays the most."
    third = Scripts()
    again = run_suite(suite, settings, workers=1, model_factory=third, out=out, resume=True)
    assert third.ran == [] and again.cases == 3
    with pytest.raises(EvalError, match="same suite and model"):
        run_suite(suite, settings.with_overrides(model="openai:gpt-4o"), out=out, resume=True)


def test_baseline_shows_what_changed(tiny_db: Path, tmp_path: Path, isolated_home: Path) -> None:
    settings = Settings(db=tiny_db, home=isolated_home)
    suite = tiny_suite(tmp_path)
    run_suite(suite, settings, workers=1, model_factory=Scripts(wrong={"vague"}),
              out=tmp_path / "before")
    report = run_suite(suite, settings, workers=1, model_factory=Scripts(wrong={"count_plays"}),
                       out=tmp_path / "after", baseline=tmp_path / "before" / "report.json")
    base = report.baseline
    assert base["fixed"] == ["vague"] and base["broken"] == ["count_plays"]
    assert base["by_category"]["ambiguous"] == {"before": 0.0, "after": 1.0, "delta": 1.0}
    assert base["by_category"]["lookups"] == {"before": 1.0, "after": 0.5, "delta": -0.5}
    assert base["accuracy"]["delta"] == 0.0
    md = (tmp_path / "after" / "report.md").read_text()
    assert "now passing: vague" in md and "now failing: count_plays" in md
    assert load_report(tmp_path / "after")["baseline"]["fixed"] == ["vague"]
    again = compare_reports(report.to_dict(), report.to_dict())
    assert again["fixed"] == again["broken"] == [] and again["accuracy"]["delta"] == 0.0


def test_a_crashing_case_fails_alone(tiny_db: Path, tmp_path: Path, isolated_home: Path) -> None:
    scripts = Scripts()

    def factory(ctx: Any) -> ScriptedChatModel:
        if "top_country" in ctx.session:
            raise RuntimeError("model exploded")
        return scripts(ctx)

    report = run_suite(tiny_suite(tmp_path), Settings(db=tiny_db, home=isolated_home),
                       workers=2, model_factory=factory)
    by_id = {r.id: r for r in report.results}
    assert by_id["top_country"].reason == "crashed: RuntimeError: model exploded"
    assert by_id["count_plays"].passed and by_id["vague"].passed


def test_cli_eval_exit_codes(tiny_db: Path, tmp_path: Path, isolated_home: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli import app

    monkeypatch.setattr("agent.analyst.make_chat_model",
                        lambda settings, ctx: Scripts(wrong={"vague"})(ctx))
    suite, out = tiny_suite(tmp_path), tmp_path / "cli-out"
    runner = CliRunner()
    ok = runner.invoke(app, ["eval", str(suite), "--db", str(tiny_db), "--out", str(out),
                             "--min-accuracy", "0.6", "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    assert "lookups" in ok.output and (out / "report.md").exists()
    low = runner.invoke(app, ["eval", str(suite), "--db", str(tiny_db), "--out", str(out),
                              "--min-accuracy", "0.9", "--baseline", str(out / "report.json")])
    assert low.exit_code == 1 and "below" in low.output
    missing = runner.invoke(app, ["eval", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2


# -- the suites ------------------------------------------------------------------------------
def _questions(suite: Path) -> list[str]:
    return [t for c in load_suite(suite).cases for t in c.turns]


def test_the_suites_are_well_formed(sample_db_path: Path, isolated_home: Path) -> None:
    sample = load_suite(SAMPLE_SUITE)
    other = load_suite(OTHER_SUITE)
    assert len(sample.cases) >= 60 and len(other.cases) >= 15
    counts = Counter(c.category for c in sample.cases)
    assert set(counts) == SAMPLE_CATEGORIES and min(counts.values()) >= 5
    assert any(len(c.turns) > 1 for c in sample.cases)
    for suite in (SAMPLE_SUITE, OTHER_SUITE):
        questions = [q.lower() for q in _questions(suite)]
        assert len(set(questions)) == len(questions), "a question is repeated"
    # every reference resolves on its database (no broken SQL, no unknown truth keys)
    for suite, settings in ((sample, Settings(db=sample_db_path, home=isolated_home)),
                            (other, suite_settings(other, Settings(home=isolated_home)))):
        broken = {k: str(v) for k, v in resolve_suite(suite, settings).items()
                  if isinstance(v, Exception)}
        assert not broken


def _floors(report: Any, out: Path) -> None:
    data = report.to_dict()
    table = render_markdown(data).split("## Failures")[0]
    low = {c: e["accuracy"] for c, e in data["by_category"].items()
           if e["accuracy"] < FLOOR_CATEGORY}
    message = f"report in {out}\n{table}"
    assert data["accuracy"] >= FLOOR_OVERALL and not low, message


@pytest.mark.slow
def test_sample_suite_offline(sample_db_path: Path, isolated_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "sample-offline"
    report = run_suite(SAMPLE_SUITE, Settings(db=sample_db_path, home=isolated_home),
                       workers=2, out=out)
    assert report.complete and (out / "report.json").exists() and (out / "report.md").exists()
    assert not [r.id for r in report.results if r.reference_error]
    _floors(report, out)


@pytest.mark.slow
def test_other_domain_suite_offline(isolated_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "other-offline"
    report = run_suite(OTHER_SUITE, Settings(home=isolated_home), workers=2, out=out)
    assert report.complete and Path(report.db).name == "bookshop.duckdb"
    assert not [r.id for r in report.results if r.reference_error]
    _floors(report, out)


# -- the same suite against an LLM (an OpenAI-compatible stand-in server) -------------------
class ReplyingStub(OpenAIStub):
    """The stub, answering each request from a function of the request instead of a list."""

    def __init__(self, respond: Any) -> None:
        super().__init__()
        self._respond = respond
        self._current = threading.local()

    def _record(self, request: Any) -> None:
        super()._record(request)
        self._current.request = request

    def _next(self) -> Reply:
        return self._respond(self._current.request)


STUB_CASES = ("lr_users_total", "lr_top_countries", "ft_teen_completion")


def scripted_llm(sql_by_question: dict[str, str]) -> Any:
    """Call run_sql with the case's reference SQL, then answer with the rows it got back."""

    def respond(request: Any) -> Reply:
        messages = request.messages
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if messages[-1]["role"] != "tool":
            return reply(tool_calls=[tool_call("run_sql", {"sql": sql_by_question[question]},
                                               f"call_{abs(hash(question)) % 10_000}")],
                         usage=(120, 30))
        rows = json.loads(messages[-1]["content"])["rows"]
        values = ", ".join(str(row[0]) for row in rows)
        return reply(f"The answer: {values}.", usage=(200, 20))

    return respond


def test_suite_against_an_openai_compatible_server(sample_db_path: Path, isolated_home: Path,
                                                   tmp_path: Path) -> None:
    cases = {c.id: c for c in load_suite(SAMPLE_SUITE).cases}
    sql = {cases[i].turns[-1]: cases[i].expect["sql"] for i in STUB_CASES}
    with ReplyingStub(scripted_llm(sql)) as stub:
        settings = Settings(db=sample_db_path, home=isolated_home, model="openai:gpt-4o-mini",
                            openai_api_key="sk-test", openai_base_url=stub.url,
                            llm_max_retries=2)
        report = run_suite(SAMPLE_SUITE, settings, only=STUB_CASES, out=tmp_path / "llm")
        requests = stub.chat_requests
    data = report.to_dict()
    assert data["model"] == "openai:gpt-4o-mini" and data["cases"] == 3
    assert data["accuracy"] == 1.0 and data["tool_accuracy"] == 1.0, data["failures"]
    assert len(requests) >= 6 and all(r.body["model"] == "gpt-4o-mini" for r in requests)
    usage = data["usage"]
    assert (usage["model_calls"], usage["input_tokens"], usage["output_tokens"]) == (6, 960, 150)
    assert usage["per_question"] == {"model_calls": 2.0, "input_tokens": 320.0,
                                     "output_tokens": 50.0}
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert usage["cost_usd"] == pytest.approx((960 * 0.15 + 150 * 0.6) / 1e6)
    assert not data["complete"] and data["suite_cases"] == len(cases)
