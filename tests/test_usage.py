"""Usage normalization per integration (genops_cli.tracking.usage).

Fixtures mirror what each integration really puts in `ChatMessage.meta`: the OpenAI, OpenAI Responses and Anthropic
ones were produced by running the installed converters on SDK objects (and the `test_live_*` tests re-run them, so a
changed shape fails here first); Bedrock, Google GenAI, Cohere and Ollama ones follow their integration's source in
deepset-ai/haystack-core-integrations.
"""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
from haystack.dataclasses import ChatMessage

from genops_cli.models import TokenUsage
from genops_cli.tracking.usage import (
    LOCAL_PROVIDERS,
    ExtractedUsage,
    extract_usage,
    installed_anthropic_prompt_includes_cache,
    is_embedder,
    is_llm_component,
    normalize_usage,
    provider_for,
)

# --------------------------------------------------------------------------------------------------------------------
# Real meta shapes

# haystack.components.generators.chat.openai._convert_chat_completion_to_chat_message, openai 3.54
OPENAI_META = {
    "model": "gpt-4o-mini-2024-07-18",
    "index": 0,
    "finish_reason": "stop",
    "usage": {
        "completion_tokens": 300,
        "prompt_tokens": 1200,
        "total_tokens": 1500,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": 0,
            "rejected_prediction_tokens": 0,
            "text_tokens": None,
        },
        "prompt_tokens_details": {
            "audio_tokens": 0,
            "cache_write_tokens": None,
            "cached_tokens": 1024,
            "image_tokens": None,
            "text_tokens": None,
        },
    },
}

# OpenAI streaming with stream_options.include_usage: details are None.
OPENAI_STREAM_META = {
    "model": "gpt-4o-mini-2024-07-18",
    "index": 0,
    "finish_reason": "stop",
    "completion_start_time": "2026-11-24T06:56:41.967065",
    "usage": {
        "completion_tokens": 2,
        "prompt_tokens": 9,
        "total_tokens": 11,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    },
}

# ... and without include_usage: usage is None.
OPENAI_STREAM_NO_USAGE_META = {
    "model": "gpt-4o-mini-2024-07-18",
    "index": 0,
    "finish_reason": "stop",
    "completion_start_time": "2026-11-24T06:56:41.966911",
    "usage": None,
}

# haystack.components.generators.chat.openai_responses._convert_response_to_chat_message (Response.to_dict()
# minus "output")
OPENAI_RESPONSES_META = {
    "id": "resp_1",
    "created_at": 1.0,
    "model": "o4-mini-2025-04-16",
    "object": "response",
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "status": "completed",
    "usage": {
        "input_tokens": 2000,
        "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": 1536},
        "output_tokens": 900,
        "output_tokens_details": {"reasoning_tokens": 640},
        "total_tokens": 2900,
    },
    "finish_reason": "stop",
}

# anthropic-haystack 8.0.1 _convert_chat_completion_to_chat_message: prompt_tokens = 12 + 3000 + 500 (inclusive).
ANTHROPIC_META = {
    "model": "claude-sonnet-4-20250514",
    "index": 0,
    "finish_reason": "stop",
    "usage": {
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 500},
        "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 3000,
        "inference_geo": None,
        "output_tokens_details": None,
        "server_tool_use": None,
        "service_tier": "standard",
        "speed": None,
        "prompt_tokens": 3512,
        "completion_tokens": 250,
    },
}

# amazon-bedrock-haystack _parse_completion_response: Converse inputTokens is net of the cache, totalTokens is not.
BEDROCK_META = {
    "model": "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "index": 0,
    "finish_reason": "stop",
    "usage": {
        "prompt_tokens": 4,
        "completion_tokens": 300,
        "total_tokens": 2354,
        "cache_read_input_tokens": 2050,
        "cache_write_input_tokens": 0,
        "cache_details": {},
    },
}

# google-genai-haystack _convert_google_genai_response_to_chatmessage: completion_tokens excludes thoughts.
GOOGLE_META = {
    "model": "gemini-2.5-flash",
    "finish_reason": "stop",
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "total_tokens": 1500,
        "thoughts_token_count": 300,
        "cached_content_token_count": 600,
        "prompt_token_count": 1000,
        "candidates_token_count": 200,
        "total_token_count": 1500,
        "cache_tokens_details": [{"modality": "TEXT", "token_count": 600}],
        "prompt_tokens_details": [{"modality": "TEXT", "token_count": 1000}],
    },
}

# cohere-haystack CohereChatGenerator _parse_response: usage from billed_units (floats in the SDK).
COHERE_META = {
    "model": "command-r-08-2024",
    "index": 0,
    "finish_reason": "COMPLETE",
    "citations": None,
    "usage": {"prompt_tokens": 57.0, "completion_tokens": 31.0},
}

