"""Offline token counting with OpenAI's BPE tokenizers (tiktoken), for estimates before a call is made.

tiktoken downloads its BPE rank files on first use, which fails on machines without internet. genops ships
gzipped copies of ``o200k_base`` and ``cl100k_base`` in ``genops_cli/data/`` and builds the encodings from those:
the pattern, special tokens and expected sha256 all come from tiktoken's own registry
(``tiktoken_ext.openai_public``), only the file read is swapped for a local, hash-verified one. Nothing here ever
touches the network or tiktoken's download cache.

Loading is lazy: importing this module imports neither tiktoken nor haystack and reads no files; the first count
loads the needed encoding once per process (``functools.lru_cache``).

Usage::

    from genops_cli.tokens import count_text_tokens, count_message_tokens, estimate_input_tokens

    count_text_tokens("hello world", model="gpt-4o")                      # 2
    count_message_tokens([{"role": "user", "content": "hello world"}])  # 9 = 3 + 1 (role) + 2 + 3 (reply)
    tokens, is_estimate = estimate_input_tokens(messages, model="claude-sonnet-4-5", provider="anthropic")
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import math
import re
import types
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from genops_cli.errors import GenopsError

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps import time low
    import tiktoken
    from haystack.dataclasses import ChatMessage

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"
#: Encodings whose BPE files ship in genops_cli/data/ (gzipped, byte-identical to OpenAI's published files).
VENDORED_ENCODINGS: tuple[str, ...] = (O200K_BASE, CL100K_BASE)

# OpenAI's documented chat framing (openai-cookbook "How to count tokens with tiktoken"): every message costs
# 3 tokens of wrapping (<|start|>{role}\n ... <|end|>) on top of its role and content, a `name` costs 1 more,
# and every request is primed with 3 tokens for the assistant reply (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

# Anthropic publishes no tokenizer for current Claude models, and Claude's vocabulary is smaller than o200k_base, so
# the same text usually costs more Claude tokens: o200k counts are inflated by 15% so budget checks err high.
CLAUDE_SAFETY_FACTOR = Decimal("1.15")
# Other non-OpenAI models (Gemini, Llama, Mistral, ...) use vocabularies of similar size to o200k_base; a smaller
# 10% margin covers their typical difference and their (unknown) chat framing.
OTHER_PROVIDER_SAFETY_FACTOR = Decimal("1.10")

#: Provider ids that serve OpenAI models with OpenAI's own tokenizers (counts are exact there).
OPENAI_PROVIDERS: frozenset[str] = frozenset({"openai", "azure", "azure_openai", "azure-openai", "openrouter"})

_CL100K_MODEL = re.compile(
    r"^(?:gpt-4(?:-.*)?|gpt-3\.5.*|gpt-35.*|text-embedding-3-.*|text-embedding-ada-002|davinci-002|babbage-002)$"
)
_O200K_OPENAI_MODEL = re.compile(r"^(?:gpt-4o.*|chatgpt-4o.*|gpt-4\.1.*|gpt-4\.5.*|gpt-5.*|o\d(?:-.*)?)$")
_GZIP_MAGIC = b"\x1f\x8b"


class TokenizerDataError(GenopsError, ValueError):
    """A vendored BPE file is missing, unreadable or does not have the sha256 tiktoken expects."""


class TokenEstimate(NamedTuple):
    """Result of `estimate_input_tokens`: unpacks as ``(tokens, is_estimate)``.

    ``is_estimate`` is False when an OpenAI model was counted with its own tokenizer (exact up to OpenAI's
    documented framing formula), True when a proxy tokenizer and a safety factor were used.
    """

    tokens: int
    is_estimate: bool


# --------------------------------------------------------------------------------------------------- model mapping


def _normalize_model(model: str | None) -> str:
    """Lower-case the model id and drop routing prefixes: ``openai/gpt-4o`` and ``ft:gpt-4o:org::id`` -> ``gpt-4o``."""
    name = (model or "").strip().lower()
    name = name.rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name


def encoding_name_for_model(model: str | None) -> str:
    """Name of the tiktoken encoding to count `model` with.

    ``cl100k_base`` for gpt-4 (not gpt-4o / gpt-4.1 / gpt-4.5), gpt-3.5 (incl. Azure ``gpt-35-*``),
    text-embedding-3-* and text-embedding-ada-002; ``o200k_base`` for gpt-4o, gpt-4.1, o1/o3/o4, gpt-5 and every
    other or unknown model (also the proxy for non-OpenAI models).

    >>> encoding_name_for_model("gpt-4-turbo"), encoding_name_for_model("gpt-4o-mini")
    ('cl100k_base', 'o200k_base')
    """
    return CL100K_BASE if _CL100K_MODEL.match(_normalize_model(model)) else O200K_BASE


def is_openai_model(model: str | None) -> bool:
    """True for the OpenAI model families whose tokenizer is public (gpt-3.5/4/4o/4.1/4.5/5, o-series, embeddings)."""
    name = _normalize_model(model)
    return bool(_CL100K_MODEL.match(name) or _O200K_OPENAI_MODEL.match(name))


def is_claude_model(model: str | None, provider: str | None = None) -> bool:
    """True for Anthropic models (also via Bedrock/Vertex ids such as ``anthropic.claude-3-5-sonnet-...-v1:0``)."""
    return "claude" in (model or "").lower() or (provider or "").strip().lower() == "anthropic"


# ---------------------------------------------------------------------------------------------------- file loading


def vendored_bpe_path(name: str) -> Path:
    """Path of the gzipped BPE file genops ships for encoding `name` (see `VENDORED_ENCODINGS`)."""
    if name not in VENDORED_ENCODINGS:
        raise TokenizerDataError(
            f"no vendored BPE file for encoding {name!r}; genops ships {', '.join(VENDORED_ENCODINGS)}"
        )
    from importlib import resources

    return Path(str(resources.files("genops_cli") / "data" / f"{name}.tiktoken.gz"))


def read_bpe_ranks(path: str | Path, expected_sha256: str) -> dict[bytes, int]:
    """Read a ``.tiktoken`` rank file (plain or gzipped) after checking the sha256 of its decompressed bytes.

    Raises `TokenizerDataError` when the file is missing or unreadable or the hash does not match.

    >>> ranks = read_bpe_ranks(vendored_bpe_path("cl100k_base"), "223921b7...")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TokenizerDataError(f"cannot read BPE file {path}: {exc}; reinstall genops-cli") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise TokenizerDataError(
            f"BPE file {path} has sha256 {actual} but tiktoken expects {expected_sha256}; "
            "the file is corrupted or tampered with, reinstall genops-cli"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def load_encoding(name: str = O200K_BASE, path: str | Path | None = None) -> tiktoken.Encoding:
    """Build tiktoken encoding `name` from a local BPE file, never from the network (not cached; see `get_encoding`).

    `path` defaults to the vendored copy. tiktoken's own constructor for `name` (``tiktoken_ext.openai_public``)
    supplies the regex, special tokens and expected sha256; it is called with its ``load_tiktoken_bpe`` global
    rebound, for this call only, to `read_bpe_ranks` on `path`, so tiktoken's module state is left untouched.

    >>> enc = load_encoding("cl100k_base")
    >>> len(enc.encode_ordinary("hello world"))
    2
    """
    from tiktoken import Encoding
    from tiktoken_ext import openai_public

    constructor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None or name not in VENDORED_ENCODINGS:
        raise TokenizerDataError(f"unknown encoding {name!r}; genops can load {', '.join(VENDORED_ENCODINGS)} offline")
    # Guard against a future tiktoken whose constructor fetches through another function: it would go online.
    if "load_tiktoken_bpe" not in constructor.__code__.co_names:
        raise TokenizerDataError(
            f"the installed tiktoken builds {name!r} in an unsupported way; pin tiktoken to a version with "
            "tiktoken_ext.openai_public.load_tiktoken_bpe"
        )
    bpe_path = Path(path) if path is not None else vendored_bpe_path(name)
    calls: list[str] = []

    def load_local(tiktoken_bpe_file: str, expected_hash: str | None = None) -> dict[bytes, int]:
        calls.append(tiktoken_bpe_file)
        if not expected_hash:
            raise TokenizerDataError(f"tiktoken gives no sha256 for {tiktoken_bpe_file}; cannot verify {bpe_path}")
        return read_bpe_ranks(bpe_path, expected_hash)

    rebound = types.FunctionType(
        constructor.__code__,
        {**constructor.__globals__, "load_tiktoken_bpe": load_local},
        constructor.__name__,
        constructor.__defaults__,
        constructor.__closure__,
    )
    spec = rebound()
    if len(calls) != 1:
        raise TokenizerDataError(f"tiktoken's constructor for {name!r} read {len(calls)} BPE files, expected 1")
    return Encoding(**spec)


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = O200K_BASE) -> tiktoken.Encoding:
    """The vendored encoding `name`, loaded on first use and cached for the process.

    >>> get_encoding("o200k_base") is get_encoding("o200k_base")
    True
    """
    return load_encoding(name)


