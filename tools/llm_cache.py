"""Every model call of the labeling tools, cached on disk and metered (ARCHITECTURE decision 7).

A call's key is the sha256 of (prompt version, model name, database fingerprint, inputs); its
answer is kept as a JSON file under ``<ATLAS_HOME>/cache/llm``, so a re-run costs no tokens.
:class:`Usage` counts model calls, cache hits, tokens (``usage_metadata``) and the estimated
cost of one tool call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel, ValidationError

from agent.llm import estimate_cost
from tools.errors import AtlasError

if TYPE_CHECKING:
    from tools.base import ToolContext

log = logging.getLogger(__name__)
CACHE_FORMAT = "1"


@dataclass
class Usage:
    """Model calls, cache hits, tokens and estimated cost of one tool call."""

    model: str
    model_calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0
    last_error: str | None = None

    def add(self, message: Any) -> None:
        """Count one answered call and the tokens its message reports."""
        self.model_calls += 1
        meta = getattr(message, "usage_metadata", None) or {}
        self.input_tokens += int(meta.get("input_tokens", 0) or 0)
        self.output_tokens += int(meta.get("output_tokens", 0) or 0)

    @property
    def cost_usd(self) -> float | None:
        """Estimated USD, or None when the model's price is unknown."""
        try:
            return estimate_cost(self.model, self.input_tokens, self.output_tokens)
        except AtlasError:  # not a configured model name (an injected one)
            return None

    def summary(self) -> dict[str, Any]:
        """The figures for a tool summary."""
        out: dict[str, Any] = {"model": self.model, "model_calls": self.model_calls,
                               "cached_calls": self.cached_calls,
                               "input_tokens": self.input_tokens,
                               "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}
        if self.errors:
            out["model_errors"] = self.errors
            out["model_error"] = self.last_error
        return out


class LLMCache:
    """Answers of model calls as JSON files, keyed by a sha256 of what determines them."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    @staticmethod
    def key(prompt_version: str, model: str, fingerprint: str, inputs: Any) -> str:
        """The sha256 hex key of one call."""
        raw = json.dumps({"v": CACHE_FORMAT, "prompt": prompt_version, "model": model,
                          "db": fingerprint, "inputs": inputs}, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer for ``key``, or None."""
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` (atomically: write then rename)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value, ensure_ascii=False, default=str), encoding="utf-8")
        tmp.replace(path)


def llm_cache(ctx: ToolContext) -> LLMCache:
    """The model-call cache of ``ctx``'s state directory."""
    return LLMCache(Path(ctx.settings.home) / "cache" / "llm")


def model_name(ctx: ToolContext, model: BaseChatModel) -> str:
    """The name a model is cached and priced under: the configured one, else its own."""
    if ctx.settings.model != "offline":
        return ctx.settings.model
    own = getattr(model, "model_name", None) or getattr(model, "model", None)
    return f"injected:{own or model._llm_type}"


def parse_json_answer(text: str, schema: type[BaseModel]) -> dict[str, Any] | None:
    """The first JSON object in ``text`` validated against ``schema``, or None."""
    if not isinstance(text, str):
        return None
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidate = fenced.group(1) if fenced else text
    start = candidate.find("{")
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(candidate[start:])
        return schema.model_validate(data).model_dump()
    except (ValueError, ValidationError):
        return None


def invoke_structured(model: BaseChatModel, schema: type[BaseModel], prompt: str
                      ) -> tuple[dict[str, Any] | None, AIMessage | None]:
    """Ask ``model`` for an answer shaped like ``schema``: (answer or None, raw message).

    Uses ``with_structured_output`` where the model supports it, and falls back to parsing
    JSON out of the text when it does not (or when the tool call is missing).
    """
    messages = [HumanMessage(prompt)]
    try:
        runnable = model.with_structured_output(schema, include_raw=True)
    except (NotImplementedError, ValueError, TypeError):
        runnable = None
    if runnable is None:
        raw = model.invoke(messages)
        return parse_json_answer(raw.content, schema), raw  # type: ignore[arg-type]
    out = runnable.invoke(messages)
    raw, parsed = out.get("raw"), out.get("parsed")
    if isinstance(parsed, BaseModel):
        return parsed.model_dump(), raw
    if isinstance(parsed, dict):
        try:
            return schema.model_validate(parsed).model_dump(), raw
        except ValidationError:
            pass
    return (parse_json_answer(getattr(raw, "content", ""), schema) if raw is not None else None), raw


class CachedModel:
    """A chat model behind the cache: :meth:`ask` answers from disk when it can."""

    def __init__(self, model: BaseChatModel, name: str, cache: LLMCache, fingerprint: str,
                 usage: Usage | None = None) -> None:
        self.model = model
        self.name = name
        self.cache = cache
        self.fingerprint = fingerprint
        self.usage = usage or Usage(name)

    def ask(self, prompt_version: str, prompt: str, schema: type[BaseModel]
            ) -> dict[str, Any] | None:
        """The model's structured answer to ``prompt`` (None when it gave none or failed)."""
        key = LLMCache.key(prompt_version, self.name, self.fingerprint,
                           {"schema": schema.__name__, "prompt": prompt})
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.cached_calls += 1
            return hit.get("answer")
        try:
            answer, raw = invoke_structured(self.model, schema, prompt)
        except AssertionError:  # a scripted test model ran out of answers: let it surface
            raise
        except Exception as error:  # a provider error falls back for this call only
            log.warning("labeling model call failed: %s", error)
            self.usage.errors += 1
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            self.usage.last_error = f"{type(error).__name__}: {first}".rstrip(": ")
            return None
        self.usage.add(raw)
        self.cache.put(key, {"answer": answer, "model": self.name, "prompt_version": prompt_version})
        return answer