# ollama-haystack _convert_ollama_meta_to_openai_format
OLLAMA_META = {
    "model": "phi4:14b-q4_K_M",
    "finish_reason": "stop",
    "completion_start_time": "2025-03-09T18:38:33.004185821Z",
    "done": True,
    "total_duration": 86627206961,
    "load_duration": 23585622554,
    "prompt_eval_duration": 3426000000,
    "eval_duration": 4799921000,
    "usage": {"completion_tokens": 298, "prompt_tokens": 26, "total_tokens": 324},
}

# HuggingFaceLocalChatGenerator
HF_LOCAL_META = {
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "finish_reason": "stop",
    "index": 0,
    "usage": {"completion_tokens": 20, "prompt_tokens": 30, "total_tokens": 50},
}


def reply(meta: dict, text: str = "ok") -> ChatMessage:
    return ChatMessage.from_assistant(text, meta=copy.deepcopy(meta))


def counts(usage: TokenUsage) -> tuple[int, int, int, int, int, str]:
    """(input, cache_read, cache_write, output, reasoning, source)"""
    return (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.source,
    )


def extract(output, **kwargs) -> ExtractedUsage:
    result = extract_usage(output, **kwargs)
    assert result is not None
    return result


# --------------------------------------------------------------------------------------------------------------------
# OpenAI


def test_openai_chat_generator_reply():
    result = extract({"replies": [reply(OPENAI_META)]})
    assert counts(result.usage) == (1200, 1024, 0, 300, 0, "reported")
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.finish_reasons == ["stop"]
    assert result.documents is None
    assert result.usage.raw == OPENAI_META["usage"]


def test_openai_n_greater_than_one_is_counted_once():
    second = copy.deepcopy(OPENAI_META)
    second["index"], second["finish_reason"] = 1, "length"
    third = copy.deepcopy(OPENAI_META)
    third["index"] = 2
    result = extract({"replies": [reply(OPENAI_META, "a"), reply(second, "b"), reply(third, "c")]})
    assert counts(result.usage) == (1200, 1024, 0, 300, 0, "reported")
    assert result.finish_reasons == ["stop", "length", "stop"]


def test_openai_reasoning_tokens_stay_inside_output():
    meta = copy.deepcopy(OPENAI_META)
    meta["model"] = "o3-mini-2025-01-31"
    meta["usage"].update(prompt_tokens=150, completion_tokens=800, total_tokens=950)
    meta["usage"]["prompt_tokens_details"]["cached_tokens"] = 0
    meta["usage"]["completion_tokens_details"]["reasoning_tokens"] = 512
    assert counts(extract({"replies": [reply(meta)]}).usage) == (150, 0, 0, 800, 512, "reported")


def test_openai_cache_write_tokens_are_inside_prompt_tokens():
    meta = copy.deepcopy(OPENAI_META)
    meta["usage"]["prompt_tokens_details"].update(cached_tokens=0, cache_write_tokens=1100)
    assert counts(extract({"replies": [reply(meta)]}).usage) == (1200, 0, 1100, 300, 0, "reported")


def test_openai_streaming_with_include_usage_has_none_details():
    assert counts(extract({"replies": [reply(OPENAI_STREAM_META)]}).usage) == (9, 0, 0, 2, 0, "reported")


def test_openai_streaming_without_usage_is_missing_but_keeps_model():
    result = extract({"replies": [reply(OPENAI_STREAM_NO_USAGE_META)]})
    assert counts(result.usage) == (0, 0, 0, 0, 0, "missing")
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.finish_reasons == ["stop"]


def test_openai_responses_generator():
    result = extract({"replies": [reply(OPENAI_RESPONSES_META)]})
    assert counts(result.usage) == (2000, 1536, 0, 900, 640, "reported")
    assert result.model == "o4-mini-2025-04-16"


def test_usage_as_pydantic_object_and_plain_object():
    from openai.types import CompletionUsage

    usage_object = CompletionUsage.model_validate(OPENAI_META["usage"])
    result = extract({"replies": [ChatMessage.from_assistant("x", meta={"model": "gpt-4o", "usage": usage_object})]})
    assert counts(result.usage) == (1200, 1024, 0, 300, 0, "reported")
    json.dumps(result.usage.raw)

    plain = SimpleNamespace(prompt_tokens=7, completion_tokens=3, prompt_tokens_details=None)
    result = extract({"replies": [ChatMessage.from_assistant("x", meta={"model": "gpt-4o", "usage": plain})]})
    assert counts(result.usage) == (7, 0, 0, 3, 0, "reported")


# --------------------------------------------------------------------------------------------------------------------
# Serialized replies, legacy generators, agent steps