def encoding_for_model(model: str | None) -> tiktoken.Encoding:
    """Cached encoding for `model` (see `encoding_name_for_model`)."""
    return get_encoding(encoding_name_for_model(model))


# -------------------------------------------------------------------------------------------------------- counting


def count_text_tokens(text: str, model: str | None = None) -> int:
    """Number of tokens in `text` with `model`'s tokenizer (o200k_base when unknown).

    Special-token strings such as ``<|endoftext|>`` count as ordinary text, as the OpenAI API treats them.

    >>> count_text_tokens("hello world"), count_text_tokens("tiktoken is great!", model="gpt-4")
    (2, 6)
    """
    if not text:
        return 0
    return len(encoding_for_model(model).encode_ordinary(text))


def _arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON string that goes on the wire."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments)


def _result_texts(result: Any) -> list[str]:
    """Text parts of a tool result: a string, or a sequence of TextContent/ImageContent (images are not counted)."""
    if result is None:
        return []
    if isinstance(result, str):
        return [result]
    if isinstance(result, Iterable) and not isinstance(result, Mapping):
        texts: list[str] = []
        for part in result:
            texts.extend(_result_texts(part) if isinstance(part, str) else _part_texts(part))
        return texts
    return _part_texts(result)


def _part_texts(part: Any) -> list[str]:
    """Text of one content part (dict or object); parts without text (images, files) give nothing."""
    text = part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
    return [text] if isinstance(text, str) else []


