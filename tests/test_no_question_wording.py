"""The offline model must not know the test questions: no 4 words of one in agent/ or prompts/.

Questions are collected generously: every string literal in tests/*.py that ends with a
question mark or is passed to ``ask(...)`` / given as a question or turn, and every
question or turn in tests/**/*.yaml. A run of four consecutive words of any of them
(lowercased, punctuation dropped) must not appear in any file under agent/ or prompts/.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
GUARDED = (REPO / "agent", REPO / "prompts")
TEXT_SUFFIXES = {".py", ".txt", ".md", ".yaml", ".yml", ".json", ".toml", ".cfg", ".j2"}
QUESTION_KEYS = {"question", "questions", "turns", "turn", "ask", "prompt", "q"}
N = 4
# Runs made only of these words (and numbers) are plain English, not a question's wording:
# "the last 30 days", "at the start of".
GENERIC = frozenset("""
a an the of in on at to for from by per with and or is are was were be this that these those
it its last past first next previous start end days day weeks week months month years year
hours hour how many much what which who when
""".split())


def words(text: str) -> list[str]:
    """Lowercase words with punctuation dropped."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def shingles(text: str) -> set[tuple[str, ...]]:
    """Every run of N consecutive words that is not plain English (see GENERIC)."""
    w = words(text)
    runs = {tuple(w[i:i + N]) for i in range(len(w) - N + 1)}
    return {r for r in runs if not all(x in GENERIC or x.isdigit() for x in r)}


def _python_questions(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.rstrip().endswith("?"):
                yield node.value
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("ask", "HumanMessage", "stream", "invoke_question"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        yield arg.value
            for kw in node.keywords:
                if kw.arg in QUESTION_KEYS:
                    yield from _strings(kw.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in QUESTION_KEYS:
                    yield from _strings(value)


def _strings(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def _yaml_questions(data: Any, under_key: bool = False) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _yaml_questions(value, under_key or str(key).lower() in QUESTION_KEYS)
    elif isinstance(data, list):
        for item in data:
            yield from _yaml_questions(item, under_key)
    elif isinstance(data, str) and (under_key or data.rstrip().endswith("?")):
        yield data


def collect_questions() -> list[str]:
    """Every question string of the tests."""
    found: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        found += _python_questions(path)
    for path in sorted([*TESTS.rglob("*.yaml"), *TESTS.rglob("*.yml")]):
        try:
            found += _yaml_questions(yaml.safe_load(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue
    return sorted({q for q in found if len(words(q)) >= N})


def test_the_questions_are_found() -> None:
    questions = collect_questions()
    assert len(questions) >= 20
    assert any("Brazil" in q for q in questions)


def _guarded_files() -> Iterator[Path]:
    for root in GUARDED:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path


def test_no_four_words_of_a_test_question_in_agent_or_prompts() -> None:
    wanted: dict[tuple[str, ...], str] = {}
    for question in collect_questions():
        for s in shingles(question):
            wanted.setdefault(s, question)
    leaks = []
    for path in _guarded_files():
        found = shingles(path.read_text(encoding="utf-8", errors="ignore")) & set(wanted)
        leaks += [f"{path.relative_to(REPO)}: '{' '.join(s)}' (from: {wanted[s]!r})"
                  for s in found]
    assert not leaks, "test wording found in the product code:\n" + "\n".join(sorted(leaks)[:40])