def test_dict_serialized_replies():
    replies = [reply(OPENAI_META).to_dict(), reply(OPENAI_META).to_dict()]
    assert "meta" in replies[0]
    result = extract({"replies": replies})
    assert counts(result.usage) == (1200, 1024, 0, 300, 0, "reported")
    assert result.model == "gpt-4o-mini-2024-07-18"


def test_old_style_serialized_reply_with_underscore_meta():
    old = {"_role": "assistant", "_content": [{"text": "hi"}], "_meta": copy.deepcopy(HF_LOCAL_META)}
    assert counts(extract({"replies": [old]}).usage) == (30, 0, 0, 20, 0, "reported")


def test_json_string_output():
    output = json.dumps({"replies": [reply(OPENAI_META).to_dict()]})
    assert counts(extract(output).usage) == (1200, 1024, 0, 300, 0, "reported")


def test_legacy_generator_meta_list_counted_once():
    meta = {
        "model": "gpt-3.5-turbo-instruct",
        "index": 0,
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 16, "completion_tokens": 40, "total_tokens": 56},
    }
    second = {**meta, "index": 1, "finish_reason": "length"}
    result = extract({"replies": ["first", "second"], "meta": [meta, second]})
    assert counts(result.usage) == (16, 0, 0, 40, 0, "reported")
    assert result.model == "gpt-3.5-turbo-instruct"
    assert result.finish_reasons == ["stop", "length"]


def test_distinct_usage_blocks_are_summed_as_separate_calls():
    first = {"model": "gpt-4o", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
    second = {"model": "gpt-4o", "usage": {"prompt_tokens": 20, "completion_tokens": 7}}
    result = extract({"replies": [reply(first), reply(second)]})
    assert counts(result.usage) == (30, 0, 0, 12, 0, "reported")
    assert result.usage.raw == {"calls": [first["usage"], second["usage"]]}


def test_agent_step_llm_output():
    step_output = {"replies": [ChatMessage.from_assistant(text=None, meta=copy.deepcopy(ANTHROPIC_META))]}
    assert counts(extract(step_output).usage) == (3512, 3000, 500, 250, 0, "reported")


def test_agent_aggregated_output_is_not_counted():
    agent_output = {
        "messages": [ChatMessage.from_user("q"), reply(OPENAI_META)],
        "last_message": reply(OPENAI_META),
        "token_usage": {"prompt_tokens": 1200, "completion_tokens": 300},
    }
    assert extract_usage(agent_output) is None


def test_outputs_without_usage_or_model_give_none():
    assert extract_usage({"prompt": "Answer: {{q}}"}) is None
    assert extract_usage({"replies": [ChatMessage.from_assistant("no meta")]}) is None
    assert extract_usage({"replies": ["plain text"]}) is None
    assert extract_usage({}) is None


def test_retriever_documents_are_counted_without_usage():
    from haystack import Document

    result = extract({"documents": [Document(content="a"), Document(content="b"), Document(content="c")]})
    assert result.documents == 3
    assert result.usage.source == "none"
    assert result.model is None


# --------------------------------------------------------------------------------------------------------------------
# Embedders


def test_openai_text_embedder_meta():
    output = {
        "embedding": [0.1, 0.2],
        "meta": {"model": "text-embedding-3-small", "usage": {"prompt_tokens": 4, "total_tokens": 4}},
    }
    result = extract(output)
    assert counts(result.usage) == (4, 0, 0, 0, 0, "reported")
    assert result.model == "text-embedding-3-small"


def test_openai_document_embedder_meta_and_documents():
    from haystack import Document

    output = {
        "documents": [Document(content="a"), Document(content="b")],
        "meta": {"model": "text-embedding-3-small", "usage": {"prompt_tokens": 123, "total_tokens": 123}},
    }
    result = extract(output)
    assert counts(result.usage) == (123, 0, 0, 0, 0, "reported")
    assert result.documents == 2


def test_cohere_embedder_billed_units_dict():
    output = {
        "embedding": [0.1],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 7.0}, "warnings": None},
    }
    result = extract(output)
    assert counts(result.usage) == (7, 0, 0, 0, 0, "reported")
    assert result.model is None
    assert result.usage.raw == {"billed_units": {"input_tokens": 7.0}}


def test_cohere_embedder_billed_units_sdk_object():
    pydantic = pytest.importorskip("pydantic")

    class BilledUnits(pydantic.BaseModel):
        input_tokens: float | None = None
        output_tokens: float | None = None
        search_units: float | None = None

    class ApiMeta(pydantic.BaseModel):
        billed_units: BilledUnits | None = None

    output = {"embeddings": [[0.1]], "meta": ApiMeta(billed_units=BilledUnits(input_tokens=12))}
    assert counts(extract(output).usage) == (12, 0, 0, 0, 0, "reported")