def _tool_call_texts(tool_call: Any) -> list[str]:
    """Name and JSON arguments of one tool call: Haystack `ToolCall`, its dict form, or OpenAI's wire format."""
    if isinstance(tool_call, Mapping):
        function = tool_call.get("function")
        if isinstance(function, Mapping):  # OpenAI: {"type": "function", "function": {"name", "arguments"}}
            return [str(function.get("name") or ""), _arguments_text(function.get("arguments"))]
        return [
            str(tool_call.get("tool_name") or tool_call.get("name") or ""),
            _arguments_text(tool_call.get("arguments")),
        ]
    return [str(getattr(tool_call, "tool_name", "") or ""), _arguments_text(getattr(tool_call, "arguments", None))]


def _dict_message_texts(message: Mapping[str, Any]) -> list[str]:
    """Countable strings of a dict message: OpenAI format or Haystack's `ChatMessage.to_dict()` format."""
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, Mapping):
        texts.extend(_part_texts(content))
    elif isinstance(content, Iterable):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and "tool_call" in part:
                texts.extend(_tool_call_texts(part["tool_call"]))
            elif isinstance(part, Mapping) and "tool_call_result" in part:
                result = part["tool_call_result"]
                texts.extend(_result_texts(result.get("result") if isinstance(result, Mapping) else result))
            else:
                texts.extend(_part_texts(part))
    for tool_call in message.get("tool_calls") or ():
        texts.extend(_tool_call_texts(tool_call))
    return texts


def _chat_message_texts(message: Any) -> list[str]:
    """Countable strings of a Haystack `ChatMessage` (duck-typed: texts, tool calls, tool results)."""
    texts = getattr(message, "texts", None)
    if texts is None:  # older or foreign objects: `text` may be None
        text = getattr(message, "text", None)
        texts = [text] if text else []
    out = [t for t in texts if t]
    for tool_call in getattr(message, "tool_calls", None) or ():
        out.extend(_tool_call_texts(tool_call))
    for result in getattr(message, "tool_call_results", None) or ():
        out.extend(_result_texts(getattr(result, "result", None)))
    return out


def _role_and_name(message: ChatMessage | Mapping[str, Any]) -> tuple[str, str | None]:
    if isinstance(message, Mapping):
        role, name = message.get("role"), message.get("name")
    else:
        role, name = getattr(message, "role", None), getattr(message, "name", None)
    role = getattr(role, "value", role)  # haystack ChatRole enum
    return str(role or ""), (str(name) if name else None)


