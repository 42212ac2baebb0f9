"""The one seam where a chat model is chosen (ARCHITECTURE.md decisions 1 and 11).

Model names: ``offline`` (the built-in deterministic model), ``openai:<model>`` (OpenAI
or any OpenAI-compatible server through ``OPENAI_BASE_URL``), ``local:<path.gguf>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.language_models import BaseChatModel

from tools.errors import AtlasError

if TYPE_CHECKING:
    from agent.config import Settings
    from tools.base import ToolContext

# USD per million tokens (input, output); other models report tokens but no cost.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.4),
}


class ModelConfigError(AtlasError):
    """The configured model name cannot be used."""


def parse_model_name(name: str) -> tuple[str, str]:
    """Split a model name into (provider, rest): ``openai:gpt-4o`` → ("openai", "gpt-4o")."""
    name = name.strip()
    if name == "offline":
        return "offline", ""
    provider, sep, rest = name.partition(":")
    if not sep or provider not in ("openai", "local") or not rest:
        raise ModelConfigError(
            f"unknown model '{name}': use 'offline', 'openai:<model>' or 'local:<path.gguf>'"
        )
    return provider, rest


def make_chat_model(settings: Settings, context: ToolContext) -> BaseChatModel:
    """Build the chat model named by ``settings.model`` for one session.

    ``ChatOpenAI`` is built here, lazily, so a missing key only matters when it is used.
    """
    provider, rest = parse_model_name(settings.model)
    if provider == "offline":
        from agent.offline import OfflineChatModel

        return OfflineChatModel(context=context)
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        if not settings.openai_api_key and not settings.openai_base_url:
            raise ModelConfigError(
                "the model is set to OpenAI but OPENAI_API_KEY is empty: set it (or "
                "OPENAI_BASE_URL for a local OpenAI-compatible server), or use --model offline"
            )
        return ChatOpenAI(
            model=rest,
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            temperature=0,
            stream_usage=True,
        )
    from agent.local_llm import make_local_model  # optional extra: llama-cpp-python

    return make_local_model(rest, settings)


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated USD for the tokens, or None when the model's price is unknown."""
    provider, rest = parse_model_name(model)
    if provider in ("offline", "local"):
        return 0.0
    price = PRICES_PER_MTOK.get(rest)
    if price is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 6)


def describe_llm_error(exc: BaseException, settings: Settings) -> str | None:
    """A sentence for a person when ``exc`` came from the LLM provider, else None."""
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        return None
    where = settings.openai_base_url or "the OpenAI API"
    if isinstance(exc, openai.AuthenticationError):
        return (f"The language model at {where} refused the API key (401). Check "
                "OPENAI_API_KEY; your conversation is kept, so ask again once it is fixed.")
    if isinstance(exc, openai.PermissionDeniedError):
        return f"The language model at {where} denied access (403) for this key or model."
    if isinstance(exc, openai.APITimeoutError):
        return (f"The language model at {where} did not answer within "
                f"{settings.llm_timeout_s:g} s. Try again, or raise ATLAS_LLM_TIMEOUT_S; "
                "your conversation is kept.")
    if isinstance(exc, openai.RateLimitError):
        return (f"The language model at {where} is rate-limiting us (429) even after "
                f"{settings.llm_max_retries} retries. Wait a minute and ask again.")
    if isinstance(exc, openai.NotFoundError):
        return f"The language model at {where} does not know the model '{settings.model}'."
    if isinstance(exc, openai.APIConnectionError):
        return f"Atlas could not reach the language model at {where}. Is the server running?"
    if isinstance(exc, openai.APIStatusError):
        return f"The language model at {where} failed with HTTP {exc.status_code}. Try again."
    return None