def test_mock_text_embedder_live():
    from haystack.components.embedders.mock_text_embedder import MockTextEmbedder

    result = extract(MockTextEmbedder(model="text-embedding-3-small").run(text="three little words"))
    assert result.model == "text-embedding-3-small"
    assert result.usage.source == "reported"
    assert result.usage.input_tokens == 3


# --------------------------------------------------------------------------------------------------------------------
# Anthropic and Bedrock


def test_anthropic_current_convention_prompt_includes_cache():
    result = extract({"replies": [reply(ANTHROPIC_META)]}, provider="anthropic")
    assert counts(result.usage) == (3512, 3000, 500, 250, 0, "reported")
    assert result.model == "claude-sonnet-4-20250514"


def test_installed_anthropic_haystack_is_inclusive():
    assert installed_anthropic_prompt_includes_cache() is True


def test_anthropic_old_convention_net_prompt_tokens_detected():
    # Before the August 2026 release prompt_tokens was Anthropic's input_tokens, net of the cache.
    meta = copy.deepcopy(ANTHROPIC_META)
    meta["usage"]["prompt_tokens"] = 12
    assert counts(extract({"replies": [reply(meta)]}).usage) == (3512, 3000, 500, 250, 0, "reported")


def test_anthropic_ambiguous_net_count_with_explicit_convention():
    meta = copy.deepcopy(ANTHROPIC_META)
    meta["usage"]["prompt_tokens"] = 4000  # >= cache: either 4000 inclusive or 4000 net
    output = {"replies": [reply(meta)]}
    assert counts(extract(output).usage) == (4000, 3000, 500, 250, 0, "reported")
    old = extract(output, prompt_includes_cache=False).usage
    assert counts(old) == (7500, 3000, 500, 250, 0, "reported")


def test_anthropic_streaming_raw_input_tokens_are_net():
    usage = {
        "input_tokens": 12,
        "prompt_tokens": 12,
        "completion_tokens": 250,
        "output_tokens": 250,
        "cache_read_input_tokens": 3000,
        "cache_creation_input_tokens": 500,
    }
    meta = {"model": "claude-sonnet-4-20250514", "finish_reason": "stop", "usage": usage}
    assert counts(extract({"replies": [reply(meta)]}).usage) == (3512, 3000, 500, 250, 0, "reported")
    raw_sdk = {
        "input_tokens": 12,
        "output_tokens": 250,
        "cache_read_input_tokens": 3000,
        "cache_creation_input_tokens": 0,
    }
    assert counts(normalize_usage(raw_sdk)) == (3012, 3000, 0, 250, 0, "reported")


def test_anthropic_without_cache_and_with_thinking_tokens():
    usage = {
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens_details": {"thinking_tokens": 180},
        "prompt_tokens": 40,
        "completion_tokens": 400,
    }
    assert counts(normalize_usage(usage)) == (40, 0, 0, 400, 180, "reported")


def test_anthropic_total_tokens_settles_the_convention():
    inclusive = {
        "prompt_tokens": 4000,
        "completion_tokens": 10,
        "total_tokens": 4010,
        "cache_read_input_tokens": 3000,
        "cache_creation_input_tokens": 0,
    }
    net = {**inclusive, "total_tokens": 7010}
    assert normalize_usage(inclusive, prompt_includes_cache=False).input_tokens == 4000
    assert normalize_usage(net, prompt_includes_cache=True).input_tokens == 7000


def test_bedrock_converse_usage_is_net_of_cache():
    result = extract({"replies": [reply(BEDROCK_META)]}, provider="aws")
    assert counts(result.usage) == (2054, 2050, 0, 300, 0, "reported")
    assert result.model == "us.anthropic.claude-sonnet-4-20250514-v1:0"


def test_bedrock_without_total_defaults_to_net_and_counts_writes():
    usage = {
        "prompt_tokens": 3000,
        "completion_tokens": 20,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 1500,
    }
    assert counts(normalize_usage(usage)) == (4500, 0, 1500, 20, 0, "reported")


# --------------------------------------------------------------------------------------------------------------------
# Google, Cohere, Ollama, Hugging Face, mocks


def test_google_thoughts_are_added_to_output():
    result = extract({"replies": [reply(GOOGLE_META)]}, provider="google")
    assert counts(result.usage) == (1000, 600, 0, 500, 300, "reported")
    assert result.model == "gemini-2.5-flash"
    assert result.usage.input_tokens + result.usage.output_tokens == GOOGLE_META["usage"]["total_tokens"]


def test_google_without_thinking_and_with_tool_use_prompt():
    usage = {
        "prompt_tokens": 80,
        "completion_tokens": 20,
        "total_tokens": 130,
        "prompt_token_count": 80,
        "candidates_token_count": 20,
        "tool_use_prompt_token_count": 30,
        "total_token_count": 130,
    }
    assert counts(normalize_usage(usage)) == (110, 0, 0, 20, 0, "reported")


