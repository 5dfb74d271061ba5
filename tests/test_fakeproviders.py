"""Tests of the loopback fake providers, driven by the real SDKs and the real, unmodified Haystack components."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest
from fakeproviders import FakeAnthropic, FakeOpenAI, RecordedRequest, ScriptedReply, ToolCallSpec, reply, tool_call
from haystack.components.agents import Agent
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.components.generators.chat import OpenAIChatGenerator, OpenAIResponsesChatGenerator
from haystack.dataclasses import ChatMessage, Document, StreamingChunk
from haystack.tools import Tool
from haystack_integrations.components.generators.anthropic import AnthropicChatGenerator

OPENAI_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 30, "reasoning_tokens": 5}
ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "output_tokens": 12,
    "cache_read_input_tokens": 40,
    "cache_creation_input_tokens": 10,
}


@pytest.fixture
def oai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A running FakeOpenAI with the OpenAI env vars pointing at it."""
    with FakeOpenAI(model_map={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def ant(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A running FakeAnthropic with the Anthropic env vars pointing at it."""
    with FakeAnthropic(model_map={"claude-haiku-4-5": "claude-haiku-4-5-20251001"}) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def _weather_tool() -> Tool:
    return Tool(
        name="get_weather",
        description="Current weather in a city.",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        function=lambda city: f"Sunny in {city}",
    )


# ----------------------------------------------------------------------------------------------------------------------
# OpenAI chat completions
# ----------------------------------------------------------------------------------------------------------------------


def test_openai_chat_generator_usage_and_dated_model(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.script = ["Hello there."]
    gen = OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0)
    assert gen.api_base_url is None  # the client reads OPENAI_BASE_URL

    out = gen.run([ChatMessage.from_user("Say hello")])

    (msg,) = out["replies"]
    assert msg.text == "Hello there."
    assert msg.meta["model"] == "gpt-4o-mini-2024-07-18"
    assert msg.meta["finish_reason"] == "stop"
    usage = msg.meta["usage"]
    assert usage["prompt_tokens"] == 100
    assert usage["completion_tokens"] == 20
    assert usage["total_tokens"] == 120
    assert usage["prompt_tokens_details"]["cached_tokens"] == 30
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 5

    req = oai.last_request("/chat/completions")
    assert req is not None and req.body["model"] == "gpt-4o-mini"
    assert req.headers["authorization"] == "<redacted>"
    assert oai.count("/chat/completions") == 1


def test_openai_default_reply_and_estimated_usage(oai: FakeOpenAI) -> None:
    gen = OpenAIChatGenerator(model="gpt-4o", max_retries=0)
    msg = gen.run([ChatMessage.from_user("What is the capital of France, in one word please?")])["replies"][0]
    assert msg.text == "fake reply to: What is the capital of France, in one wo"
    assert msg.meta["model"] == "gpt-4o"  # unmapped: echoed
    assert msg.meta["usage"]["prompt_tokens"] > 0
    # deterministic: the same request gets the same usage
    again = gen.run([ChatMessage.from_user("What is the capital of France, in one word please?")])["replies"][0]
    assert again.meta["usage"] == msg.meta["usage"]


def test_openai_per_model_and_per_reply_usage(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.model_usage = {"gpt-4o": {"prompt_tokens": 7}}
    oai.script = ["a", reply("b", usage={"completion_tokens": 3})]
    small = OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0)
    big = OpenAIChatGenerator(model="gpt-4o", max_retries=0)
    u1 = small.run([ChatMessage.from_user("x")])["replies"][0].meta["usage"]
    u2 = big.run([ChatMessage.from_user("x")])["replies"][0].meta["usage"]
    assert (u1["prompt_tokens"], u1["completion_tokens"]) == (100, 20)
    assert (u2["prompt_tokens"], u2["completion_tokens"]) == (7, 3)


def test_openai_streaming_with_include_usage(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.script = ["The quick brown fox."]
    chunks: list[StreamingChunk] = []
    gen = OpenAIChatGenerator(
        model="gpt-4o-mini",
        streaming_callback=chunks.append,
        generation_kwargs={"stream_options": {"include_usage": True}},
        max_retries=0,
    )
    msg = gen.run([ChatMessage.from_user("Tell me about foxes")])["replies"][0]

    assert msg.text == "The quick brown fox."
    assert "".join(c.content for c in chunks) == "The quick brown fox."
    assert len(chunks) > 3
    assert msg.meta["model"] == "gpt-4o-mini-2024-07-18"
    assert msg.meta["finish_reason"] == "stop"
    assert msg.meta["usage"]["prompt_tokens"] == 100
    assert msg.meta["usage"]["completion_tokens"] == 20
    assert msg.meta["usage"]["prompt_tokens_details"]["cached_tokens"] == 30
    body = oai.last_request("/chat/completions").body  # type: ignore[union-attr]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_openai_streaming_without_include_usage_has_no_usage(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    chunks: list[StreamingChunk] = []
    gen = OpenAIChatGenerator(model="gpt-4o-mini", streaming_callback=chunks.append, max_retries=0)
    msg = gen.run([ChatMessage.from_user("hi")])["replies"][0]
    assert msg.text == "fake reply to: hi"
    assert msg.meta.get("usage") is None
    assert all(c.meta.get("usage") is None for c in chunks)


def test_openai_n_choices_share_one_usage(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    gen = OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"n": 3}, max_retries=0)
    replies = gen.run([ChatMessage.from_user("hi")])["replies"]
    assert len(replies) == 3
    assert [r.meta["index"] for r in replies] == [0, 1, 2]
    assert all(r.meta["usage"]["prompt_tokens"] == 100 for r in replies)
    assert oai.request_count == 1


def test_openai_tool_call_then_text(oai: FakeOpenAI) -> None:
    oai.script = [tool_call("get_weather", {"city": "Paris"}), "It is sunny in Paris."]
    gen = OpenAIChatGenerator(model="gpt-4o-mini", tools=[_weather_tool()], max_retries=0)

    first = gen.run([ChatMessage.from_user("Weather in Paris?")])["replies"][0]
    assert first.meta["finish_reason"] == "tool_calls"
    (call,) = first.tool_calls
    assert call.tool_name == "get_weather"
    assert call.arguments == {"city": "Paris"}
    assert call.id

    second = gen.run([ChatMessage.from_user("Weather in Paris?")])["replies"][0]
    assert second.text == "It is sunny in Paris."
    assert second.tool_calls == []
    sent_tools = oai.last_request("/chat/completions").body["tools"]  # type: ignore[union-attr]
    assert sent_tools[0]["function"]["name"] == "get_weather"


def test_openai_streaming_tool_call(oai: FakeOpenAI) -> None:
    oai.script = [
        ScriptedReply(
            tool_calls=[ToolCallSpec("get_weather", {"city": "Rome"}), ToolCallSpec("get_weather", {"city": "Oslo"})]
        )
    ]
    gen = OpenAIChatGenerator(
        model="gpt-4o-mini",
        tools=[_weather_tool()],
        streaming_callback=lambda _chunk: None,
        generation_kwargs={"stream_options": {"include_usage": True}},
        max_retries=0,
    )
    msg = gen.run([ChatMessage.from_user("Weather?")])["replies"][0]
    assert [(c.tool_name, c.arguments) for c in msg.tool_calls] == [
        ("get_weather", {"city": "Rome"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert msg.meta["finish_reason"] == "tool_calls"
    assert msg.meta["usage"]["completion_tokens"] > 0


def test_agent_tool_loop_against_fake(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.script = [{"tool_call": {"name": "get_weather", "arguments": {"city": "Lima"}}}, "Lima is sunny."]
    agent = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0), tools=[_weather_tool()])
    result = agent.run(messages=[ChatMessage.from_user("Weather in Lima?")])

    assert result["last_message"].text == "Lima is sunny."
    assert oai.count("/chat/completions") == 2
    # the second request carries the tool result back to the model
    second = oai.bodies("/chat/completions")[1]
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages and "Sunny in Lima" in tool_messages[0]["content"]


def test_openai_async_generator(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.script = ["async hello"]
    gen = OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0)

    async def go() -> ChatMessage:
        try:
            return (await gen.run_async([ChatMessage.from_user("hi")]))["replies"][0]
        finally:
            await gen.close_async()

    msg = asyncio.run(go())
    assert msg.text == "async hello"
    assert msg.meta["usage"]["prompt_tokens"] == 100


# ----------------------------------------------------------------------------------------------------------------------
# OpenAI responses and embeddings
# ----------------------------------------------------------------------------------------------------------------------


def test_openai_responses_generator_usage(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.script = ["Responses hello."]
    gen = OpenAIResponsesChatGenerator(model="gpt-4o-mini", max_retries=0)
    msg = gen.run([ChatMessage.from_user("hi")])["replies"][0]

    assert msg.text == "Responses hello."
    assert msg.meta["model"] == "gpt-4o-mini-2024-07-18"
    usage = msg.meta["usage"]
    assert usage["input_tokens"] == 100
    assert usage["output_tokens"] == 20
    assert usage["total_tokens"] == 120
    assert usage["input_tokens_details"]["cached_tokens"] == 30
    assert usage["output_tokens_details"]["reasoning_tokens"] == 5
    assert oai.count("/responses") == 1


def test_openai_responses_streaming_and_tool_call(oai: FakeOpenAI) -> None:
    oai.usage = dict(OPENAI_USAGE)
    oai.script = ["Streamed responses text.", tool_call("get_weather", {"city": "Kyiv"})]
    chunks: list[StreamingChunk] = []
    gen = OpenAIResponsesChatGenerator(
        model="gpt-4o-mini", streaming_callback=chunks.append, tools=[_weather_tool()], max_retries=0
    )

    msg = gen.run([ChatMessage.from_user("hi")])["replies"][0]
    assert msg.text == "Streamed responses text."
    assert msg.meta["usage"]["input_tokens"] == 100
    assert msg.meta["usage"]["output_tokens_details"]["reasoning_tokens"] == 5

    msg = gen.run([ChatMessage.from_user("weather?")])["replies"][0]
    assert [(c.tool_name, c.arguments) for c in msg.tool_calls] == [("get_weather", {"city": "Kyiv"})]
    assert msg.meta["finish_reason"] == "tool_calls"


def test_openai_text_embedder(oai: FakeOpenAI) -> None:
    oai.embedding_tokens = 9
    embedder = OpenAITextEmbedder(model="text-embedding-3-small", dimensions=32)
    out = embedder.run(text="hello embeddings")
    assert len(out["embedding"]) == 32
    assert out["meta"]["model"] == "text-embedding-3-small"
    assert out["meta"]["usage"] == {"prompt_tokens": 9, "total_tokens": 9}
    # deterministic vectors; the default size applies without `dimensions`
    assert embedder.run(text="hello embeddings")["embedding"] == out["embedding"]
    plain = OpenAITextEmbedder(model="text-embedding-3-small").run(text="hello embeddings")
    assert len(plain["embedding"]) == oai.embedding_dim


def test_openai_document_embedder_batches(oai: FakeOpenAI) -> None:
    embedder = OpenAIDocumentEmbedder(model="text-embedding-3-small", dimensions=8, batch_size=2, progress_bar=False)
    docs = [Document(content=f"doc {i}") for i in range(3)]
    out = embedder.run(documents=docs)
    assert all(len(d.embedding) == 8 for d in out["documents"])
    assert oai.count("/embeddings") == 2
    assert out["meta"]["usage"]["prompt_tokens"] > 0


def test_openai_embeddings_base64(oai: FakeOpenAI) -> None:
    client = openai.OpenAI(max_retries=0)
    as_float = client.embeddings.create(model="m", input="abc", dimensions=4, encoding_format="float")
    as_b64 = client.embeddings.create(model="m", input="abc", dimensions=4, encoding_format="base64")
    assert isinstance(as_b64.data[0].embedding, str)
    decoded = struct.unpack("<4f", base64.b64decode(as_b64.data[0].embedding))
    assert decoded == pytest.approx(as_float.data[0].embedding, rel=1e-6)


def test_openai_models_list(oai: FakeOpenAI) -> None:
    oai.models = ["gpt-4o-mini", "gpt-4o"]
    ids = [m.id for m in openai.OpenAI(max_retries=0).models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4o"]


# ----------------------------------------------------------------------------------------------------------------------
# Anthropic
# ----------------------------------------------------------------------------------------------------------------------


def _check_anthropic_usage(usage: dict) -> None:
    assert usage["completion_tokens"] == 12
    assert usage["cache_read_input_tokens"] == 40
    assert usage["cache_creation_input_tokens"] == 10
    # anthropic-haystack folds cache reads and writes into prompt_tokens (older releases did not)
    assert usage["prompt_tokens"] in (50, 100)


def test_anthropic_generator_usage(ant: FakeAnthropic) -> None:
    ant.usage = dict(ANTHROPIC_USAGE)
    ant.script = ["Bonjour."]
    gen = AnthropicChatGenerator(model="claude-haiku-4-5", max_retries=0)
    msg = gen.run([ChatMessage.from_system("Be brief."), ChatMessage.from_user("Say hi")])["replies"][0]

    assert msg.text == "Bonjour."
    assert msg.meta["model"] == "claude-haiku-4-5-20251001"
    assert msg.meta["finish_reason"] == "stop"
    _check_anthropic_usage(msg.meta["usage"])
    req = ant.last_request("/v1/messages")
    assert req is not None and req.body["system"]
    # the SDK sends the key as x-api-key or as a bearer token, depending on its version: either way it is redacted
    assert "<redacted>" in (req.headers.get("x-api-key"), req.headers.get("authorization"))


def test_anthropic_raw_sdk_usage(ant: FakeAnthropic) -> None:
    ant.usage = dict(ANTHROPIC_USAGE)
    client = anthropic.Anthropic(max_retries=0)
    msg = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert msg.model == "claude-haiku-4-5-20251001"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (50, 12)
    assert (msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (40, 10)


def test_anthropic_generator_streaming(ant: FakeAnthropic) -> None:
    ant.usage = dict(ANTHROPIC_USAGE)
    ant.script = ["Streaming from the fake Claude."]
    chunks: list[StreamingChunk] = []
    gen = AnthropicChatGenerator(model="claude-haiku-4-5", streaming_callback=chunks.append, max_retries=0)
    msg = gen.run([ChatMessage.from_user("stream please")])["replies"][0]

    assert msg.text == "Streaming from the fake Claude."
    assert "".join(c.content for c in chunks) == "Streaming from the fake Claude."
    assert msg.meta["model"] == "claude-haiku-4-5-20251001"
    _check_anthropic_usage(msg.meta["usage"])


def test_anthropic_streaming_with_output_only_delta_usage(ant: FakeAnthropic) -> None:
    ant.usage = dict(ANTHROPIC_USAGE)
    ant.stream_delta_full_usage = False
    gen = AnthropicChatGenerator(model="claude-haiku-4-5", streaming_callback=lambda _c: None, max_retries=0)
    _check_anthropic_usage(gen.run([ChatMessage.from_user("x")])["replies"][0].meta["usage"])


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use(ant: FakeAnthropic, stream: bool) -> None:
    ant.script = [tool_call("get_weather", {"city": "Cairo"}, text="Let me check.")]
    gen = AnthropicChatGenerator(
        model="claude-haiku-4-5",
        tools=[_weather_tool()],
        streaming_callback=(lambda _c: None) if stream else None,
        max_retries=0,
    )
    msg = gen.run([ChatMessage.from_user("Weather in Cairo?")])["replies"][0]
    assert [(c.tool_name, c.arguments) for c in msg.tool_calls] == [("get_weather", {"city": "Cairo"})]
    assert msg.tool_calls[0].id.startswith("toolu_")
    assert msg.meta["finish_reason"] == "tool_calls"


# ----------------------------------------------------------------------------------------------------------------------
# Failures, latency, recording, lifecycle
# ----------------------------------------------------------------------------------------------------------------------


def test_openai_429_surfaces_as_rate_limit_error(oai: FakeOpenAI) -> None:
    oai.failures = [{"status": 429, "retry_after": 0.1}]
    gen = OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        gen.run([ChatMessage.from_user("hi")])
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after-ms"] == "100"
    # the failure was consumed: the next call succeeds
    assert gen.run([ChatMessage.from_user("hi")])["replies"][0].text == "fake reply to: hi"
    assert oai.request_count == 2


def test_openai_retry_honours_failures(oai: FakeOpenAI) -> None:
    oai.failures = [{"status": 429, "retry_after": 0.01}, {"status": 500, "retry_after": 0.01}]
    gen = OpenAIChatGenerator(model="gpt-4o-mini", max_retries=2)
    assert gen.run([ChatMessage.from_user("hi")])["replies"][0].text == "fake reply to: hi"
    assert oai.count("/chat/completions") == 3
    assert [r.headers["x-stainless-retry-count"] for r in oai.requests] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (500, openai.InternalServerError),
    ],
)
def test_openai_error_statuses(oai: FakeOpenAI, status: int, error: type[Exception]) -> None:
    oai.add_failure(status)
    with pytest.raises(error):
        OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0).run([ChatMessage.from_user("hi")])


def test_openai_failure_path_filter(oai: FakeOpenAI) -> None:
    oai.add_failure(500, path="/embeddings")
    assert OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0).run("hi")["replies"]
    with pytest.raises(openai.InternalServerError):
        OpenAITextEmbedder(model="text-embedding-3-small", max_retries=0).run(text="x")


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_anthropic_error_statuses(ant: FakeAnthropic, status: int, error: type[Exception], error_type: str) -> None:
    ant.failures = [{"status": status}]
    gen = AnthropicChatGenerator(model="claude-haiku-4-5", max_retries=0)
    with pytest.raises(error) as info:
        gen.run([ChatMessage.from_user("hi")])
    assert info.value.body["error"]["type"] == error_type  # type: ignore[attr-defined]
    assert info.value.body["type"] == "error"  # type: ignore[attr-defined]


def test_delay_provokes_client_timeout(oai: FakeOpenAI) -> None:
    oai.failures = [{"delay": 5.0}]
    gen = OpenAIChatGenerator(model="gpt-4o-mini", timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        gen.run([ChatMessage.from_user("hi")])
    assert time.monotonic() - started < 3
    # the server is still healthy for the next request
    assert OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0).run("hi")["replies"]


def test_disconnect_is_a_connection_error(ant: FakeAnthropic) -> None:
    ant.failures = [{"disconnect": True}]
    with pytest.raises(anthropic.APIConnectionError):
        AnthropicChatGenerator(model="claude-haiku-4-5", max_retries=0).run([ChatMessage.from_user("hi")])


def test_latency_is_applied(oai: FakeOpenAI) -> None:
    oai.latency = 0.2
    started = time.monotonic()
    OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0).run("hi")
    assert time.monotonic() - started >= 0.2


def test_expected_api_key(oai: FakeOpenAI) -> None:
    oai.expected_api_key = "sk-other"
    with pytest.raises(openai.AuthenticationError):
        OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0).run("hi")


def test_unknown_usage_key_is_reported(oai: FakeOpenAI) -> None:
    oai.usage = {"cache_read_input_tokens": 3}
    with pytest.raises(openai.InternalServerError, match="unknown OpenAI usage key"):
        OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0).run("hi")


def test_recording_count_and_reset(oai: FakeOpenAI) -> None:
    oai.script = ["one", "two", "three"]
    oai.failures = [{"status": 500}]
    client = openai.OpenAI(max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}])
    assert oai.script == ["one", "two", "three"]  # the failing request consumed the failure, not the script
    client.embeddings.create(model="text-embedding-3-small", input="x")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}])
    assert isinstance(oai.requests[1], RecordedRequest)
    path, body, headers = oai.requests[1]
    assert path == "/v1/embeddings" and body["input"] == "x" and headers["authorization"] == "<redacted>"
    assert oai.request_count == 3
    assert oai.count("/embeddings") == 1 and oai.count("/chat/completions") == 2 and oai.count() == 3
    assert oai.script == ["two", "three"]
    oai.reset()
    assert (oai.request_count, oai.script, oai.failures) == (0, [], [])


def test_callable_script_items_and_responder(oai: FakeOpenAI) -> None:
    oai.script = [lambda body: f"saw {len(body['messages'])} messages"]
    oai.responder = lambda body: "from responder"
    gen = OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0)
    assert gen.run([ChatMessage.from_system("s"), ChatMessage.from_user("u")])["replies"][0].text == "saw 2 messages"
    assert gen.run("u")["replies"][0].text == "from responder"


def test_concurrent_requests(oai: FakeOpenAI) -> None:
    oai.script = [f"reply {i}" for i in range(24)]
    client = openai.OpenAI(max_retries=0)

    def call(i: int) -> str:
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": str(i)}])
        return r.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(call, range(24)))
    assert sorted(texts) == sorted(f"reply {i}" for i in range(24))
    assert oai.request_count == 24
    assert oai.script == []


def test_stop_is_prompt_with_idle_keepalive_and_sleeping_requests() -> None:
    server = FakeOpenAI().start()
    port = server.port
    client = openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])  # leaves a keep-alive conn
    server.failures = [{"delay": 30.0}]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            client.chat.completions.create, model="m", messages=[{"role": "user", "content": "y"}], timeout=10
        )
        deadline = time.monotonic() + 2
        while server.request_count < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(openai.APIConnectionError):
            pending.result(timeout=5)
    server.stop()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_raw_http_and_context_manager() -> None:
    with FakeAnthropic() as server:
        req = urllib.request.Request(
            f"{server.base_url}/v1/messages",
            data=json.dumps(
                {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hey"}]}
            ).encode(),
            headers={"content-type": "application/json", "x-api-key": "k"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            payload = json.loads(resp.read())
        assert payload["type"] == "message"
        assert payload["content"] == [{"type": "text", "text": "fake reply to: hey"}]
        assert resp.headers["request-id"].startswith("req_")
    assert not server.running
