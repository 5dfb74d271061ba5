"""Usage normalization: turn what a Haystack component or agent step returns into genops' `TokenUsage`.

Every integration reports usage its own way (docs/ARCHITECTURE.md, "Where usage lives"). This module reads all of
them and returns one shape: `input_tokens` INCLUDES cache reads and writes, `output_tokens` INCLUDES reasoning,
the breakdowns sit beside them, and `raw` keeps a JSON-safe copy of what the provider sent so history can be
re-derived later.

Where usage is found in a component output (or an agent step's `{"replies": [...]}`):

- chat generators: `output["replies"][i].meta["usage"]` (ChatMessage objects, or dicts as `ChatMessage.to_dict()`
  writes them, with the meta under `"meta"`); model in `meta["model"]`, finish reason in `meta["finish_reason"]`;
- 2.x legacy generators: `output["meta"]` is a list of dicts, each with `"usage"` and `"model"`;
- embedders: `output["meta"]` is a dict with `"usage"` and `"model"` (OpenAI), or Cohere's API meta with
  `"billed_units"` (as a dict or as the SDK object);
- Ollama's native `prompt_eval_count` / `eval_count`, when they sit in the meta instead of a `"usage"` dict.

Counting rule for several replies (n > 1): integrations copy the usage of the one request onto every reply, so usage
blocks with equal normalized counts are the same call and are counted ONCE. Blocks with different counts are treated
as different calls and summed: that can only over-count (the safe side for budgets), never under-count.

Key shapes and how each becomes the normalized shape (see `normalize_usage`):

- OpenAI / Azure chat: `prompt_tokens` (includes cached), `completion_tokens` (includes reasoning),
  `prompt_tokens_details.cached_tokens` / `.cache_write_tokens`, `completion_tokens_details.reasoning_tokens`.
- OpenAI Responses: `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens` / `.cache_write_tokens`,
  `output_tokens_details.reasoning_tokens`.
- anthropic-haystack: `prompt_tokens`, `completion_tokens`, `cache_read_input_tokens`,
  `cache_creation_input_tokens`, optional `output_tokens_details.thinking_tokens` (inside output). Whether
  `prompt_tokens` includes the cache depends on the release: see `normalize_usage` for the rule.
- amazon-bedrock-haystack: like anthropic-haystack with `cache_write_input_tokens`; Bedrock's `inputTokens` is net
  of the cache and its `total_tokens` includes the cache, which settles the convention.
- google-genai-haystack: `prompt_tokens` (includes `cached_content_token_count`), `completion_tokens` (EXCLUDES
  `thoughts_token_count`, which is billed as output: added to output and reported as reasoning),
  `tool_use_prompt_token_count` (billed as input, not inside `prompt_tokens`: added to input).
- cohere-haystack: `prompt_tokens` / `completion_tokens` (taken from billed units), or a `billed_units` dict with
  `input_tokens` / `output_tokens`.
- Ollama, local Hugging Face and everything else: Haystack's own key lists, input `("prompt_tokens",
  "input_tokens")`, output `("completion_tokens", "output_tokens")`, plus Ollama's `prompt_eval_count` / `eval_count`.

Nothing here raises on odd shapes: an unreadable usage block gives `source="missing"` with the model kept. A usage
block whose counts are all zero is also `"missing"`: no real call has an empty prompt, and several integrations fill
in zeros when the provider sent no usage (Google, Cohere and Bedrock streaming).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from genops_cli.models import TokenUsage
from genops_cli.money import money_json

logger = logging.getLogger(__name__)

__all__ = [
    "LOCAL_PROVIDERS",
    "ExtractedUsage",
    "extract_usage",
    "installed_anthropic_prompt_includes_cache",
    "is_embedder",
    "is_llm_component",
    "normalize_usage",
    "provider_for",
]

# Providers that run on the user's own hardware: the pricing overlay prices them (per call, per second or zero).
LOCAL_PROVIDERS = frozenset({"ollama", "huggingface-local", "llama-cpp"})

# Haystack's own key lists (haystack/components/agents/agent.py), plus Ollama's and Google's native names.
_INPUT_KEYS = ("prompt_tokens", "input_tokens")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens")
_GOOGLE_KEYS = (
    "thoughts_token_count",
    "cached_content_token_count",
    "prompt_token_count",
    "candidates_token_count",
    "tool_use_prompt_token_count",
)
_ANTHROPIC_CACHE_KEYS = ("cache_read_input_tokens", "cache_creation_input_tokens", "cache_write_input_tokens")
_OLLAMA_NATIVE_KEYS = ("prompt_eval_count", "eval_count")

_MAX_DEPTH = 8


@dataclass
class ExtractedUsage:
    """What one component output (or agent step) says about the LLM or embedding call behind it.

    `usage` is normalized (see the module docstring); `model` is the response model (e.g. `gpt-4o-mini-2024-07-18`)
    when the output names one; `finish_reasons` has one entry per reply that carried one; `documents` is the number of
    Documents in `output["documents"]` (retrievers, document embedders), `None` when there is no such list. No content
    is kept.

    Example:
        >>> from haystack.dataclasses import ChatMessage
        >>> reply = ChatMessage.from_assistant("hi", meta={"model": "gpt-4o", "finish_reason": "stop",
        ...     "usage": {"prompt_tokens": 10, "completion_tokens": 2}})
        >>> extracted = extract_usage({"replies": [reply]})
        >>> (extracted.model, extracted.usage.input_tokens, extracted.usage.output_tokens, extracted.finish_reasons)
        ('gpt-4o', 10, 2, ['stop'])
    """

    usage: TokenUsage
    model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    documents: int | None = None


# --------------------------------------------------------------------------------------------------------------------
# Plain values


def _object_to_dict(value: Any) -> Mapping[str, Any] | None:
    """A dict view of a pydantic model, dataclass or plain object; None when there is none."""
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            dumped = model_dump()
        except Exception:  # an SDK object that cannot dump itself: try the other ways
            dumped = None
        if isinstance(dumped, Mapping):
            return dumped
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return dataclasses.asdict(value)
        except Exception:
            return None
    try:
        attributes = vars(value)
    except TypeError:
        return None
    return {k: v for k, v in attributes.items() if isinstance(k, str) and not k.startswith("_")}


_DROP = object()


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: dicts with str keys, lists, str, int, finite float, bool, None. Anything else is dropped."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    if depth >= _MAX_DEPTH:
        return _DROP
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                continue
            converted = _plain(item, depth + 1)
            if converted is not _DROP:
                out[key] = converted
        return out
    if isinstance(value, (list, tuple)):
        return [c for c in (_plain(item, depth + 1) for item in value) if c is not _DROP]
    if isinstance(value, (bytes, bytearray, set, frozenset)) or callable(value):
        return _DROP
    as_dict = _object_to_dict(value)
    if as_dict is None:
        return _DROP
    return _plain(as_dict, depth + 1)


def _plain_dict(value: Any) -> dict[str, Any] | None:
    converted = _plain(value)
    return converted if isinstance(converted, dict) else None


def _count(value: Any) -> int | None:
    """A token count from an int, an integral float (Cohere sends floats) or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(round(value))
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _first(data: Mapping[str, Any], *keys: str) -> int | None:
    """The first of `keys` that holds a usable count."""
    for key in keys:
        count = _count(data.get(key))
        if count is not None:
            return count
    return None