def test_google_streaming_zeros_are_missing():
    meta = {"model": "gemini-2.5-flash", "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
    result = extract({"replies": [reply(meta)]})
    assert result.usage.source == "missing"
    assert result.model == "gemini-2.5-flash"


def test_cohere_chat_generator_float_counts():
    result = extract({"replies": [reply(COHERE_META)]})
    assert counts(result.usage) == (57, 0, 0, 31, 0, "reported")
    assert result.finish_reasons == ["COMPLETE"]


def test_cohere_raw_billed_units_usage():
    usage = {
        "billed_units": {"input_tokens": 57, "output_tokens": 31},
        "tokens": {"input_tokens": 250, "output_tokens": 31},
    }
    assert counts(normalize_usage(usage)) == (57, 0, 0, 31, 0, "reported")


def test_ollama_chat_generator():
    result = extract({"replies": [reply(OLLAMA_META)]})
    assert counts(result.usage) == (26, 0, 0, 298, 0, "reported")
    assert result.model == "phi4:14b-q4_K_M"


def test_ollama_native_keys_in_meta():
    streaming = {"model": "llama3.2:3b", "done": True, "done_reason": "stop", "prompt_eval_count": 26, "eval_count": 9}
    result = extract({"replies": [reply(streaming)]})
    assert counts(result.usage) == (26, 0, 0, 9, 0, "reported")
    assert result.finish_reasons == ["stop"]
    legacy = extract({"replies": ["text"], "meta": [streaming]})
    assert counts(legacy.usage) == (26, 0, 0, 9, 0, "reported")


def test_huggingface_local():
    assert counts(extract({"replies": [reply(HF_LOCAL_META)]}).usage) == (30, 0, 0, 20, 0, "reported")


def test_mock_chat_generator_live():
    from haystack.components.generators.chat.mock import MockChatGenerator

    generator = MockChatGenerator(model="gpt-4o-mini")
    result = extract(generator.run(messages=[ChatMessage.from_user("one two three four")]))
    assert result.model == "gpt-4o-mini"
    assert result.usage.source == "reported"
    assert result.usage.input_tokens == 4


# --------------------------------------------------------------------------------------------------------------------
# Odd shapes


@pytest.mark.parametrize(
    "output",
    [
        None,
        42,
        "not json",
        "[1, 2",
        [],
        [None, 3, "x"],
        {"replies": None},
        {"replies": "text"},
        {"replies": [None, 1, object()]},
        {"replies": [{"meta": "not a dict"}]},
        {"replies": [{"meta": {"usage": "lots"}}]},
        {"replies": [{"meta": {"usage": ["a"], "model": ["x"]}}]},
        {"meta": 3},
        {"meta": [None, "x", {"usage": None}]},
        {"documents": "not a list"},
        {
            "replies": [
                ChatMessage.from_assistant("x", meta={"usage": {"prompt_tokens": -5, "completion_tokens": True}})
            ]
        },
        {"replies": [ChatMessage.from_assistant("x", meta={"usage": {"prompt_tokens": float("nan")}})]},
    ],
)
def test_weird_shapes_never_raise(output):
    result = extract_usage(output)
    assert result is None or isinstance(result, ExtractedUsage)
    if result is not None:
        json.dumps(result.usage.raw)
        assert result.usage.source in ("missing", "none")


def test_unknown_usage_shape_is_missing_with_model_kept():
    meta = {"model": "some-model", "usage": {"tokens_in": 5, "tokens_out": 7}}
    result = extract({"replies": [reply(meta)]})
    assert result.usage.source == "missing"
    assert result.model == "some-model"
    assert result.usage.raw == {"tokens_in": 5, "tokens_out": 7}


def test_raw_is_json_safe():
    class Opaque:
        __slots__ = ()

    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "callback": print,
        "blob": b"bytes",
        "nested": {"ok": 1, "bad": Opaque(), "inf": float("inf"), "list": [1, Opaque(), {"x": "y"}]},
        3: "non-str key",
    }
    result = extract({"replies": [ChatMessage.from_assistant("x", meta={"model": "gpt-4o", "usage": usage})]})
    assert counts(result.usage) == (5, 0, 0, 2, 0, "reported")
    assert result.usage.raw == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "nested": {"ok": 1, "list": [1, {"x": "y"}]},
    }
    json.dumps(result.usage.raw)


def test_breakdowns_are_clamped_into_totals():
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    assert counts(normalize_usage(usage)) == (10, 10, 0, 5, 5, "reported")


# --------------------------------------------------------------------------------------------------------------------
# Live converters: the installed integrations still produce the shapes above


