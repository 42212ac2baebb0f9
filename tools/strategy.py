"""`draft_strategy`: from segment evidence to suggestions for the recommendation algorithm.

Rules that need no LLM produce the skeleton (target, lever, evidence with numbers and SQL,
impact, a power-calculated experiment). With an LLM, only the wording is redrafted, and a
draft that contains a number absent from the evidence is rejected.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from tools.base import ToolContext, ToolOutput
from tools.power import plan_experiment
from tools.strategy_evidence import Evidence, collect_evidence

LEVERS = ("candidate generation/recall", "ranking weights", "cold start",
          "exploration and diversity", "creator supply and incentives", "notifications")
UNDERSERVED_RATIO = 1.5
GROWTH_RATIO = 1.5
LOW_COMPLETION = 0.85
BRIDGE_MIN = 3
COLD_START_GAP = 0.8
GUARDRAILS = ("completion rate", "sessions per user", "creator diversity per user",
              "watch time of users outside the segment")


@dataclass
class Suggestion:
    """One evidence-backed suggestion."""

    target: str
    segment_id: int | None
    lever: str
    rule: str
    evidence: list[dict[str, Any]]
    impact: dict[str, Any]
    experiment: dict[str, Any]
    text: str
    score: float = 0.0
    sql: list[str] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _names(ctx: ToolContext) -> dict[int, str]:
    if ctx.catalog().table("segment_labels") is None:
        return {}
    df = ctx.workspace.frame(
        "SELECT segment_id, name FROM segment_labels WHERE segment_kind = 'community'")
    return {int(r.segment_id): str(r.name) for r in df.itertuples()}


def _experiment(row: pd.Series, mde: float, metric: str) -> dict[str, Any]:
    plan = plan_experiment(metric, GUARDRAILS, float(row.get("mean_week") or 0.0),
                           float(row.get("sd_week") or 0.0), int(row.get("users") or 0),
                           int(row.get("weekly_active") or 0), mde_relative=mde)
    return plan.as_dict()


def _impact(row: pd.Series, mde: float) -> dict[str, Any]:
    hours = float(row.get("users") or 0) * float(row.get("mean_week") or 0.0) / 3600.0
    return {"segment_users": int(row.get("users") or 0),
            "segment_watch_hours_per_week": round(hours, 1),
            "extra_watch_hours_per_week_at_mde": round(hours * mde, 1),
            "assumption": f"the change lifts the segment's weekly watch time by the MDE ({mde:.0%})"}


def _plan_text(exp: dict[str, Any]) -> str:
    return (f"A/B test on {exp['primary_metric']}: {exp['users_per_arm']:,} users per arm for "
            f"{exp['duration_weeks']} weeks to detect a {exp['mde_relative']:.0%} change "
            f"(alpha {exp['alpha']}, power {exp['power']}); guardrails: {', '.join(exp['guardrails'])}.")


def build_suggestions(ev: Evidence, names: dict[int, str], mde: float) -> list[Suggestion]:
    """Apply the evidence rules; every number in a suggestion comes from ``ev``."""
    metric = "weekly watch time per user (seconds)"
    out: list[Suggestion] = []
    for _, row in ev.groups.iterrows():
        if pd.isna(row["g"]):
            continue
        gid = int(row["g"])
        name = names.get(gid, f"Community {gid}")
        exp = _experiment(row, mde, metric)
        impact = _impact(row, mde)
        base = impact["segment_watch_hours_per_week"]
        demand, supply = float(row["demand_share"]), float(row["supply_share"])
        if supply > 0 and demand >= 0.01 and demand / supply >= UNDERSERVED_RATIO:
            ratio = demand / supply
            out.append(Suggestion(
                name, gid, "creator supply and incentives", "under-served demand",
                [{"fact": "share of watch time", "value": round(demand, 4), "sql": "demand"},
                 {"fact": "share of videos", "value": round(supply, 4), "sql": "supply"},
                 {"fact": "demand/supply ratio", "value": round(ratio, 2)}],
                impact, exp,
                f"{name} gets {_pct(demand)} of all watch time but only {_pct(supply)} of the "
                f"videos ({ratio:.1f}x): demand outruns supply. Recruit and reward creators in "
                f"this niche and widen its recall pool. {_plan_text(exp)}",
                score=base * (ratio - 1)))
        first, last = float(row["first_week_share"]), float(row["last_week_share"])
        if first > 0 and last / first >= GROWTH_RATIO:
            growth = last / first
            out.append(Suggestion(
                name, gid, "candidate generation/recall", "fast growth",
                [{"fact": "share of watch time, first week", "value": round(first, 4), "sql": "demand"},
                 {"fact": "share of watch time, last week", "value": round(last, 4), "sql": "demand"},
                 {"fact": "growth of share", "value": round(growth, 2)}],
                impact, exp,
                f"{name} grew from {_pct(first)} to {_pct(last)} of weekly watch time "
                f"({growth:.1f}x between the first and last week). Add a fresh-content recall "
                f"source for it and notify its likely fans of new posts. {_plan_text(exp)}",
                score=base * (growth - 1)))
        completion = row.get("completion")
        if (ev.overall_completion and completion is not None and not pd.isna(completion)
                and completion < LOW_COMPLETION * ev.overall_completion and demand >= 0.01):
            out.append(Suggestion(
                name, gid, "ranking weights", "low completion",
                [{"fact": "completion rate", "value": round(float(completion), 4), "sql": "demand"},
                 {"fact": "overall completion rate", "value": round(ev.overall_completion, 4)}],
                impact, exp,
                f"Only {_pct(float(completion))} of {name} views are completed against "
                f"{_pct(ev.overall_completion)} overall. Give completion more weight in ranking "
                f"for this content. {_plan_text(exp)}",
                score=base * (1 - float(completion) / ev.overall_completion)))
    if ev.bridges is not None:
        by_id = ev.groups.set_index("g")
        for _, b in ev.bridges.iterrows():
            if int(b["bridge_creators"]) < BRIDGE_MIN:
                continue
            g1, g2 = int(b["g1"]), int(b["g2"])
            n1, n2 = names.get(g1, f"Community {g1}"), names.get(g2, f"Community {g2}")
            row = by_id.loc[g1] if g1 in by_id.index else pd.Series(dtype=float)
            exp = _experiment(row, mde, metric)
            out.append(Suggestion(
                f"{n1} + {n2}", None, "exploration and diversity", "bridging communities",
                [{"fact": "bridge creators", "value": int(b["bridge_creators"]), "sql": "bridges"}],
                _impact(row, mde), exp,
                f"{int(b['bridge_creators'])} creators are followed strongly by both {n1} and "
                f"{n2}. Use them as exploration slots to introduce each audience to the other. "
                f"{_plan_text(exp)}",
                score=float(row.get("users") or 0) * float(row.get("mean_week") or 0) / 3600
                * min(1.0, int(b["bridge_creators"]) / 10)))
    cs = ev.cold_start
    if cs and cs["established_mean_week"] > 0 and \
            cs["new_mean_week"] < COLD_START_GAP * cs["established_mean_week"]:
        row = pd.Series({"users": cs["new_users"], "mean_week": cs["new_mean_week"],
                         "sd_week": cs["new_sd_week"], "weekly_active": cs["new_users"] / 4})
        exp = _experiment(row, mde, metric)
        gap = cs["new_mean_week"] / cs["established_mean_week"]
        out.append(Suggestion(
            "New users (joined in the last 30 days)", None, "cold start", "cold-start gap",
            [{"fact": "new users' weekly watch per user (s)", "value": round(cs["new_mean_week"], 1),
              "sql": "cold_start"},
             {"fact": "established users' weekly watch per user (s)",
              "value": round(cs["established_mean_week"], 1), "sql": "cold_start"}],
            _impact(row, mde), exp,
            f"New users watch {gap:.0%} of what established users watch per week. Seed their "
            f"feed from the largest interest communities and ask for interests at sign-up. "
            f"{_plan_text(exp)}", score=float(cs["new_users"]) * (1 - gap)))
    for s in out:
        s.sql = sorted({e["sql"] for e in s.evidence if e.get("sql")})
    ranked = sorted(out, key=lambda s: -s.score)
    # at most two suggestions per rule, so one pattern does not crowd out the others
    kept: list[Suggestion] = []
    for s in ranked:
        if sum(k.rule == s.rule for k in kept) < 2:
            kept.append(s)
    return kept


NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?%?")


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (percentages as written, commas removed)."""
    return [float(m.group().rstrip("%").replace(",", "")) for m in NUMBER.finditer(text)]


