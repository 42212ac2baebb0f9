"""Shared fixtures: an isolated state directory per test, and the sample database."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DB = REPO / "sample_db" / "atlas_sample.duckdb"
SAMPLE_TRUTH = REPO / "sample_db" / "truth"


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of derived results for the whole run: keyed by database fingerprint and
    arguments, so tests that cluster the same database share the work."""
    base = tmp_path_factory.getbasetemp()
    # under xdist every worker has its own basetemp inside this run's folder
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return root / "atlas-derived-cache"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache_dir: Path) -> Path:
    """Give every test its own ATLAS_HOME and no LLM credentials from the machine."""
    home = tmp_path / "atlas-home"
    monkeypatch.setenv("ATLAS_HOME", str(home))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(shared_cache_dir))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ATLAS_MODEL", "ATLAS_DB"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def sample_db_path() -> Path:
    """The scale-1 sample database (built by `make setup`; built here when missing)."""
    if not SAMPLE_DB.exists() or not (SAMPLE_TRUTH / "effects.json").exists():
        from sample_db.generate import generate

        generate(SAMPLE_DB, scale=1.0, progress=False)
    return SAMPLE_DB


@pytest.fixture(scope="session")
def sample_truth_dir(sample_db_path: Path) -> Path:
    """`sample_db/truth/`: the planted truth, read by tests only."""
    return SAMPLE_TRUTH


@pytest.fixture()
def tiny_db(tmp_path: Path) -> Path:
    """A three-row warehouse (`plays`) for tests of the agent's plumbing."""
    path = tmp_path / "tiny.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE plays(user_id INTEGER, country VARCHAR, minutes DOUBLE)")
    con.execute("INSERT INTO plays VALUES (1, 'BR', 10), (2, 'BR', 5), (3, 'US', 7)")
    con.close()
    return path