def test_live_openai_converter_matches_fixture():
    from haystack.components.generators.chat.openai import _convert_chat_completion_to_chat_message
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "a"}},
                {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "b"}},
            ],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
    )
    replies = [_convert_chat_completion_to_chat_message(completion, choice) for choice in completion.choices]
    result = extract({"replies": replies})
    assert counts(result.usage) == (1200, 1024, 0, 300, 0, "reported")
    assert result.finish_reasons == ["stop", "length"]


def test_live_openai_responses_converter_matches_fixture():
    from haystack.components.generators.chat.openai_responses import _convert_response_to_chat_message
    from openai.types.responses import Response

    response = Response.model_validate(
        {
            "id": "resp_1",
            "object": "response",
            "created_at": 1.0,
            "model": "o4-mini-2025-04-16",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "hi", "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": OPENAI_RESPONSES_META["usage"],
        }
    )
    result = extract({"replies": [_convert_response_to_chat_message(response)]})
    assert counts(result.usage) == (2000, 1536, 0, 900, 640, "reported")


def test_live_anthropic_converter_matches_fixture():
    utils = pytest.importorskip("haystack_integrations.components.generators.anthropic.chat.utils")
    from anthropic.types import Message

    message = Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 12,
                "output_tokens": 250,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 500,
                "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 0},
                "service_tier": "standard",
            },
        }
    )
    converted = utils._convert_chat_completion_to_chat_message(message, False)
    assert converted.meta["usage"]["prompt_tokens"] == ANTHROPIC_META["usage"]["prompt_tokens"]
    result = extract({"replies": [converted]}, provider="anthropic")
    assert counts(result.usage) == (3512, 3000, 500, 250, 0, "reported")


def test_live_anthropic_streaming_merge():
    utils = pytest.importorskip("haystack_integrations.components.generators.anthropic.chat.utils")
    start = {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 3000, "cache_creation_input_tokens": 0}
    merged = utils._merge_streaming_usage(start_usage=start, delta_usage={"output_tokens": 250})
    assert counts(normalize_usage(merged)) == (3012, 3000, 0, 250, 0, "reported")


# --------------------------------------------------------------------------------------------------------------------
# Providers and component kinds


@pytest.mark.parametrize(
    ("component_type", "fully_qualified_type", "model", "expected"),
    [
        ("OpenAIChatGenerator", "haystack.components.generators.chat.openai.OpenAIChatGenerator", "gpt-4o", "openai"),
        (
            "OpenAIResponsesChatGenerator",
            "haystack.components.generators.chat.openai_responses.OpenAIResponsesChatGenerator",
            "o4-mini",
            "openai",
        ),
        (
            "AzureOpenAIChatGenerator",
            "haystack.components.generators.chat.azure.AzureOpenAIChatGenerator",
            None,
            "azure",
        ),
        (
            "AzureOpenAIResponsesChatGenerator",
            "haystack.components.generators.chat.azure_responses.AzureOpenAIResponsesChatGenerator",
            "gpt-4o",
            "azure",
        ),
        (
            "OpenAITextEmbedder",
            "haystack.components.embedders.openai_text_embedder.OpenAITextEmbedder",
            "text-embedding-3-small",
            "openai",
        ),
        (
            "AzureOpenAIDocumentEmbedder",
            "haystack.components.embedders.azure_document_embedder.AzureOpenAIDocumentEmbedder",
            None,
            "azure",
        ),
        ("OpenAIGenerator", "haystack.components.generators.openai.OpenAIGenerator", "gpt-3.5-turbo", "openai"),
        (
            "AnthropicChatGenerator",
            "haystack_integrations.components.generators.anthropic.chat.chat_generator.AnthropicChatGenerator",
            "claude-sonnet-4-20250514",
            "anthropic",
        ),
        (
            "AnthropicVertexChatGenerator",
            "haystack_integrations.components.generators.anthropic.chat.vertex_chat_generator."
            "AnthropicVertexChatGenerator",
            "claude-sonnet-4@20250514",
            "anthropic",
        ),
        (
            "AmazonBedrockChatGenerator",
            "haystack_integrations.components.generators.amazon_bedrock.chat.chat_generator.AmazonBedrockChatGenerator",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "aws",
        ),
        (
            "AmazonBedrockTextEmbedder",
            "haystack_integrations.components.embedders.amazon_bedrock.text_embedder.AmazonBedrockTextEmbedder",
            "amazon.titan-embed-text-v2:0",
            "aws",
        ),
        (
            "GoogleGenAIChatGenerator",
            "haystack_integrations.components.generators.google_genai.chat.chat_generator.GoogleGenAIChatGenerator",
            "gemini-2.5-flash",
            "google",
        ),
        (
            "CohereChatGenerator",
            "haystack_integrations.components.generators.cohere.chat.chat_generator.CohereChatGenerator",
            "command-r-08-2024",
            "cohere",
        ),
        (
            "CohereTextEmbedder",
            "haystack_integrations.components.embedders.cohere.text_embedder.CohereTextEmbedder",
            "embed-english-v3.0",
            "cohere",
        ),
        (
            "MistralChatGenerator",
            "haystack_integrations.components.generators.mistral.chat.chat_generator.MistralChatGenerator",
            "mistral-small-latest",
            "mistral",
        ),
        (
            "OllamaChatGenerator",
            "haystack_integrations.components.generators.ollama.chat.chat_generator.OllamaChatGenerator",
            "llama3.2:3b",
            "ollama",
        ),
        (
            "HuggingFaceLocalChatGenerator",
            "haystack.components.generators.chat.hugging_face_local.HuggingFaceLocalChatGenerator",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "huggingface-local",
        ),
        (
            "SentenceTransformersTextEmbedder",
            "haystack.components.embedders.sentence_transformers_text_embedder.SentenceTransformersTextEmbedder",
            "sentence-transformers/all-MiniLM-L6-v2",
            "huggingface-local",
        ),
    ],
)
def test_provider_for_integrations(component_type, fully_qualified_type, model, expected):
    assert provider_for(component_type, fully_qualified_type, model) == expected