def count_message_tokens(messages: Iterable[ChatMessage | Mapping[str, Any]], model: str | None = None) -> int:
    """Prompt tokens of a chat request, with OpenAI's documented framing.

    Per message: ``TOKENS_PER_MESSAGE`` (3) + role + every text part + tool-call names and JSON arguments +
    tool-result text, plus ``TOKENS_PER_NAME`` (1) + the name when a `name` is set; then ``REPLY_PRIMING_TOKENS``
    (3) once for the request. Messages are Haystack ``ChatMessage`` objects (``text`` may be None) or dicts in
    OpenAI (``{"role", "content", "name", "tool_calls"}``) or Haystack ``to_dict()`` shape. Images and files
    are not counted.

    >>> count_message_tokens([{"role": "user", "content": "hello world"}], model="gpt-4o")
    9
    """
    encoding = encoding_for_model(model)

    def n(text: str) -> int:
        return len(encoding.encode_ordinary(text)) if text else 0

    total = REPLY_PRIMING_TOKENS
    for message in messages:
        role, name = _role_and_name(message)
        texts = _dict_message_texts(message) if isinstance(message, Mapping) else _chat_message_texts(message)
        total += TOKENS_PER_MESSAGE + n(role) + sum(n(t) for t in texts)
        if name:
            total += TOKENS_PER_NAME + n(name)
    return total


def _apply_safety_factor(tokens: int, factor: Decimal) -> int:
    """``ceil(tokens * factor)`` in exact decimal arithmetic (a float 1.1 would turn 10 into 12)."""
    return math.ceil(Decimal(tokens) * factor)


def safety_factor_for(model: str | None, provider: str | None = None) -> Decimal | None:
    """The safety factor applied to o200k counts for `model`, or None when the count is exact (OpenAI models)."""
    if is_claude_model(model, provider):
        return CLAUDE_SAFETY_FACTOR
    provider_id = (provider or "").strip().lower()
    if is_openai_model(model) and (not provider_id or provider_id in OPENAI_PROVIDERS):
        return None
    return OTHER_PROVIDER_SAFETY_FACTOR


def estimate_input_tokens(
    messages_or_text: str | Iterable[ChatMessage | Mapping[str, Any]],
    model: str | None = None,
    provider: str | None = None,
) -> TokenEstimate:
    """Input tokens of a prompt (plain text, or chat messages with framing) for `model` served by `provider`.

    OpenAI models (provider None or one of `OPENAI_PROVIDERS`) are counted with their own tokenizer:
    ``is_estimate`` is False. Claude models (by name or ``provider="anthropic"``) are counted with o200k_base times
    `CLAUDE_SAFETY_FACTOR`; any other model/provider with o200k_base times `OTHER_PROVIDER_SAFETY_FACTOR`, rounded
    up; ``is_estimate`` is True for both.

    >>> estimate_input_tokens("hello world", model="gpt-4o")
    TokenEstimate(tokens=2, is_estimate=False)
    >>> tokens, is_estimate = estimate_input_tokens("hello world", model="claude-sonnet-4-5")  # ceil(2 * 1.15)
    >>> tokens, is_estimate
    (3, True)
    """
    factor = safety_factor_for(model, provider)
    count_model = model if factor is None else None  # None -> o200k_base as the proxy tokenizer
    if isinstance(messages_or_text, str):
        tokens = count_text_tokens(messages_or_text, count_model)
    else:
        tokens = count_message_tokens(messages_or_text, count_model)
    if factor is None:
        return TokenEstimate(tokens, False)
    return TokenEstimate(_apply_safety_factor(tokens, factor), True)


__all__ = [
    "CLAUDE_SAFETY_FACTOR",
    "CL100K_BASE",
    "O200K_BASE",
    "OPENAI_PROVIDERS",
    "OTHER_PROVIDER_SAFETY_FACTOR",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "VENDORED_ENCODINGS",
    "TokenEstimate",
    "TokenizerDataError",
    "count_message_tokens",
    "count_text_tokens",
    "encoding_for_model",
    "encoding_name_for_model",
    "estimate_input_tokens",
    "get_encoding",
    "is_claude_model",
    "is_openai_model",
    "load_encoding",
    "read_bpe_ranks",
    "safety_factor_for",
    "vendored_bpe_path",
]