def invented_numbers(text: str, skeleton: Suggestion) -> list[float]:
    """Numbers in ``text`` that the suggestion's evidence, impact and plan do not contain.

    A number matches when it equals an evidence value, or that value as a percentage,
    up to rounding (0.05 absolute or 0.5% relative).
    """
    allowed = set(numbers_in(skeleton.text))
    blob = json.dumps({"e": skeleton.evidence, "i": skeleton.impact, "x": skeleton.experiment})
    for value in numbers_in(blob):
        allowed |= {value, value * 100}

    def known(n: float) -> bool:
        return any(abs(n - a) <= max(0.051, 0.005 * abs(a)) for a in allowed)

    return [n for n in numbers_in(text) if not known(n)]


def _evidence_value(item: dict[str, Any]) -> str:
    value = item["value"]
    if any(w in item["fact"] for w in ("share", "rate")) and isinstance(value, float) and value <= 1:
        return f"{value:.1%}"
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def strategy_markdown(suggestions: list[Suggestion], ev: Evidence) -> str:
    """The suggestions as a Markdown report for people who will not open the chat."""
    lines = ["# Recommendation strategy suggestions", "",
             f"Data window: {ev.window[0]} to {ev.window[1]}. Each suggestion states its "
             "evidence, the lever it pulls, its expected impact and an experiment to test it.", ""]
    for i, s in enumerate(suggestions, 1):
        lines += [f"## {i}. {s.target} — {s.lever}", "", s.text, "", "**Evidence**", ""]
        lines += [f"- {e['fact']}: {_evidence_value(e)}" for e in s.evidence]
        lines += ["", f"**Expected impact:** {s.impact['segment_users']:,} users, "
                      f"{s.impact['segment_watch_hours_per_week']:,} watch hours a week; "
                      f"+{s.impact['extra_watch_hours_per_week_at_mde']:,} hours a week if "
                      f"{s.impact['assumption']}.", ""]
        x = s.experiment
        lines += ["**Experiment**", "", f"- primary metric: {x['primary_metric']}",
                  f"- guardrails: {', '.join(x['guardrails'])}",
                  f"- minimum detectable effect: {x['mde_relative']:.0%}",
                  f"- users per arm: {x['users_per_arm']:,} (baseline mean {x['baseline_mean']:,.0f}, "
                  f"sd {x['baseline_sd']:,.0f})",
                  f"- duration: {x['duration_weeks']} weeks", ""]
    lines += ["## Queries behind the evidence", ""]
    for name, sql in ev.sql.items():
        lines += [f"**{name}**", "", "```sql", sql, "```", ""]
    return "\n".join(lines)


