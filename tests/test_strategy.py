"""draft_strategy on the sample (against the planted truth) and its number check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

import tools.strategy as strategy
from agent.config import Settings
from tools.base import ToolContext
from tools.power import users_per_arm
from tools.registry import run_tool
from tools.results import ResultStore
from tools.semantic import load_notes
from tools.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ctx(sample_db_path: Path, tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path):
    home = tmp_path_factory.mktemp("strategy-home")
    settings = Settings(db=sample_db_path, home=home, cache_dir=shared_cache_dir)
    ws = Workspace.from_settings(settings, "strategy")
    context = ToolContext(settings=settings, workspace=ws, results=ResultStore(home / "results"),
                          notes=load_notes(REPO / "sample_db" / "semantic.yaml"))
    yield context
    ws.close()


@pytest.fixture(scope="module")
def drafted(ctx: ToolContext) -> dict:
    return run_tool(ctx, "draft_strategy").summary


def _keywords(truth: Path, topic: str) -> list[str]:
    topics = json.loads((truth / "topics.json").read_text())
    return [k.lower() for t in topics if t["topic"] == topic for k in t["keywords"]]


def test_top_suggestions_include_the_planted_underserved_and_growing_topics(
        drafted: dict, sample_truth_dir: Path) -> None:
    effects = json.loads((sample_truth_dir / "effects.json").read_text())
    top = drafted["suggestions"][:4]

    def found(topic: str, rule: str) -> dict | None:
        words = _keywords(sample_truth_dir, topic)
        return next((s for s in top if s["rule"] == rule
                     and any(w in s["target"].lower() for w in words)), None)

    under = found(effects["underserved_topic"], "under-served demand")
    growing = found(effects["growing_topic"], "fast growth")
    assert under is not None, [(s["rule"], s["target"]) for s in top]
    assert growing is not None, [(s["rule"], s["target"]) for s in top]
    for s in (under, growing):
        assert s["users_per_arm"] > 100 and s["weeks"] >= 2
        assert "users per arm" in s["text"]
    assert drafted["ran_first"] == ["detect_communities", "label_segments"]


def test_experiment_sizes_follow_the_power_formula() -> None:
    # n = 2 (z_.975 + z_.8)^2 (sd / delta)^2 = 2 * 7.849 * (50 / 5)^2
    assert users_per_arm(100.0, 50.0, 0.05) == 1570
    assert users_per_arm(100.0, 0.0, 0.05) == 0


def test_report_is_markdown_with_evidence_and_queries(ctx: ToolContext, drafted: dict) -> None:
    text = ctx.results.get(drafted["report"])
    assert text.startswith("# Recommendation strategy suggestions")
    assert "**Experiment**" in text and "users per arm" in text and "```sql" in text


def test_a_redraft_with_an_invented_number_is_rejected(ctx: ToolContext, drafted: dict,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.model import ScriptedChatModel

    ev = strategy.collect_evidence(ctx)
    skeletons = strategy.build_suggestions(ev, {}, 0.03)[:2]
    honest = skeletons[0].text.split(". ")[0] + "."
    model = ScriptedChatModel(steps=[
        AIMessage(honest),
        AIMessage("This niche will grow watch time by 37.5% next quarter."),
    ])
    monkeypatch.setattr(strategy, "wording_model", lambda ctx: model)
    redrafted = strategy._redraft(ctx, skeletons)
    assert redrafted[0].text == honest
    assert redrafted[1].text == skeletons[1].text  # the invented 37.5% was refused
    assert strategy.invented_numbers("grew by 37.5% next quarter", skeletons[1]) == [37.5]
    assert len(model.seen) == 2
    assert "<suggestion>" in str(model.seen[0][0].content)
