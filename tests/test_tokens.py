"""Offline token counting: vendored BPE files, tiktoken parity, chat framing, safety factors, no network."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from haystack.dataclasses import ChatMessage, ToolCall

from genops_cli import tokens as T

TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "antidisestablishmentarianism",
    "2 + 2 = 4",
    "お誕生日おめでとう",
    "def f(x):\n    return x ** 2  # squares\n\n\n",
    "Ünïcödé — emojis 🎉🚀 and <|endoftext|> as plain text",
    "",
]

# The openai-cookbook "How to count tokens with tiktoken" example conversation and its published prompt-token
# counts (129 for gpt-3.5-turbo / gpt-4, 124 for gpt-4o / gpt-4o-mini), which match the API's usage.prompt_tokens.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."
        ),
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": (
            "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."
        ),
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way tiktoken (or anything else) could fetch a file fail loudly."""
    import tiktoken.load

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, an empty tiktoken cache dir, and no encodings loaded yet; yields the cache dir."""
    cache_dir = tmp_path / "tiktoken-cache"
    cache_dir.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(cache_dir))
    _block_network(monkeypatch)
    T.get_encoding.cache_clear()
    yield cache_dir
    T.get_encoding.cache_clear()


@pytest.fixture(scope="module")
def reference_encodings(tmp_path_factory: pytest.TempPathFactory):
    """tiktoken's own `get_encoding`, fed from its download cache pre-seeded with the vendored files.

    tiktoken itself verifies the sha256 and builds the encoding from its registry, so this is an independent
    reference for our loader (which never uses tiktoken's cache).
    """
    import tiktoken

    cache_dir = tmp_path_factory.mktemp("tiktoken-ref-cache")
    for name in T.VENDORED_ENCODINGS:
        key = hashlib.sha1(TIKTOKEN_URL.format(name=name).encode()).hexdigest()
        (cache_dir / key).write_bytes(gzip.decompress(T.vendored_bpe_path(name).read_bytes()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
        _block_network(mp)
        return {name: tiktoken.get_encoding(name) for name in T.VENDORED_ENCODINGS}


# ------------------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize(
    ("name", "sha256"),
    [
        ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
        ("cl100k_base", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    ],
)
def test_vendored_files_are_gzipped_and_match_tiktoken_hash(name: str, sha256: str) -> None:
    raw = T.vendored_bpe_path(name).read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == sha256


def test_import_is_lazy() -> None:
    code = "import sys, genops_cli.tokens; print('tiktoken' in sys.modules, 'haystack' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_get_encoding_is_cached(offline: Path) -> None:
    assert T.get_encoding("o200k_base") is T.get_encoding("o200k_base")
    assert T.get_encoding("o200k_base").name == "o200k_base"
    assert T.get_encoding("cl100k_base").n_vocab == 100277


def test_counting_works_offline_and_leaves_tiktoken_cache_alone(offline: Path) -> None:
    assert T.count_text_tokens("hello world", model="gpt-4o") == 2
    assert T.count_text_tokens("hello world", model="gpt-4") == 2
    assert T.count_message_tokens([{"role": "user", "content": "hi"}], model="gpt-3.5-turbo") == 8
    assert list(offline.iterdir()) == []


def test_tampered_file_fails_hash_check(tmp_path: Path) -> None:
    data = bytearray(gzip.decompress(T.vendored_bpe_path("cl100k_base").read_bytes()))
    data[100] ^= 0x01
    plain = tmp_path / "cl100k_base.tiktoken"
    plain.write_bytes(bytes(data))
    gz = tmp_path / "cl100k_base.tiktoken.gz"
    gz.write_bytes(gzip.compress(bytes(data)))
    for path in (plain, gz):
        with pytest.raises(T.TokenizerDataError, match="sha256 .* but tiktoken expects 223921b7"):
            T.load_encoding("cl100k_base", path=path)


def test_wrong_file_for_encoding_fails_hash_check() -> None:
    with pytest.raises(T.TokenizerDataError, match="tiktoken expects 446a9538"):
        T.load_encoding("o200k_base", path=T.vendored_bpe_path("cl100k_base"))


def test_untampered_copy_loads_from_explicit_path(tmp_path: Path, offline: Path) -> None:
    plain = tmp_path / "copy.tiktoken"
    plain.write_bytes(gzip.decompress(T.vendored_bpe_path("cl100k_base").read_bytes()))
    assert T.load_encoding("cl100k_base", path=plain).encode_ordinary("tiktoken is great!") == T.get_encoding(
        "cl100k_base"
    ).encode_ordinary("tiktoken is great!")


def test_missing_file_and_unknown_encoding(tmp_path: Path) -> None:
    with pytest.raises(T.TokenizerDataError, match="cannot read BPE file"):
        T.load_encoding("o200k_base", path=tmp_path / "nope.tiktoken.gz")
    with pytest.raises(T.TokenizerDataError, match="unknown encoding 'p50k_base'"):
        T.load_encoding("p50k_base")
    with pytest.raises(T.TokenizerDataError, match="no vendored BPE file"):
        T.vendored_bpe_path("r50k_base")


# ------------------------------------------------------------------------------------------------------ counts


@pytest.mark.parametrize(
    ("text", "cl100k", "o200k"),
    [
        ("hello world", 2, 2),
        ("tiktoken is great!", 6, 6),
        ("antidisestablishmentarianism", 6, 6),
        ("2 + 2 = 4", 7, 7),
        ("お誕生日おめでとう", 9, 8),
        ("", 0, 0),
    ],
)
def test_known_counts(text: str, cl100k: int, o200k: int) -> None:
    assert T.count_text_tokens(text, model="gpt-4") == cl100k
    assert T.count_text_tokens(text, model="gpt-4o") == o200k
    assert T.count_text_tokens(text) == o200k


@pytest.mark.parametrize("name", T.VENDORED_ENCODINGS)
def test_matches_tiktoken_own_encoding(name: str, reference_encodings: dict) -> None:
    ours = T.get_encoding(name)
    ref = reference_encodings[name]
    assert ours.n_vocab == ref.n_vocab
    assert ours._pat_str == ref._pat_str
    assert ours._special_tokens == ref._special_tokens
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
        assert ours.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("claude-sonnet-4-5", "o200k_base"),
        ("some-unknown-model", "o200k_base"),
        (None, "o200k_base"),
        ("", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("GPT-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::x", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
    ],
)
def test_encoding_name_for_model(model: str | None, encoding: str) -> None:
    assert T.encoding_name_for_model(model) == encoding


# ------------------------------------------------------------------------------------------------------ messages


def test_message_framing_arithmetic() -> None:
    enc = T.get_encoding("o200k_base")
    n = len
    assert T.count_message_tokens([]) == T.REPLY_PRIMING_TOKENS == 3
    # 3 per message + role ("user" = 1) + content ("hello world" = 2), plus 3 for the reply priming
    assert T.count_message_tokens([{"role": "user", "content": "hello world"}]) == 3 + 1 + 2 + 3
    two = [ChatMessage.from_system("be brief"), ChatMessage.from_user("hello world")]
    expected = 2 * 3 + n(enc.encode("system")) + n(enc.encode("be brief")) + 1 + 2 + 3
    assert T.count_message_tokens(two, model="gpt-4o") == expected
    named = [ChatMessage.from_user("hello world", name="bob")]
    assert T.count_message_tokens(named) == 3 + 1 + 2 + (1 + n(enc.encode("bob"))) + 3


@pytest.mark.parametrize(("model", "expected"), [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124)])
def test_cookbook_published_message_counts(model: str, expected: int) -> None:
    assert T.count_message_tokens(COOKBOOK_MESSAGES, model=model) == expected
    as_chat_messages = [
        ChatMessage.from_system(m["content"], name=m.get("name"))
        if m["role"] == "system"
        else ChatMessage.from_user(m["content"])
        for m in COOKBOOK_MESSAGES
    ]
    assert T.count_message_tokens(as_chat_messages, model=model) == expected


def test_tool_calls_and_results_are_counted() -> None:
    enc = T.get_encoding("o200k_base")

    def n(text: str) -> int:
        return len(enc.encode(text))

    args = {"city": "Berlin", "units": "metric"}
    call = ToolCall(tool_name="get_weather", arguments=args, id="call_1")
    assistant = ChatMessage.from_assistant(None, tool_calls=[call])  # text is None
    assert assistant.text is None
    assert T.count_message_tokens([assistant]) == 3 + n("assistant") + n("get_weather") + n(json.dumps(args)) + 3

    result = ChatMessage.from_tool("18 degrees and sunny", origin=call)
    assert T.count_message_tokens([result]) == 3 + n("tool") + n("18 degrees and sunny") + 3

    conversation = [ChatMessage.from_user("Weather in Berlin?"), assistant, result]
    total = T.count_message_tokens(conversation)
    assert total == sum(T.count_message_tokens([m]) for m in conversation) - 2 * T.REPLY_PRIMING_TOKENS
    # The same conversation as OpenAI wire dicts and as Haystack to_dict() dicts counts the same.
    assert T.count_message_tokens([m.to_openai_dict_format() for m in conversation]) == total
    assert T.count_message_tokens([m.to_dict() for m in conversation]) == total


def test_dict_content_parts_and_missing_content() -> None:
    parts = {
        "role": "user",
        "content": [
            {"type": "text", "text": "hello"},
            {"type": "image_url", "image_url": {"url": "data:..."}},
            {"type": "text", "text": " world"},
        ],
    }
    assert T.count_message_tokens([parts]) == 3 + 1 + 1 + 1 + 3
    assert T.count_message_tokens([{"role": "assistant", "content": None}]) == 3 + 1 + 3


# ------------------------------------------------------------------------------------------------------ estimates


def test_openai_models_are_exact() -> None:
    messages = [ChatMessage.from_user("hello world")]
    assert T.estimate_input_tokens(messages, model="gpt-4o", provider="openai") == (9, False)
    assert T.estimate_input_tokens("tiktoken is great!", model="gpt-4", provider="azure") == (6, False)
    assert T.estimate_input_tokens("hello world", model="gpt-4o-mini") == T.TokenEstimate(2, False)


def test_claude_safety_factor() -> None:
    assert T.CLAUDE_SAFETY_FACTOR == Decimal("1.15")
    assert T.OTHER_PROVIDER_SAFETY_FACTOR == Decimal("1.10")
    # "hello world" = 2 o200k tokens -> ceil(2 * 1.15) = 3
    assert T.estimate_input_tokens("hello world", model="claude-sonnet-4-5", provider="anthropic") == (3, True)
    # 9 framed tokens -> ceil(10.35) = 11; provider alone or a Bedrock id is enough to detect Claude
    messages = [{"role": "user", "content": "hello world"}]
    assert T.estimate_input_tokens(messages, model="claude-3-5-haiku-latest") == (11, True)
    assert T.estimate_input_tokens(messages, model="some-model", provider="anthropic") == (11, True)
    bedrock = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert T.estimate_input_tokens(messages, model=bedrock, provider="bedrock") == (11, True)
    text = "The quick brown fox jumps over the lazy dog. " * 20
    tokens, is_estimate = T.estimate_input_tokens(text, model="claude-opus-4-1")
    assert is_estimate and tokens == -(-T.count_text_tokens(text) * 115 // 100)


def test_other_provider_safety_factor_uses_exact_decimal_rounding() -> None:
    text = "hello" + " hello" * 9
    assert T.count_text_tokens(text) == 10
    # 10 * 1.10 is exactly 11 (a float product would give 11.000000000000002 and ceil to 12)
    assert T.estimate_input_tokens(text, model="gemini-2.5-flash", provider="google") == (11, True)
    assert T.estimate_input_tokens("hello world", model="llama3.1:8b", provider="ollama") == (3, True)
    # OpenAI model names on a non-OpenAI provider, or unknown models anywhere, are estimates too
    assert T.estimate_input_tokens(text, model="gpt-oss-20b", provider="groq") == (11, True)
    assert T.estimate_input_tokens(text, model="my-azure-deployment", provider="azure") == (11, True)
    assert T.estimate_input_tokens(text, model=None) == (11, True)