def draft_strategy(ctx: ToolContext, top: int = 6, mde: float = 0.03) -> ToolOutput:
    """Draft suggestions for the recommendation algorithm from the communities' evidence.

    Use it when someone asks what to change in recommendations, where to invest, or which
    audiences are under-served. Needs creator and user communities: it runs
    detect_communities first when the session has none. Each suggestion has a target
    segment, a lever, evidence with numbers, expected impact and a sized A/B test.

    Args:
        top: how many suggestions to return, best first.
        mde: the minimum detectable effect for experiment sizing, as a fraction (0.03 = 3%).
    """
    from tools.registry import run_tool

    ran: list[str] = []
    if ctx.catalog().table("creator_communities") is None:
        run_tool(ctx, "detect_communities")
        ran.append("detect_communities")
    names = _names(ctx)
    if not names:
        try:
            run_tool(ctx, "label_segments", segment_kind="community")
            ran.append("label_segments")
            names = _names(ctx)
        except Exception:  # noqa: BLE001 - names are optional; ids still identify segments
            names = {}
    ev = collect_evidence(ctx)
    suggestions = build_suggestions(ev, names, mde)[:top]
    suggestions = _redraft(ctx, suggestions)
    table = pd.DataFrame([{
        "rank": i, "target": s.target, "lever": s.lever, "rule": s.rule, "text": s.text,
        "users_per_arm": s.experiment["users_per_arm"], "weeks": s.experiment["duration_weeks"],
        "evidence": json.dumps(s.evidence)} for i, s in enumerate(suggestions, 1)])
    ref = ctx.results.put_table(table, "Strategy suggestions")
    groups = ev.groups.assign(name=[names.get(int(g), f"Community {int(g)}") for g in ev.groups["g"]])
    evidence_ref = ctx.results.put_table(groups, "Evidence per community", ev.sql["demand"])
    chart = ctx.results.put_figure(demand_supply_figure(groups), "Demand vs supply by community")
    report = ctx.results.put_text(strategy_markdown(suggestions, ev), "Strategy report")
    summary = {
        "ref": ref, "report": report, "window": list(ev.window), "ran_first": ran,
        "suggestions": [{"rank": i, "target": s.target, "lever": s.lever, "rule": s.rule,
                         "evidence": s.evidence, "users_per_arm": s.experiment["users_per_arm"],
                         "weeks": s.experiment["duration_weeks"], "text": s.text}
                        for i, s in enumerate(suggestions, 1)],
        "reading": _reading(suggestions),
    }
    summary["evidence_ref"], summary["chart"] = evidence_ref, chart
    return ToolOutput(summary=summary, sql=ev.sql["demand"], rows=len(table),
                      refs=[ref, evidence_ref, chart, report])