def test_provider_for_class_name_only_and_model_fallback():
    assert provider_for("AnthropicChatGenerator", None, None) == "anthropic"
    assert provider_for("AmazonBedrockChatGenerator", None, None) == "aws"
    assert provider_for("MyCustomGenerator", "acme.llm.MyCustomGenerator", "gpt-4o-mini") == "openai"
    assert provider_for("MyCustomGenerator", None, "o3-mini") == "openai"
    assert provider_for("MyCustomGenerator", None, "text-embedding-3-large") == "openai"
    assert provider_for("MyCustomGenerator", None, "claude-3-haiku-20240307") == "anthropic"
    assert provider_for("MyCustomGenerator", None, "gemini-2.0-flash") == "google"
    assert provider_for("MyCustomGenerator", None, "command-r-plus") == "cohere"
    assert provider_for("MyCustomGenerator", None, "mixtral-8x7b") == "mistral"
    assert provider_for("MyCustomGenerator", None, "anthropic/claude-sonnet-4") == "anthropic"
    assert provider_for("MyCustomGenerator", None, "llama3.2:3b") is None
    assert provider_for("MyCustomGenerator", None, None) is None


def test_provider_for_openai_compatible_endpoints():
    openai_fq = "haystack.components.generators.chat.openai.OpenAIChatGenerator"
    groq = {"api_base_url": "https://api.groq.com/openai/v1"}
    assert provider_for("OpenAIChatGenerator", openai_fq, "llama-3.1-8b-instant", groq) == "groq"
    ollama = {"api_base_url": "http://localhost:11434/v1"}
    assert provider_for("OpenAIChatGenerator", openai_fq, "llama3.2", ollama) == "ollama"
    loopback = {"api_base_url": "http://127.0.0.1:8765/v1"}  # a test double of OpenAI stays OpenAI
    assert provider_for("OpenAIChatGenerator", openai_fq, "gpt-4o-mini", loopback) == "openai"
    assert provider_for("OpenAIChatGenerator", openai_fq, "gpt-4o-mini", {"api_base_url": None}) == "openai"


def test_provider_for_mocks_and_simulators():
    mock_fq = "haystack.components.generators.chat.mock.MockChatGenerator"
    assert provider_for("MockChatGenerator", mock_fq, None, {"model": "claude-3-haiku-20240307"}) == "anthropic"
    assert provider_for("MockChatGenerator", mock_fq, "mock-model", {"provider": "OpenAI"}) == "openai"
    assert provider_for("MockChatGenerator", mock_fq, "x", {"meta": {"provider": "google"}}) == "google"
    assert provider_for("MockChatGenerator", mock_fq, "mock-model") is None
    embedder_fq = "haystack.components.embedders.mock_text_embedder.MockTextEmbedder"
    assert provider_for("MockTextEmbedder", embedder_fq, "text-embedding-3-small") == "openai"
    simulator_fq = "genops_cli.tracking.simulate.SimulatedChatGenerator"
    assert provider_for("SimulatedChatGenerator", simulator_fq, "gpt-4o", {"provider": "azure"}) == "azure"


def test_local_providers():
    assert {"ollama", "huggingface-local"} <= LOCAL_PROVIDERS
    assert "openai" not in LOCAL_PROVIDERS


def test_provider_ids_exist_in_genai_prices():
    data_snapshot = pytest.importorskip("genai_prices.data_snapshot")
    known = {p.id for p in data_snapshot.get_snapshot().providers}
    for provider in ("openai", "azure", "anthropic", "aws", "google", "cohere", "mistral", "groq"):
        assert provider in known


