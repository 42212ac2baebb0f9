"""Atlas's one settings object.

Every field falls back to an environment variable (``ATLAS_*``, or the usual
``OPENAI_*`` names) and to a ``.env`` file in the current directory. Commands
override fields from their flags with :meth:`Settings.with_overrides`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = REPO_ROOT / "sample_db" / "atlas_sample.duckdb"


class Settings(BaseSettings):
    """Configuration for every Atlas command; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="ATLAS_", env_file=".env", extra="ignore", frozen=True
    )

    db: Path = Field(default=DEFAULT_DB, description="The warehouse DuckDB file (read-only).")
    semantic: Path | None = Field(
        default=None,
        description="Semantic notes; default: <db>.semantic.yaml, or semantic.yaml beside it.",
    )
    home: Path = Field(default=Path(".atlas"), description="State directory.")
    cache_dir: Path | None = Field(
        default=None, description="Cache of derived results; default: <home>/cache."
    )
    model: str = Field(default="offline", description="offline | openai:<model> | local:<gguf>.")

    sql_timeout_s: float = Field(default=30.0, gt=0, description="Per-query time limit.")
    sql_row_limit: int = Field(default=10_000, gt=0, description="Rows returned per query.")
    sql_memory_limit: str = Field(default="4GB", description="DuckDB memory limit.")
    sql_threads: int = Field(default=2, gt=0, description="DuckDB threads per session.")

    privacy_floor: int = Field(default=20, ge=1, description="Smallest segment described.")
    max_steps: int = Field(default=12, gt=0, description="Model/tool steps per question.")
    token_budget: int = Field(default=60_000, gt=0, description="Tokens per question.")

    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "ATLAS_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "ATLAS_OPENAI_BASE_URL")
    )
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Per LLM request.")
    llm_max_retries: int = Field(default=3, ge=0, description="Retries on 429/5xx.")
    llm_threads: int = Field(default=2, gt=0, description="Threads for a local model.")
    profile: str = Field(
        default="auto",
        description="Prompt and tool set: full, small (a short prompt and fewer tools, for "
        "small models) or auto (small for local: models).",
        pattern="^(auto|full|small)$",
    )
    ui_auth: str | None = Field(default=None, description="user:password for the chat page.")

    def with_overrides(self, **values: Any) -> Settings:
        """Return a copy with the given fields replaced; ``None`` values are ignored."""
        changed = {k: v for k, v in values.items() if v is not None}
        return self.model_copy(update=changed) if changed else self

    @property
    def small_profile(self) -> bool:
        """Whether the agent runs with the short prompt and the small tool set."""
        if self.profile == "auto":
            return self.model.strip().startswith("local:")
        return self.profile == "small"

    @property
    def semantic_path(self) -> Path | None:
        """The semantic notes for :attr:`db`, if any exist."""
        if self.semantic is not None:
            return self.semantic
        for candidate in (
            self.db.with_name(self.db.name + ".semantic.yaml"),
            self.db.with_suffix(".semantic.yaml"),
            self.db.parent / "semantic.yaml",
        ):
            if candidate.exists():
                return candidate
        return None
