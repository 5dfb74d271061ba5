"""Simulation: LLM and embedding components replaced by deterministic stand-ins with the same model names.

`genops run --simulate` prices a pipeline with real list prices and no provider call, no key and no network.
Input tokens are counted offline from the rendered messages (genops_cli.tokens); output tokens are the
configured expectation, else the component's max_tokens, else `DEFAULT_OUTPUT_TOKENS`. Usage from simulators
is marked `estimated`, and simulated runs never count toward budgets or bills.

A simulated chat generator that is given tools calls the first tool once with the user's last message, then
answers: an Agent in simulation exercises its tool loop like a real one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from haystack import Document, component
from haystack.dataclasses import ChatMessage, ToolCall

from genops_cli.tokens import count_text_tokens, estimate_input_tokens
from genops_cli.tracking.capture import PipelineProfile

DEFAULT_OUTPUT_TOKENS = 256
TOOL_CALL_OUTPUT_TOKENS = 24
SIMULATED_DIMENSIONS = 256
_WORD = re.compile(r"\w+", re.UNICODE)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@component
class SimulatedChatGenerator:
    """Deterministic stand-in for a chat generator (same model, real prices, offline token counts)."""

    def __init__(
        self,
        model: str,
        provider: str | None = None,
        original_type: str | None = None,
        max_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.provider = provider
        self.original_type = original_type
        self.max_tokens = max_tokens
        self.output_tokens = output_tokens

    def to_dict(self) -> dict[str, Any]:
        from haystack.core.serialization import default_to_dict

        return default_to_dict(
            self,
            model=self.model,
            provider=self.provider,
            original_type=self.original_type,
            max_tokens=self.max_tokens,
            output_tokens=self.output_tokens,
        )

    def _expected_output(self) -> int:
        expected = self.output_tokens or self.max_tokens or DEFAULT_OUTPUT_TOKENS
        return min(expected, self.max_tokens) if self.max_tokens else expected

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage],
        generation_kwargs: dict[str, Any] | None = None,
        tools: Any = None,
        streaming_callback: Any = None,
    ) -> dict[str, Any]:
        prompt_tokens, _ = estimate_input_tokens(list(messages), self.model, self.provider)
        tool_list = _flatten_tools(tools)
        if tool_list:
            # Tool definitions are sent with every request and billed as input.
            specs = json.dumps([getattr(t, "tool_spec", {"name": getattr(t, "name", "")}) for t in tool_list])
            prompt_tokens += count_text_tokens(specs, self.model)
        last_user = next((m.text or "" for m in reversed(messages) if m.role.value == "user"), "")
        already_called = any(m.role.value == "tool" for m in messages)
        meta: dict[str, Any] = {"model": self.model, "index": 0, "genops_simulated": True}
        if tool_list and not already_called:
            tool = tool_list[0]
            arguments = {_first_string_param(tool): last_user}
            meta.update(finish_reason="tool_calls", usage=_usage(prompt_tokens, TOOL_CALL_OUTPUT_TOKENS))
            reply = ChatMessage.from_assistant(tool_calls=[ToolCall(tool_name=tool.name, arguments=arguments,
                                                                    id="sim-call-1")], meta=meta)
        else:
            completion = self._expected_output()
            meta.update(finish_reason="stop", usage=_usage(prompt_tokens, completion))
            digest = hashlib.sha256(last_user.encode()).hexdigest()[:8]
            reply = ChatMessage.from_assistant(
                f"[simulated {self.model} reply {digest}: {completion} output tokens assumed]", meta=meta
            )
        return {"replies": [reply]}


def _flatten_tools(tools: Any) -> list[Any]:
    if not tools:
        return []
    out: list[Any] = []
    for item in tools if isinstance(tools, list | tuple) else [tools]:
        if hasattr(item, "tools"):  # a Toolset
            out.extend(list(item))
        else:
            out.append(item)
    return out


def _first_string_param(tool: Any) -> str:
    params = getattr(tool, "parameters", None) or {}
    props = params.get("properties") or {}
    for name in params.get("required") or []:
        if (props.get(name) or {}).get("type") == "string":
            return name
    for name, spec in props.items():
        if (spec or {}).get("type") == "string":
            return name
    return next(iter(props), "query")


def hash_embedding(text: str, dimensions: int = SIMULATED_DIMENSIONS) -> list[float]:
    """A deterministic bag-of-words vector: texts that share words are close, so retrieval still works."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[h % dimensions] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _SimulatedEmbedder:
    """What both simulated embedders share: the model they stand in for and the vector size."""

    def __init__(self, model: str, provider: str | None = None, original_type: str | None = None,
                 dimensions: int | None = None) -> None:
        self.model = model
        self.provider = provider
        self.original_type = original_type
        self.dimensions = dimensions

    def _meta(self, tokens: int) -> dict[str, Any]:
        return {"model": self.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "genops_simulated": True}


@component
class SimulatedTextEmbedder(_SimulatedEmbedder):
    """Stand-in for a text embedder: hashed embedding, offline token count."""

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        tokens = count_text_tokens(text, self.model)
        return {"embedding": hash_embedding(text, self.dimensions or SIMULATED_DIMENSIONS), "meta": self._meta(tokens)}


@component
class SimulatedDocumentEmbedder(_SimulatedEmbedder):
    """Stand-in for a document embedder."""

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        tokens = 0
        out = []
        for doc in documents:
            text = doc.content or ""
            tokens += count_text_tokens(text, self.model)
            out.append(Document(id=doc.id, content=doc.content, meta=doc.meta,
                                embedding=hash_embedding(text, self.dimensions or SIMULATED_DIMENSIONS)))
        return {"documents": out, "meta": self._meta(tokens)}


def _simulator_for(type_path: str, params: dict[str, Any], provider: str | None, max_tokens: int | None,
                   output_tokens: int | None) -> dict[str, Any] | None:
    type_name = type_path.rsplit(".", 1)[-1]
    model = params.get("model") or params.get("model_name") or params.get("azure_deployment") or "unknown-model"
    common = {"model": str(model), "provider": provider, "original_type": type_path}
    if type_name.endswith("Generator"):  # chat and legacy text generators
        return {"type": f"{__name__}.SimulatedChatGenerator",
                "init_parameters": {**common, "max_tokens": max_tokens, "output_tokens": output_tokens}}
    if type_name.endswith("DocumentEmbedder"):
        return {"type": f"{__name__}.SimulatedDocumentEmbedder",
                "init_parameters": {**common, "dimensions": params.get("dimensions")}}
    if type_name.endswith("Embedder"):
        return {"type": f"{__name__}.SimulatedTextEmbedder",
                "init_parameters": {**common, "dimensions": params.get("dimensions")}}
    return None


def simulate_components(data: dict[str, Any], profile: PipelineProfile, output_tokens: int | None) -> None:
    """Rewrite a serialized pipeline in place: each LLM/embedder (and each Agent's generator) -> simulator."""
    for name, comp in data["components"].items():
        prof = profile.components[name]
        params = comp.get("init_parameters") or {}
        if prof.is_llm or prof.is_embedder:
            replacement = _simulator_for(comp["type"], params, prof.provider, prof.max_tokens, output_tokens)
            if replacement is not None:
                data["components"][name] = replacement
        elif prof.inner is not None and isinstance(params.get("chat_generator"), dict):
            inner = params["chat_generator"]
            replacement = _simulator_for(inner["type"], inner.get("init_parameters") or {}, prof.inner.provider,
                                         prof.inner.max_tokens, output_tokens)
            if replacement is not None:
                params["chat_generator"] = replacement