@pytest.mark.parametrize(
    ("component_type", "fully_qualified_type", "llm", "embedder"),
    [
        ("OpenAIChatGenerator", "haystack.components.generators.chat.openai.OpenAIChatGenerator", True, False),
        ("OpenAIGenerator", None, True, False),
        ("AnthropicChatGenerator", None, True, False),
        (None, "haystack.components.generators.chat.mock.MockChatGenerator", True, False),
        ("FallbackChatGenerator", "haystack.components.generators.chat.fallback.FallbackChatGenerator", False, False),
        ("ChatPromptBuilder", "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder", False, False),
        ("PromptBuilder", None, False, False),
        ("Agent", "haystack.components.agents.agent.Agent", False, False),
        ("LLM", "haystack.components.generators.chat.llm.LLM", False, False),
        ("OpenAITextEmbedder", None, False, True),
        ("CohereDocumentEmbedder", None, False, True),
        ("SentenceTransformersDocumentImageEmbedder", None, False, True),
        ("InMemoryEmbeddingRetriever", None, False, False),
        ("", None, False, False),
    ],
)
def test_component_kinds(component_type, fully_qualified_type, llm, embedder):
    assert is_llm_component(component_type, fully_qualified_type) is llm
    assert is_embedder(component_type, fully_qualified_type) is embedder


def test_request_stream_usage_asks_streaming_chat_completions_generators_only():
    from genops_cli.tracking.usage import request_stream_usage

    chat = "haystack.components.generators.chat.openai.OpenAIChatGenerator"
    responses = "haystack.components.generators.chat.openai_responses.OpenAIResponsesChatGenerator"
    stream = "haystack.components.generators.utils.print_streaming_chunk"
    components = {
        "streams": {"type": chat, "init_parameters": {"streaming_callback": stream,
                                                       "generation_kwargs": {"max_tokens": 9}}},
        "plain": {"type": chat, "init_parameters": {"streaming_callback": None}},
        "opted_out": {"type": chat, "init_parameters": {"streaming_callback": stream, "generation_kwargs": {
            "stream_options": {"include_usage": False}}}},
        "responses": {"type": responses, "init_parameters": {"streaming_callback": stream}},
        "agent": {"type": "haystack.components.agents.agent.Agent", "init_parameters": {
            "streaming_callback": stream, "chat_generator": {"type": chat, "init_parameters": {}}}},
    }
    changed = request_stream_usage(components)
    assert changed == ["streams", "agent/chat_generator"]
    assert components["streams"]["init_parameters"]["generation_kwargs"] == {
        "max_tokens": 9, "stream_options": {"include_usage": True}}
    assert "generation_kwargs" not in components["plain"]["init_parameters"]
    assert components["opted_out"]["init_parameters"]["generation_kwargs"]["stream_options"] == {
        "include_usage": False}
    assert "generation_kwargs" not in components["responses"]["init_parameters"]
    agent_gen = components["agent"]["init_parameters"]["chat_generator"]["init_parameters"]
    assert agent_gen["generation_kwargs"] == {"stream_options": {"include_usage": True}}


def test_request_stream_usage_live_sets_generation_kwargs_on_built_generators():
    from haystack import Pipeline
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.components.generators.utils import print_streaming_chunk
    from haystack.utils import Secret

    from genops_cli.tracking.usage import request_stream_usage_live

    key = Secret.from_token("sk-test")
    pipeline = Pipeline()
    pipeline.add_component("llm", OpenAIChatGenerator(api_key=key, streaming_callback=print_streaming_chunk))
    pipeline.add_component("quiet", OpenAIChatGenerator(api_key=key))
    assert request_stream_usage_live(pipeline) == ["llm"]
    assert pipeline.get_component("llm").generation_kwargs == {"stream_options": {"include_usage": True}}
    assert pipeline.get_component("quiet").generation_kwargs == {}


def test_exit_reasons_normalized():
    from genops_cli.errors import RunCostCapReached
    from genops_cli.tracking.agents import exit_reason

    assert exit_reason("text", ["text"], None) == "final_answer"
    assert exit_reason("save", ["text", "save"], None) == "exit_condition"
    assert exit_reason("max_agent_steps", ["text"], None) == "max_agent_steps"
    assert exit_reason("length", ["text"], None) == "output_limit"
    assert exit_reason("user_cancelled", ["text"], None) == "hook_stop"
    # Haystack 2.x keeps no exit reason: told from the steps taken
    assert exit_reason(None, ["text"], None, steps=5, max_steps=5) == "max_agent_steps"
    assert exit_reason(None, ["text"], None, steps=2, max_steps=5) == "final_answer"
    assert exit_reason(None, ["text", "save"], None, steps=2, max_steps=5) is None
    assert exit_reason(None, None, RuntimeError("x")) == "error"
    wrapped = RuntimeError("component failed")
    wrapped.__cause__ = RunCostCapReached("cap")
    assert exit_reason(None, None, wrapped) == "budget_stop"