def _sub(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested details dict, or {} when it is missing, None or (as Google's `prompt_tokens_details`) a list."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


# --------------------------------------------------------------------------------------------------------------------
# Normalization of one usage block


@functools.lru_cache(maxsize=1)
def installed_anthropic_prompt_includes_cache() -> bool:
    """Whether the installed anthropic-haystack folds cache reads and writes into `prompt_tokens`.

    Releases before the August 2026 change copied Anthropic's `input_tokens` (net of the cache) into `prompt_tokens`;
    later ones (8.0.1 is installed here) add `cache_read_input_tokens` and `cache_creation_input_tokens` so that
    `prompt_tokens` means what OpenAI means by it. The installed converter is probed once with a known usage (free
    when a pipeline already imported it, about a second otherwise); without anthropic-haystack the current
    convention (inclusive) is assumed.
    """
    module_name = "haystack_integrations.components.generators.anthropic.chat.utils"
    try:
        if module_name not in sys.modules:
            importlib.metadata.distribution("anthropic-haystack")
        _get_openai_compatible_usage = importlib.import_module(module_name)._get_openai_compatible_usage
        probe = _get_openai_compatible_usage(
            {"usage": {"input_tokens": 1, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 100}}
        )
        return _count(probe.get("prompt_tokens")) == 111
    except Exception:
        return True


def _anthropic_prompt_includes_cache(
    usage: Mapping[str, Any],
    prompt: int,
    output: int,
    cached: int,
    provider: str | None,
    override: bool | None,
) -> bool:
    """Decide whether an anthropic-style `prompt_tokens` already includes the cache (see `normalize_usage`)."""
    if cached == 0:
        return True  # nothing to add either way
    if prompt < cached:
        return False  # an inclusive count can never be smaller than its cached part
    total = _count(usage.get("total_tokens"))
    if total is not None:
        if total == prompt + output + cached:
            return False
        if total == prompt + output:
            return True
    if override is not None:
        return override
    if "cache_write_input_tokens" in usage or provider == "aws":
        return False  # Bedrock Converse: inputTokens is net of cacheRead/cacheWrite
    return installed_anthropic_prompt_includes_cache()


def _finish(
    raw: dict[str, Any],
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read: int | None = 0,
    cache_write: int | None = 0,
    reasoning: int | None = 0,
) -> TokenUsage:
    """Clamp the breakdowns into their totals and decide between reported and missing."""
    if input_tokens is None and output_tokens is None:
        return TokenUsage(source="missing", raw=raw)
    inp = input_tokens or 0
    out = output_tokens or 0
    read = min(cache_read or 0, inp)
    write = min(cache_write or 0, inp - read)
    think = min(reasoning or 0, out)
    source = "reported" if inp + out > 0 else "missing"
    return TokenUsage(
        input_tokens=inp,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=out,
        reasoning_tokens=think,
        source=source,
        raw=raw,
    )


def normalize_usage(
    raw_usage: Any,
    provider: str | None = None,
    *,
    prompt_includes_cache: bool | None = None,
) -> TokenUsage:
    """Normalize one usage block (dict, pydantic model or plain object) of any integration.

    Anthropic-style blocks (`cache_read_input_tokens` with `cache_creation_input_tokens` or Bedrock's
    `cache_write_input_tokens`) need a rule, because anthropic-haystack changed in August 2026 whether
    `prompt_tokens` includes the cache. In order, the first that applies wins:

    1. a raw Anthropic `input_tokens` (streaming, or a raw SDK usage) is net of the cache:
       input = input_tokens + cache_read + cache_write;
    2. no cache tokens: input = prompt_tokens;
    3. `prompt_tokens < cache_read + cache_write`: it is clearly net, so the cache is added;
    4. `total_tokens` decides when present: equal to prompt + completion + cache means net, equal to
       prompt + completion means inclusive (Bedrock always sends it; its total includes the cache);
    5. `prompt_includes_cache`, when the caller knows (e.g. records produced by an older release);
    6. Bedrock (`cache_write_input_tokens` key or provider "aws"): net;
    7. otherwise the installed anthropic-haystack's convention (`installed_anthropic_prompt_includes_cache`).

    Example:
        >>> u = normalize_usage({"prompt_tokens": 12, "completion_tokens": 250, "cache_read_input_tokens": 3000,
        ...                      "cache_creation_input_tokens": 500})
        >>> (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.source)
        (3512, 3000, 500, 250, 'reported')
        >>> normalize_usage({"prompt_tokens": 9, "completion_tokens": 3,
        ...                  "completion_tokens_details": {"reasoning_tokens": 2}}).reasoning_tokens
        2
    """
    usage = _plain_dict(raw_usage)
    if not usage:
        return TokenUsage(source="missing", raw=usage)

    # Cohere: only `billed_units` (an embedder's API meta, or a raw chat usage).
    billed = _sub(usage, "billed_units")
    if billed and _first(usage, *_INPUT_KEYS, *_OUTPUT_KEYS) is None:
        return _finish(usage, _first(billed, "input_tokens"), _first(billed, "output_tokens"))

    # Google GenAI: thoughts are billed as output but are not inside completion_tokens.
    if any(key in usage for key in _GOOGLE_KEYS):
        prompt = _first(usage, "prompt_tokens", "prompt_token_count")
        candidates = _first(usage, "completion_tokens", "candidates_token_count")
        thoughts = _first(usage, "thoughts_token_count") or 0
        tool_prompt = _first(usage, "tool_use_prompt_token_count") or 0
        if prompt is None and candidates is None and not thoughts:
            return TokenUsage(source="missing", raw=usage)
        return _finish(
            usage,
            (prompt or 0) + tool_prompt,
            (candidates or 0) + thoughts,
            cache_read=_first(usage, "cached_content_token_count"),
            reasoning=thoughts,
        )

    # Anthropic and Bedrock: cache tokens as top-level keys.
    if any(key in usage for key in _ANTHROPIC_CACHE_KEYS):
        cache_read = _first(usage, "cache_read_input_tokens") or 0
        cache_write = _first(usage, "cache_creation_input_tokens", "cache_write_input_tokens") or 0
        output = _first(usage, *_OUTPUT_KEYS)
        reasoning = _first(_sub(usage, "output_tokens_details"), "thinking_tokens", "reasoning_tokens")
        raw_input = _count(usage.get("input_tokens"))
        prompt = _count(usage.get("prompt_tokens"))
        if raw_input is not None:
            input_tokens: int | None = raw_input + cache_read + cache_write
        elif prompt is not None:
            includes = _anthropic_prompt_includes_cache(
                usage, prompt, output or 0, cache_read + cache_write, provider, prompt_includes_cache
            )
            input_tokens = prompt if includes else prompt + cache_read + cache_write
        else:
            input_tokens = None
        if input_tokens is None and output is None:
            return TokenUsage(source="missing", raw=usage)
        return _finish(usage, input_tokens or 0, output, cache_read, cache_write, reasoning)

    # OpenAI chat and Responses, DeepSeek, Mistral, Groq, Ollama, Hugging Face, mocks: the generic key lists.
    input_tokens = _first(usage, *_INPUT_KEYS, "prompt_eval_count")
    output = _first(usage, *_OUTPUT_KEYS, "eval_count")
    prompt_details = _sub(usage, "prompt_tokens_details") or _sub(usage, "input_tokens_details")
    output_details = _sub(usage, "completion_tokens_details") or _sub(usage, "output_tokens_details")
    cache_read = _first(prompt_details, "cached_tokens")
    if cache_read is None:
        cache_read = _first(usage, "prompt_cache_hit_tokens")  # DeepSeek
    return _finish(
        usage,
        input_tokens,
        output,
        cache_read=cache_read,
        cache_write=_first(prompt_details, "cache_write_tokens"),
        reasoning=_first(output_details, "reasoning_tokens"),
    )


# --------------------------------------------------------------------------------------------------------------------
# Extraction from a component output


def _meta_of(item: Any) -> Mapping[str, Any] | None:
    """The meta of a reply: a ChatMessage's `.meta`, a serialized message's `"meta"` (or 2.x `"_meta"`)."""
    if isinstance(item, str) or item is None:
        return None
    if isinstance(item, Mapping):
        meta = item.get("meta", item.get("_meta"))
    else:
        meta = getattr(item, "meta", None)
        if meta is None:
            meta = getattr(item, "_meta", None)
    if meta is None or isinstance(meta, Mapping):
        return meta
    return _object_to_dict(meta)


def _as_meta(item: Any) -> Mapping[str, Any] | None:
    """An output-level meta entry (legacy list item or embedder meta) as a mapping."""
    if item is None or isinstance(item, (str, bytes, int, float, bool)):
        return None
    if isinstance(item, Mapping):
        return item
    return _object_to_dict(item)


def _collect_metas(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    metas: list[Mapping[str, Any]] = []
    replies = data.get("replies")
    if replies is not None and not isinstance(replies, (list, tuple, str)):
        replies = [replies]
    if isinstance(replies, (list, tuple)):
        for reply in replies:
            meta = _meta_of(reply)
            if meta:
                metas.append(meta)
    if any("usage" in m or "model" in m for m in metas):
        return metas
    # 2.x legacy generators (string replies + a list of meta dicts) and embedders (one meta dict).
    output_meta = data.get("meta")
    entries = output_meta if isinstance(output_meta, (list, tuple)) else [output_meta]
    for entry in entries:
        meta = _as_meta(entry)
        if meta:
            metas.append(meta)
    return metas


def _usage_block(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The raw usage block of one meta dict, or None when it carries none."""
    usage = meta.get("usage")
    if usage is not None:
        return _plain_dict(usage) if not isinstance(usage, (str, int, float, bool)) else {"usage": usage}
    if meta.get("billed_units") is not None:  # Cohere embedders: the API meta itself
        return _plain_dict({k: meta[k] for k in ("billed_units", "tokens") if k in meta})
    if any(key in meta for key in _OLLAMA_NATIVE_KEYS):  # Ollama streaming / legacy OllamaGenerator
        return _plain_dict({k: meta[k] for k in _OLLAMA_NATIVE_KEYS if k in meta})
    return None


def _count_documents(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def _to_output_mapping(output: Any) -> Mapping[str, Any] | None:
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return None
    if isinstance(output, Mapping):
        return output
    if isinstance(output, (list, tuple)):
        return {"replies": list(output)}
    if getattr(output, "meta", None) is not None:  # a single ChatMessage
        return {"replies": [output]}
    return None


def _counts(usage: TokenUsage) -> tuple[int, int, int, int, int]:
    return (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
    )


def _extract(output: Any, provider: str | None, prompt_includes_cache: bool | None) -> ExtractedUsage | None:
    data = _to_output_mapping(output)
    if data is None:
        return None
    documents = _count_documents(data.get("documents"))
    model: str | None = None
    finish_reasons: list[str] = []
    blocks: list[dict[str, Any]] = []
    for meta in _collect_metas(data):
        name = meta.get("model")
        if model is None and isinstance(name, str) and name:
            model = name
        reason = meta.get("finish_reason", meta.get("done_reason"))
        if isinstance(reason, str) and reason:
            finish_reasons.append(reason)
        block = _usage_block(meta)
        if block is not None:
            blocks.append(block)

    normalized = [normalize_usage(b, provider, prompt_includes_cache=prompt_includes_cache) for b in blocks]
    reported: dict[tuple[int, int, int, int, int], TokenUsage] = {}
    for usage in normalized:
        if usage.source == "reported":
            reported.setdefault(_counts(usage), usage)  # equal counts = the same call copied onto n replies

    if reported:
        distinct = list(reported.values())
        total = distinct[0]
        if len(distinct) > 1:
            total = TokenUsage(source="reported")
            for usage in distinct:
                total = total + usage
            total.raw = {"calls": [u.raw for u in distinct]}
    elif blocks or model is not None:
        total = TokenUsage(source="missing", raw=blocks[0] if blocks else None)
    elif documents is not None:
        total = TokenUsage(source="none")
    else:
        return None
    return ExtractedUsage(usage=total, model=model, finish_reasons=finish_reasons, documents=documents)


def extract_usage(
    output: Any,
    provider: str | None = None,
    *,
    prompt_includes_cache: bool | None = None,
) -> ExtractedUsage | None:
    """Normalized usage of the call behind a component output or an agent step's `{"replies": [...]}`.

    Returns None when the output carries neither usage nor a model nor a `documents` list (a PromptBuilder, a tool,
    an Agent's aggregated output, whose `token_usage` must not be counted again). An output with only `documents`
    (a retriever) gives `usage.source == "none"`; a reply or model without usage (OpenAI streaming without
    `stream_options.include_usage`) gives `"missing"`. `provider` (a genai-prices id from `provider_for`) and
    `prompt_includes_cache` only settle ambiguous Anthropic/Bedrock blocks (see `normalize_usage`). Never raises.

    Example:
        >>> from haystack.dataclasses import ChatMessage
        >>> meta = {"model": "gpt-4o-mini-2024-07-18", "finish_reason": "stop",
        ...         "usage": {"prompt_tokens": 1200, "completion_tokens": 300,
        ...                   "prompt_tokens_details": {"cached_tokens": 1024}}}
        >>> replies = [ChatMessage.from_assistant("a", meta=meta), ChatMessage.from_assistant("b", meta=meta)]
        >>> u = extract_usage({"replies": replies}).usage  # n=2: the copied usage is counted once
        >>> (u.input_tokens, u.cache_read_tokens, u.output_tokens)
        (1200, 1024, 300)
        >>> extract_usage({"prompt": "no call here"}) is None
        True
    """
    try:
        return _extract(output, provider, prompt_includes_cache)
    except Exception:  # a tracking helper must never break the pipeline it watches
        logger.debug("could not read usage from a component output", exc_info=True)
        return None


# --------------------------------------------------------------------------------------------------------------------
# Component classification and provider ids


# Integration package (the segment after haystack_integrations.components.<kind>.) -> genai-prices provider id.
_INTEGRATION_PROVIDERS = {
    "anthropic": "anthropic",
    "amazon_bedrock": "aws",
    "google_genai": "google",
    "google_vertex": "google",
    "google_ai": "google",
    "cohere": "cohere",
    "mistral": "mistral",
    "groq": "groq",
    "ollama": "ollama",
    "openrouter": "openrouter",
    "together_ai": "together",
    "togetherai": "together",
    "meta_llama": "meta",
    "nvidia": "nvidia",
    "llama_cpp": "llama-cpp",
    "deepseek": "deepseek",
    "fastembed": "huggingface-local",
    "huggingface_api": "huggingface",
    "sentence_transformers": "huggingface-local",
    "transformers": "huggingface-local",
}

# Class-name prefixes, checked in order (Azure before OpenAI: AzureOpenAIChatGenerator).
_CLASS_PREFIX_PROVIDERS = (
    ("Azure", "azure"),
    ("OpenAI", "openai"),
    ("Anthropic", "anthropic"),
    ("AmazonBedrock", "aws"),
    ("Bedrock", "aws"),
    ("GoogleGenAI", "google"),
    ("GoogleAI", "google"),
    ("VertexAI", "google"),
    ("Gemini", "google"),
    ("Cohere", "cohere"),
    ("Mistral", "mistral"),
    ("Groq", "groq"),
    ("Ollama", "ollama"),
    ("HuggingFaceLocal", "huggingface-local"),
    ("SentenceTransformers", "huggingface-local"),
    ("Fastembed", "huggingface-local"),
    ("HuggingFaceAPI", "huggingface"),
    # Haystack 2.0 TGI / TEI components call a Hugging Face endpoint, whatever model they serve.
    ("HuggingFaceTGI", "huggingface"),
    ("HuggingFaceTEI", "huggingface"),
    ("Transformers", "huggingface-local"),
    ("OpenRouter", "openrouter"),
    ("TogetherAI", "together"),
    ("LlamaCpp", "llama-cpp"),
    ("MetaLlama", "meta"),
    ("DeepSeek", "deepseek"),
)

# OpenAI-compatible endpoints: api_base_url host -> provider id.
_HOST_PROVIDERS = (
    ("openai.azure.com", "azure"),
    ("api.openai.com", "openai"),
    ("groq.com", "groq"),
    ("mistral.ai", "mistral"),
    ("together.xyz", "together"),
    ("together.ai", "together"),
    ("openrouter.ai", "openrouter"),
    ("deepseek.com", "deepseek"),
    ("x.ai", "x-ai"),
    ("generativelanguage.googleapis.com", "google"),
    ("fireworks.ai", "fireworks"),
    ("cerebras.ai", "cerebras"),
    ("perplexity.ai", "perplexity"),
    ("anthropic.com", "anthropic"),
    ("cohere.com", "cohere"),
    ("cohere.ai", "cohere"),
)

# Components whose class name ends in ChatGenerator but which only wrap other generators: their inner calls are
# traced as their own spans (haystack.chat_generator.run), so counting the wrapper would count usage twice.
_CONTAINER_CLASSES = frozenset({"FallbackChatGenerator"})

# "vendor/model" ids (LiteLLM, OpenRouter style): vendor -> provider id.
_MODEL_PREFIX_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "cohere": "cohere",
    "mistral": "mistral",
    "mistralai": "mistral",
    "groq": "groq",
    "bedrock": "aws",
    "azure": "azure",
    "ollama": "ollama",
}
_MISTRAL_MODEL_PREFIXES = ("mistral", "mixtral", "codestral", "ministral", "pixtral", "magistral", "devstral", "open-m")
_BEDROCK_MODEL = re.compile(r"^(?:[a-z]{2,4}\.|global\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen)\.")
_OPENAI_MODEL = re.compile(
    r"^(?:gpt-|gpt\d|chatgpt|o\d(?:$|-)|text-embedding-(?:ada|3)|davinci|babbage|dall-e|whisper|tts-|omni-moderation"
    r"|codex|computer-use)"
)


def _class_name(component_type: str | None, fully_qualified_type: str | None) -> str:
    for candidate in (component_type, fully_qualified_type):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip().rsplit(".", 1)[-1]
    return ""


def _module_of(component_type: str | None, fully_qualified_type: str | None) -> str:
    for candidate in (fully_qualified_type, component_type):
        if isinstance(candidate, str) and "." in candidate:
            return candidate.strip().rsplit(".", 1)[0]
    return ""


def _provider_from_host(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        host = (parsed.hostname or "").lower()
        port = parsed.port
    except ValueError:
        return None
    if port == 11434:
        return "ollama"
    for domain, provider in _HOST_PROVIDERS:
        if host == domain or host.endswith("." + domain):
            return provider
    return None


def _provider_from_model(model: Any) -> str | None:
    if not isinstance(model, str) or not model.strip():
        return None
    name = model.strip().lower()
    if "/" in name:  # "openai/gpt-4o", "anthropic/claude-..." (LiteLLM, OpenRouter style)
        prefix, _, rest = name.partition("/")
        if prefix in _MODEL_PREFIX_PROVIDERS:
            return _MODEL_PREFIX_PROVIDERS[prefix]
        name = rest
    if _BEDROCK_MODEL.match(name):
        return "aws"
    if name.startswith(("text-embedding-004", "text-embedding-005", "gemini", "embedding-001")):
        return "google"
    if _OPENAI_MODEL.match(name):
        return "openai"
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith(("command", "embed-english", "embed-multilingual", "embed-v", "rerank-")):
        return "cohere"
    if name.startswith(_MISTRAL_MODEL_PREFIXES):
        return "mistral"
    return None


#: Init or generation parameters that cap a call's output, by provider spelling.
MAX_TOKENS_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_new_tokens", "num_predict",
                   "maxTokens")  # maxTokens: Amazon Bedrock's Converse inferenceConfig name
#: Init parameters that name the endpoint a component calls (residency rules need it).
ENDPOINT_KEYS = ("api_base_url", "azure_endpoint", "base_url", "api_base", "endpoint", "url")


def max_tokens_of(params: Any) -> int | None:
    """The output cap a component's init parameters (or a call's inputs) set: generation_kwargs first (NVIDIA's
    generators call them model_arguments), then the top level, under any provider's name for it."""
    if not isinstance(params, Mapping):
        return None
    for source in (params.get("generation_kwargs"), params.get("model_arguments"), params):
        if isinstance(source, Mapping):
            for key in MAX_TOKENS_KEYS:
                value = source.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None


def model_of(params: Mapping[str, Any]) -> str | None:
    """The model a component's init parameters name (model, model_name, an Azure deployment, model_id, a local
    Hugging Face pipeline's huggingface_pipeline_kwargs.model, a Hugging Face API generator's api_params.model)."""
    model = params.get("model") or params.get("model_name") or params.get("azure_deployment")
    if model is None and isinstance(params.get("model_id"), str):
        model = params["model_id"]
    for nested in ("huggingface_pipeline_kwargs", "api_params"):  # local Hugging Face / HF API generators
        inner = params.get(nested)
        if not model and isinstance(inner, Mapping) and isinstance(inner.get("model"), str):
            model = inner["model"]
    return str(model) if model else None


def live_init_parameters(instance: Any) -> dict[str, Any]:
    """A live component's init parameters: its own `to_dict()` when it serializes, else the attributes that say
    what it calls (model, endpoint, output cap)."""
    to_dict = getattr(instance, "to_dict", None)
    if callable(to_dict):
        try:
            params = to_dict().get("init_parameters")
            if isinstance(params, dict):
                return params
        except Exception:  # e.g. a token Secret refuses to serialize: read the attributes instead
            pass
    params: dict[str, Any] = {}
    for attr in ("model", "model_name", "azure_deployment", "api_base_url", "azure_endpoint", "generation_kwargs",
                 "max_tokens", "top_k"):
        value = getattr(instance, attr, None)
        if isinstance(value, str | int | dict) and not isinstance(value, bool):
            params[attr] = value
    return params


def endpoint_of(params: Mapping[str, Any]) -> str | None:
    return next((str(params[k]) for k in ENDPOINT_KEYS if isinstance(params.get(k), str) and params[k]), None)


def _is_simulated(class_name: str, module: str) -> bool:
    return class_name.startswith("Mock") or module.startswith("genops_cli") or ".mock" in f".{module}"


def provider_for(
    component_type: str,
    fully_qualified_type: str | None,
    model: str | None,
    init_params: dict[str, Any] | None = None,
) -> str | None:
    """The genai-prices provider id for a component, or None when nothing identifies one.

    Signals, strongest first: the module path of `fully_qualified_type` (e.g.
    `haystack_integrations.components.generators.anthropic...` -> "anthropic"), then the class name (`Azure*` ->
    "azure", `OpenAI*` -> "openai", `AmazonBedrock*` -> "aws", ...), then the model name (`gpt-`, `o3`,
    `text-embedding-` -> "openai", `claude` -> "anthropic", `gemini` -> "google", `command` -> "cohere", `mistral` ->
    "mistral"). OpenAI-compatible generators pointed at another vendor through `api_base_url` get that vendor (Groq,
    Mistral, OpenRouter, Ollama on port 11434, ...). Mock generators and genops simulators take `provider` from
    `init_params` (or `init_params["meta"]["provider"]`), else the model name. Local providers ("ollama",
    "huggingface-local", "llama-cpp") are in `LOCAL_PROVIDERS`; genai-prices does not know them, the overlay does.

    Example:
        >>> provider_for("AnthropicChatGenerator",
        ...     "haystack_integrations.components.generators.anthropic.chat.chat_generator.AnthropicChatGenerator",
        ...     "claude-3-haiku-20240307")
        'anthropic'
        >>> provider_for("OpenAIChatGenerator", "haystack.components.generators.chat.openai.OpenAIChatGenerator",
        ...     "llama-3.1-8b-instant", {"api_base_url": "https://api.groq.com/openai/v1"})
        'groq'
    """
    params = init_params if isinstance(init_params, Mapping) else {}
    class_name = _class_name(component_type, fully_qualified_type)
    module = _module_of(component_type, fully_qualified_type)
    model_name = model if isinstance(model, str) and model else params.get("model")

    if _is_simulated(class_name, module):
        meta = params.get("meta") if isinstance(params.get("meta"), Mapping) else {}
        declared = params.get("provider") or meta.get("provider")
        if isinstance(declared, str) and declared.strip():
            return declared.strip().lower()
        return _provider_from_model(model_name)

    # 1. module path of an integration package
    parts = module.lower().split(".")
    if parts and parts[0] == "haystack_integrations":
        for part in parts[1:]:
            if part in _INTEGRATION_PROVIDERS:
                return _INTEGRATION_PROVIDERS[part]

    # 2. class name (Haystack core classes, and integrations whose module was not recognized)
    provider = next((p for prefix, p in _CLASS_PREFIX_PROVIDERS if class_name.startswith(prefix)), None)
    if provider in ("openai", None):
        if params.get("azure_endpoint") or params.get("azure_deployment"):
            return "azure"
        by_host = _provider_from_host(params.get("api_base_url") or params.get("base_url"))
        if by_host is not None:
            return by_host
    if provider is not None:
        return provider

    # 3. the model name
    return _provider_from_model(model_name)


def is_llm_component(component_type: str, fully_qualified_type: str | None = None) -> bool:
    """True for generator components that call a model themselves (class name ending in ChatGenerator/Generator).

    Builders, routers and wrappers are excluded: `FallbackChatGenerator` only delegates to generators that are traced
    on their own, and an Agent's calls are captured at its `haystack.agent.step.llm` spans.

    Example:
        >>> is_llm_component("OpenAIChatGenerator"), is_llm_component("ChatPromptBuilder")
        (True, False)
    """
    name = _class_name(component_type, fully_qualified_type)
    if not name or name in _CONTAINER_CLASSES:
        return False
    return name.endswith("Generator")


def is_embedder(component_type: str, fully_qualified_type: str | None = None) -> bool:
    """True for embedder components (class name ending in Embedder: text, document and image embedders).

    Example:
        >>> is_embedder("OpenAITextEmbedder"), is_embedder("InMemoryEmbeddingRetriever")
        (True, False)
    """
    return _class_name(component_type, fully_qualified_type).endswith("Embedder")


# --------------------------------------------------------------------------------------------------------------------
# Where usage came from, for every output


#: The usage_source of an LLM or embedding call: the provider reported it, genops counted it offline (a stream
#: without usage, a simulation), or nothing could be counted (e.g. the call failed before replying). Records
#: without a model call (builders, tools, agent containers) carry "missing" too, with zero tokens; "none" only
#: ever comes out of `extract_usage` (an output with documents and no call), never into a record.
USAGE_SOURCES = ("reported", "estimated", "missing")


@dataclass
class UsageSourceShare:
    """How much of a run's (or a report's) model calls and cost rest on estimated usage."""

    calls: int = 0
    estimated_calls: int = 0
    missing_calls: int = 0
    cost: Decimal = Decimal(0)
    estimated_cost: Decimal = Decimal(0)

    @property
    def estimated_share(self) -> Decimal | None:
        """Estimated cost / total cost (0..1, 4 places); None when nothing cost anything."""
        if not self.cost:
            return None
        return (self.estimated_cost / self.cost).quantize(Decimal("0.0001"))

    def to_json(self) -> dict[str, Any]:
        share = self.estimated_share
        return {"calls": self.calls, "estimated_calls": self.estimated_calls, "missing_calls": self.missing_calls,
                "estimated_cost": money_json(self.estimated_cost),
                "estimated_share": format(share, "f") if share is not None else None}


def usage_source_share(calls: Any) -> UsageSourceShare:
    """Count the model calls of `calls` (CallRecords) by usage source."""
    share = UsageSourceShare()
    for call in calls:
        if call.model is None:
            continue
        share.calls += 1
        share.cost += call.cost
        if call.usage.source == "estimated":
            share.estimated_calls += 1
            share.estimated_cost += call.cost
        elif call.usage.source == "missing":
            share.missing_calls += 1
    return share


def estimated_usage_warnings(calls: Any) -> list[str]:
    """One warning per component whose usage genops had to estimate, naming the component and the fix."""
    seen: dict[str, Any] = {}
    for call in calls:
        if call.model is not None and call.usage.source == "estimated":
            seen.setdefault(call.component_path or call.component_name, call)
    warnings = []
    for where, call in seen.items():
        if (call.provider or "") in ("openai", "azure") or is_openai_compatible_type(call.component_type):
            fix = ("set generation_kwargs.stream_options.include_usage: true on it (genops asks for it unless it "
                   "is set to false there; an endpoint that ignores it cannot be measured)")
        else:
            fix = "use a generator or provider that reports usage when streaming"
        warnings.append(f"usage of '{where}' ({call.provider or '?'}:{call.model}) was estimated offline, the "
                        f"provider did not report it: {fix}")
    return warnings


# --------------------------------------------------------------------------------------------------------------------
# Asking OpenAI-compatible streams for their usage


# Chat-completions generators: a stream reports usage only when asked (`stream_options.include_usage`). The
# Responses API always reports it, and refuses `stream_options`: its generators are not in this list.
_CHAT_COMPLETIONS_CLASSES = frozenset({"OpenAIChatGenerator", "AzureOpenAIChatGenerator", "OpenAIGenerator",
                                       "AzureOpenAIGenerator"})


@functools.lru_cache(maxsize=256)
def _chat_completions_subclass(type_path: str) -> bool:
    """Integrations built on OpenAIChatGenerator (Mistral, OpenRouter, Together AI, ...) stream the same way."""
    module_name, _, class_name = type_path.rpartition(".")
    if not module_name:
        return False
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        from haystack.components.generators import OpenAIGenerator
        from haystack.components.generators.chat import OpenAIChatGenerator

        return isinstance(cls, type) and issubclass(cls, OpenAIChatGenerator | OpenAIGenerator)
    except Exception:  # not importable here: judge by the class name only
        return False


def is_openai_compatible_type(component_type: str | None, fully_qualified_type: str | None = None) -> bool:
    """True for chat-completions generators, whose streams carry usage only with `stream_options.include_usage`.

    Example:
        >>> is_openai_compatible_type("OpenAIChatGenerator"), is_openai_compatible_type("OpenAIResponsesChatGenerator")
        (True, False)
    """
    if _class_name(component_type, fully_qualified_type) in _CHAT_COMPLETIONS_CLASSES:
        return True
    module = _module_of(component_type, fully_qualified_type)
    return bool(module) and _chat_completions_subclass(f"{module}.{_class_name(component_type, fully_qualified_type)}")


def stream_usage_configured(generation_kwargs: Any) -> bool:
    """Whether generation_kwargs already say whether to include usage (True or False: genops leaves it alone)."""
    options = generation_kwargs.get("stream_options") if isinstance(generation_kwargs, Mapping) else None
    return isinstance(options, Mapping) and "include_usage" in options


def with_stream_usage(generation_kwargs: Any) -> dict[str, Any]:
    """A copy of generation_kwargs that asks the stream for usage."""
    kwargs = dict(generation_kwargs) if isinstance(generation_kwargs, Mapping) else {}
    options = kwargs.get("stream_options")
    kwargs["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    return kwargs


def request_stream_usage(components: Mapping[str, Any]) -> list[str]:
    """Serialized components (a pipeline's `components`): every chat-completions generator that streams (its own
    streaming_callback, or its Agent's) asks for usage, unless its generation_kwargs already set
    `stream_options.include_usage` (true or false: configured either way). Nested generators (an Agent's, an
    AgentTool's Agent's) included. Changes `components` in place; returns the paths of the changed generators.

        request_stream_usage(data["components"])    # before Pipeline.from_dict(data)
    """
    changed: list[str] = []
    for name, component in components.items():
        _request_in_serialized(component, str(name), False, changed)
    return changed


def _request_in_serialized(value: Any, path: str, parent_streams: bool, changed: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _request_in_serialized(item, path, False, changed)
        return
    if not isinstance(value, dict):
        return
    params = value.get("init_parameters")
    type_path = value.get("type")
    if not (isinstance(params, dict) and isinstance(type_path, str)):
        for key, item in value.items():
            _request_in_serialized(item, f"{path}/{key}" if key in ("component", "agent") else path, False, changed)
        return
    streams = bool(params.get("streaming_callback")) or parent_streams
    type_name = type_path.rsplit(".", 1)[-1]
    if streams and is_openai_compatible_type(type_name, type_path) and not stream_usage_configured(
            params.get("generation_kwargs")):
        params["generation_kwargs"] = with_stream_usage(params.get("generation_kwargs"))
        changed.append(path)
    for key, item in params.items():
        # An Agent's streaming_callback streams its chat_generator's calls.
        _request_in_serialized(item, f"{path}/{key}", streams and key == "chat_generator", changed)


def request_stream_usage_live(pipeline: Any) -> list[str]:
    """The same for a pipeline built in code: sets generation_kwargs on the live generators."""
    changed: list[str] = []
    walk = getattr(pipeline, "walk", None)
    components = walk() if callable(walk) else getattr(pipeline, "components", {}).items()
    for name, instance in components:
        _request_live(instance, str(name), False, changed, set())
    return changed


def _request_live(instance: Any, path: str, parent_streams: bool, changed: list[str], seen: set[int]) -> None:
    if instance is None or id(instance) in seen:
        return
    seen.add(id(instance))
    streams = getattr(instance, "streaming_callback", None) is not None or parent_streams
    cls = type(instance)
    kwargs = getattr(instance, "generation_kwargs", None)
    if (streams and isinstance(kwargs, dict) and is_openai_compatible_type(cls.__name__, f"{cls.__module__}."
                                                                          f"{cls.__name__}")
            and not stream_usage_configured(kwargs)):
        instance.generation_kwargs = with_stream_usage(kwargs)
        changed.append(path)
    _request_live(getattr(instance, "chat_generator", None), f"{path}/chat_generator", streams, changed, seen)
    tools = getattr(instance, "tools", None)
    if isinstance(tools, list | tuple):
        for tool in tools:
            inner = getattr(tool, "_component", None)
            _request_live(inner, f"{path}/tool:{getattr(tool, 'name', '?')}", False, changed, seen)