def _reading(suggestions: list[Suggestion]) -> str:
    """The suggestions, best first, one short line each."""
    if not suggestions:
        return ("No rule fired: no community is under-served, growing fast, poorly completed "
                "or bridged in this data.")
    lines = [f"{len(suggestions)} suggestions for the recommendation algorithm, best first:"]
    for i, s in enumerate(suggestions, 1):
        first = s.text.split(". ")[0].rstrip(".")
        x = s.experiment
        lines.append(f"{i}. **{s.target}** — {s.lever} ({s.rule}): {first}. Test: "
                     f"{x['users_per_arm']:,} users per arm for {x['duration_weeks']} weeks.")
    lines.append("The full plan with evidence, impact and experiments is in the Markdown report.")
    return "\n".join(lines)


def demand_supply_figure(groups: pd.DataFrame) -> Any:
    """Bars of each community's share of watch time next to its share of videos."""
    import plotly.graph_objects as go

    ordered = groups.sort_values("demand_share", ascending=False)
    fig = go.Figure([
        go.Bar(name="share of watch time", x=ordered["name"], y=ordered["demand_share"]),
        go.Bar(name="share of videos", x=ordered["name"], y=ordered["supply_share"]),
    ])
    fig.update_layout(barmode="group", title="Demand vs supply by community",
                      yaxis_tickformat=".0%", template="plotly_white")
    return fig


def _redraft(ctx: ToolContext, suggestions: list[Suggestion]) -> list[Suggestion]:
    """Let an LLM reword each suggestion; keep the template when it invents a number."""
    model = wording_model(ctx)
    if model is None:
        return suggestions
    import prompts

    out = []
    for s in suggestions:
        skeleton = json.dumps({k: v for k, v in asdict(s).items() if k != "sql"}, default=str)
        try:
            reply = model.invoke(prompts.render("strategy_wording", skeleton=skeleton))
            text = str(reply.content).strip()
        except Exception:  # noqa: BLE001 - the template wording is always available
            text = ""
        if text and not invented_numbers(text, s):
            s = Suggestion(**{**asdict(s), "text": text})
        out.append(s)
    return out


def wording_model(ctx: ToolContext) -> Any:
    """The chat model used for wording, or None in offline mode."""
    if ctx.settings.model == "offline":
        return None
    from agent.llm import make_chat_model

    return make_chat_model(ctx.settings, ctx)
