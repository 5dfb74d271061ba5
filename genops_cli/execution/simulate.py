"""Simulation: every model-backed or network-bound component replaced by a deterministic, offline stand-in.

`genops run --simulate` prices a pipeline with real list prices and no provider call, no key and no network:

- generators, chat generators, embedders, rankers, readers and NER extractors become simulators with the same
  model names (also inside Agents, tools, AgentTools and LLM-backed components such as LLMRanker);
- web search and link fetchers return made-up results under the reserved `.invalid` domain;
- server-backed document stores (Elasticsearch, OpenSearch, Qdrant, Pinecone, Weaviate, pgvector, Chroma, ...)
  become in-memory stores that `--documents` fills, and their retrievers keep BM25 / embedding / hybrid
  retrieval over them;
- converters and preprocessors whose parsing library is not installed here (trafilatura for HTMLToDocument, pypdf,
  nltk for sentence splitting...) become plain-text converters and pass-throughs, with a warning naming the
  package a real run needs.

Each stand-in keeps the input and output sockets of the component it replaces (read from the real class when it
is importable, else the family's well-known shape), so the pipeline's connections hold on Haystack 2.x and 3.x.
Input tokens are counted offline from the rendered prompt (genops_cli.tokens); output tokens are the configured
expectation, else the component's max_tokens, else `DEFAULT_OUTPUT_TOKENS`. Usage from simulators is marked
`estimated`, and simulated runs never count toward budgets or bills.

A simulated chat generator that is given tools calls them (in turn) until its Agent has taken the configured
number of LLM steps (`simulation.agent_steps`, else the distribution recorded for the pipeline, else
`DEFAULT_AGENT_STEPS`), then answers; tool arguments are made from each tool's JSON schema.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import re
import typing
from dataclasses import dataclass
from typing import Any

from haystack import Document, component
from haystack.dataclasses import ByteStream, ChatMessage, ToolCall

from genops_cli.tokens import count_text_tokens, estimate_input_tokens
from genops_cli.tracking.capture import PipelineProfile

DEFAULT_OUTPUT_TOKENS = 256
TOOL_CALL_OUTPUT_TOKENS = 24
SIMULATED_DIMENSIONS = 256
#: LLM steps of a simulated Agent with tools when nothing else is known: one tool round, then the answer.
DEFAULT_AGENT_STEPS = 2
SIMULATED_DOMAIN = "simulated.invalid"  # RFC 2606: never resolves
_WORD = re.compile(r"\w+", re.UNICODE)
_REQUIRED = inspect.Parameter.empty


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


# -- sockets ----------------------------------------------------------------------------------------------------

#: The well-known sockets of each family, used when the real class cannot be imported (a removed Haystack 2.x
#: class, an integration package that is not installed): {input: (type, default or _REQUIRED)}, {output: type}.
def _family_shapes() -> dict[str, tuple[dict[str, tuple[Any, Any]], dict[str, Any]]]:
    from haystack.dataclasses import ExtractedAnswer, SparseEmbedding

    docs = list[Document]
    opt = (dict[str, Any] | None, None)
    return {
        "text_generator": ({"prompt": (str, _REQUIRED), "system_prompt": (str | None, None),
                            "streaming_callback": (Any, None), "generation_kwargs": opt},
                           {"replies": list[str], "meta": list[dict[str, Any]]}),
        "text_embedder": ({"text": (str, _REQUIRED)}, {"embedding": list[float], "meta": dict[str, Any]}),
        "document_embedder": ({"documents": (docs, _REQUIRED)}, {"documents": docs, "meta": dict[str, Any]}),
        "sparse_text_embedder": ({"text": (str, _REQUIRED)}, {"sparse_embedding": SparseEmbedding}),
        "sparse_document_embedder": ({"documents": (docs, _REQUIRED)}, {"documents": docs}),
        "ranker": ({"query": (str, _REQUIRED), "documents": (docs, _REQUIRED), "top_k": (int | None, None)},
                   {"documents": docs}),
        "reader": ({"query": (str, _REQUIRED), "documents": (docs, _REQUIRED), "top_k": (int | None, None)},
                   {"answers": list[ExtractedAnswer]}),
        "entity_extractor": ({"documents": (docs, _REQUIRED)}, {"documents": docs}),
        "web_search": ({"query": (str, _REQUIRED)}, {"documents": docs, "links": list[str]}),
        "link_fetcher": ({"urls": (list[str], _REQUIRED)}, {"streams": list[ByteStream]}),
        "bm25_retriever": ({"query": (str, _REQUIRED), "filters": opt, "top_k": (int | None, None)},
                           {"documents": docs}),
        "embedding_retriever": ({"query_embedding": (list[float], _REQUIRED), "filters": opt,
                                 "top_k": (int | None, None)}, {"documents": docs}),
        # Hybrid retrievers differ (Qdrant: dense + sparse vectors; Elasticsearch/OpenSearch: text + dense): every
        # query input is optional, whichever the pipeline connects is used.
        "hybrid_retriever": ({"query": (str | None, None), "query_embedding": (list[float] | None, None),
                              "query_sparse_embedding": (SparseEmbedding | None, None), "filters": opt,
                              "top_k": (int | None, None)}, {"documents": docs}),
        "sparse_retriever": ({"query_sparse_embedding": (SparseEmbedding, _REQUIRED), "filters": opt,
                              "top_k": (int | None, None)}, {"documents": docs}),
        "converter": ({"sources": (list[str | ByteStream], _REQUIRED), "meta": (Any, None)}, {"documents": docs}),
        "pass_through": ({"documents": (docs, _REQUIRED)}, {"documents": docs}),
    }


#: Namespaces in Haystack's default deserialization allowlist: the only modules the simulator itself imports (a
#: team's own module runs code on import and is imported only by the loader, behind --allow-module).
HAYSTACK_NAMESPACES = ("haystack", "haystack_integrations", "haystack_experimental")


def _real_class(type_path: str) -> type | None:
    module, _, name = type_path.rpartition(".")
    if module.split(".", 1)[0] not in HAYSTACK_NAMESPACES:
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except Exception:  # a missing package or a class removed in this Haystack: use the family's shape
        return None


def _class_sockets(cls: type) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]] | None:
    run = getattr(cls, "run", None)
    outputs = getattr(run, "_output_types_cache", None)
    if run is None or not outputs:
        return None
    try:
        hints = typing.get_type_hints(run)
    except Exception:  # unresolvable annotations: sockets of type Any still connect
        hints = {}
    inputs: dict[str, tuple[Any, Any]] = {}
    for name, param in inspect.signature(run).parameters.items():
        if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        inputs[name] = (hints.get(name, Any), param.default)
    # Haystack 2.x caches OutputSocket objects, 3.x the types: the socket's type either way.
    return inputs, {name: getattr(value, "type", value) for name, value in outputs.items()}


def mirror_sockets(instance: Any, original_type: str, family: str) -> None:
    """Give `instance` (whose `run` takes **kwargs) the sockets of `original_type`, else of its family."""
    # The real class's sockets when it is of the same family (a document embedder made from a text embedder's
    # settings must keep document sockets), else the family's shape.
    same_class = family_of(original_type) == family or family in _DEPENDENCY_FAMILIES
    cls = _real_class(original_type) if same_class else None
    shape = _class_sockets(cls) if cls is not None else None
    inputs, outputs = shape or _family_shapes()[family]
    for name, (kind, default) in inputs.items():
        if default is _REQUIRED:
            component.set_input_type(instance, name, kind)
        else:
            component.set_input_type(instance, name, kind, default)
    component.set_output_types(instance, **outputs)


class _StandIn:
    """What every stand-in shares: the class it replaces and a plain to_dict (estimate copies pipelines)."""

    family = ""

    def to_dict(self) -> dict[str, Any]:
        from haystack.core.serialization import default_to_dict

        return default_to_dict(self, **self._init_params)


# -- generators ---------------------------------------------------------------------------------------------------

@component
class SimulatedChatGenerator(_StandIn):
    """Deterministic stand-in for a chat generator (same model, real prices, offline token counts)."""

    family = "chat_generator"

    def __init__(
        self,
        model: str,
        provider: str | None = None,
        original_type: str | None = None,
        max_tokens: int | None = None,
        output_tokens: int | None = None,
        agent_steps: int | list[int] | None = None,
        reply_schema: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.provider = provider
        self.original_type = original_type
        self.max_tokens = max_tokens
        self.output_tokens = output_tokens
        #: LLM steps an Agent using this generator takes: a number, or a recorded distribution to draw from.
        self.agent_steps = agent_steps
        #: JSON the replies must be (a structured-output request, or a JsonSchemaValidator the replies feed):
        #: a JSON schema, {} for any JSON object, None for plain text.
        self.reply_schema = reply_schema
        self._init_params = {"model": model, "provider": provider, "original_type": original_type,
                             "max_tokens": max_tokens, "output_tokens": output_tokens, "agent_steps": agent_steps,
                             "reply_schema": reply_schema}

    def _expected_output(self) -> int:
        expected = self.output_tokens or self.max_tokens or DEFAULT_OUTPUT_TOKENS
        return min(expected, self.max_tokens) if self.max_tokens else expected

    def _steps_for(self, first_user: str) -> int:
        steps = self.agent_steps
        if isinstance(steps, list) and steps:
            # Deterministic draw per task: the same input always takes the same path, a batch follows the history.
            steps = sorted(steps)[int(_digest(first_user), 16) % len(steps)]
        return max(1, steps if isinstance(steps, int) else DEFAULT_AGENT_STEPS)

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage] | str,
        generation_kwargs: dict[str, Any] | None = None,
        tools: Any = None,
        streaming_callback: Any = None,
    ) -> dict[str, Any]:
        if isinstance(messages, str):  # Haystack 3 chat generators take a plain prompt as one user message
            messages = [ChatMessage.from_user(messages)]
        prompt_tokens, _ = estimate_input_tokens(list(messages), self.model, self.provider)
        tool_list = _flatten_tools(tools)
        if tool_list:
            # Tool definitions are sent with every request and billed as input.
            specs = json.dumps([getattr(t, "tool_spec", {"name": getattr(t, "name", "")}) for t in tool_list])
            prompt_tokens += count_text_tokens(specs, self.model)
        users = [m.text or "" for m in messages if m.role.value == "user"]
        last_user = users[-1] if users else ""
        rounds = sum(1 for m in messages if m.role.value == "assistant" and m.tool_calls)
        meta: dict[str, Any] = {"model": self.model, "index": 0, "genops_simulated": True}
        if tool_list and rounds < self._steps_for(users[0] if users else "") - 1:
            tool = tool_list[rounds % len(tool_list)]
            arguments = tool_arguments(getattr(tool, "parameters", None) or {}, last_user)
            meta.update(finish_reason="tool_calls", usage=_usage(prompt_tokens, TOOL_CALL_OUTPUT_TOKENS))
            call = ToolCall(tool_name=tool.name, arguments=arguments, id=f"sim-call-{rounds + 1}")
            reply = ChatMessage.from_assistant(tool_calls=[call], meta=meta)
        else:
            completion = self._expected_output()
            meta.update(finish_reason="stop", usage=_usage(prompt_tokens, completion))
            text = f"[simulated {self.model} reply {_digest(last_user)}: {completion} output tokens assumed]"
            schema = reply_schema_of(generation_kwargs or {})
            schema = schema if schema is not None else self.reply_schema
            if schema is not None:  # structured output: JSON that the schema (or a JSON parser) accepts
                value = _example(schema, text, 0) if schema else None
                text = json.dumps(value if isinstance(value, dict | list) else {"answer": text})
            reply = ChatMessage.from_assistant(text, meta=meta)
        return {"replies": [reply]}


@component
class SimulatedTextGenerator(_StandIn):
    """Stand-in for a prompt -> replies (list[str]) generator of Haystack 2.x (OpenAIGenerator and kin)."""

    family = "text_generator"

    def __init__(self, model: str, provider: str | None = None, original_type: str | None = None,
                 max_tokens: int | None = None, output_tokens: int | None = None,
                 system_prompt: str | None = None) -> None:
        self.model, self.provider, self.original_type = model, provider, original_type
        self.max_tokens, self.output_tokens, self.system_prompt = max_tokens, output_tokens, system_prompt
        self._init_params = {"model": model, "provider": provider, "original_type": original_type,
                             "max_tokens": max_tokens, "output_tokens": output_tokens, "system_prompt": system_prompt}
        mirror_sockets(self, original_type or "", self.family)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        prompt = str(kwargs.get("prompt") or "")
        system = kwargs.get("system_prompt") or self.system_prompt or ""
        prompt_tokens = count_text_tokens(f"{system}\n{prompt}" if system else prompt, self.model)
        expected = self.output_tokens or self.max_tokens or DEFAULT_OUTPUT_TOKENS
        completion = min(expected, self.max_tokens) if self.max_tokens else expected
        meta = {"model": self.model, "index": 0, "finish_reason": "stop", "genops_simulated": True,
                "usage": _usage(prompt_tokens, completion)}
        reply = f"[simulated {self.model} reply {_digest(prompt)}: {completion} output tokens assumed]"
        return {"replies": [reply], "meta": [meta]}


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


def reply_schema_of(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON a generator's settings ask its replies to be: the schema of a structured-output request (OpenAI's
    response_format json_schema, a schema given directly as Ollama does, Google's response_schema), {} for JSON
    mode without a schema, None for plain text."""
    fmt = settings.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            inner = fmt.get("json_schema")
            schema = inner.get("schema") if isinstance(inner, dict) else None
            return schema if isinstance(schema, dict) else {}
        if fmt.get("type") == "json_object":
            return {}
        if fmt.get("type") == "object" or "properties" in fmt:
            return fmt
    if fmt == "json":
        return {}
    if isinstance(settings.get("response_schema"), dict):
        return settings["response_schema"]
    if settings.get("response_mime_type") == "application/json":
        return {}
    return None


def tool_arguments(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments that satisfy a tool's JSON schema: required properties filled, strings carry the task `text`
    (an AgentTool's `messages` becomes one user message with it)."""
    value = _example(schema, text, 0)
    return value if isinstance(value, dict) else {}


def _example(schema: Any, text: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 6:
        return text
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = [s for s in schema[key] if isinstance(s, dict) and s.get("type") != "null"]
            return _example(options[0] if options else schema[key][0], text, depth + 1)
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        required = schema.get("required")
        names = required if isinstance(required, list) and required else list(props)[:1]
        return {name: _example(props.get(name, {}), text, depth + 1) for name in names if name in props}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 1))
        return [_example(schema.get("items") or {}, text, depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum") or 1)
    if kind == "number":
        return float(schema.get("minimum") or 1)
    if kind == "boolean":
        return True
    return text


# -- embedders ----------------------------------------------------------------------------------------------------

def hash_embedding(text: str, dimensions: int = SIMULATED_DIMENSIONS) -> list[float]:
    """A deterministic bag-of-words vector: texts that share words are close, so retrieval still works."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[h % dimensions] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _sparse(text: str) -> Any:
    from haystack.dataclasses import SparseEmbedding

    counts: dict[int, float] = {}
    for word in _WORD.findall(text.lower()):
        index = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % 30000
        counts[index] = counts.get(index, 0.0) + 1.0
    indices = sorted(counts)
    return SparseEmbedding(indices=indices, values=[counts[i] for i in indices])


class _SimulatedEmbedder(_StandIn):
    """What the simulated embedders share: the model they stand in for, the vector size and the sockets."""

    def __init__(self, model: str, provider: str | None = None, original_type: str | None = None,
                 dimensions: int | None = None) -> None:
        self.model = model
        self.provider = provider
        self.original_type = original_type
        self.dimensions = dimensions
        self._init_params = {"model": model, "provider": provider, "original_type": original_type,
                             "dimensions": dimensions}
        mirror_sockets(self, original_type or "", self.family)

    def _meta(self, tokens: int) -> dict[str, Any]:
        return {"model": self.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "genops_simulated": True}

    def _embed(self, text: str) -> list[float]:
        return hash_embedding(text, self.dimensions or SIMULATED_DIMENSIONS)


@component
class SimulatedTextEmbedder(_SimulatedEmbedder):
    """Stand-in for a text embedder: hashed embedding, offline token count."""

    family = "text_embedder"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        text = str(kwargs.get("text") or "")
        return {"embedding": self._embed(text), "meta": self._meta(count_text_tokens(text, self.model))}


@component
class SimulatedDocumentEmbedder(_SimulatedEmbedder):
    """Stand-in for a document embedder."""

    family = "document_embedder"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        tokens = 0
        out = []
        for doc in kwargs.get("documents") or []:
            text = doc.content or ""
            tokens += count_text_tokens(text, self.model)
            out.append(Document(id=doc.id, content=doc.content, meta=doc.meta, embedding=self._embed(text),
                                sparse_embedding=doc.sparse_embedding))
        return {"documents": out, "meta": self._meta(tokens)}


@component
class SimulatedSparseTextEmbedder(_SimulatedEmbedder):
    """Stand-in for a sparse text embedder (SPLADE, BM42...): word-hash sparse vector."""

    family = "sparse_text_embedder"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"sparse_embedding": _sparse(str(kwargs.get("text") or ""))}


@component
class SimulatedSparseDocumentEmbedder(_SimulatedEmbedder):
    """Stand-in for a sparse document embedder."""

    family = "sparse_document_embedder"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        out = [Document(id=d.id, content=d.content, meta=d.meta, embedding=d.embedding,
                        sparse_embedding=_sparse(d.content or "")) for d in kwargs.get("documents") or []]
        return {"documents": out}


# -- rankers, readers, extractors -----------------------------------------------------------------------------------

class _SimulatedDocumentsComponent(_StandIn):
    def __init__(self, original_type: str | None = None, model: str | None = None, top_k: int | None = None) -> None:
        self.original_type, self.model, self.top_k = original_type, model, top_k
        self._init_params = {"original_type": original_type, "model": model, "top_k": top_k}
        mirror_sockets(self, original_type or "", self.family)


def _overlap_ranked(query: str, documents: list[Any]) -> list[tuple[float, Any]]:
    words = _words(query)
    scored = [(len(words & _words(d.content or "")) / (len(words) or 1), i, d) for i, d in enumerate(documents)]
    return [(score, doc) for score, _i, doc in sorted(scored, key=lambda s: (-s[0], s[1]))]


@component
class SimulatedRanker(_SimulatedDocumentsComponent):
    """Stand-in for a model-backed ranker: orders documents by the words they share with the query."""

    family = "ranker"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        top_k = kwargs.get("top_k") or self.top_k
        ranked = _overlap_ranked(str(kwargs.get("query") or ""), list(kwargs.get("documents") or []))
        out = [Document(id=d.id, content=d.content, meta=d.meta, embedding=d.embedding, score=score)
               for score, d in ranked]
        return {"documents": out[:top_k] if top_k else out}


@component
class SimulatedReader(_SimulatedDocumentsComponent):
    """Stand-in for an extractive reader: the first sentence of the best-matching documents."""

    family = "reader"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        from haystack.dataclasses import ExtractedAnswer

        query = str(kwargs.get("query") or "")
        top_k = kwargs.get("top_k") or self.top_k or 3
        answers = []
        for score, doc in _overlap_ranked(query, list(kwargs.get("documents") or []))[:top_k]:
            sentence = re.split(r"(?<=[.!?])\s", (doc.content or "").strip(), maxsplit=1)[0]
            answers.append(ExtractedAnswer(query=query, score=score, data=sentence, document=doc))
        answers.append(ExtractedAnswer(query=query, score=0.0, data=None, document=None))  # the no-answer
        return {"answers": answers}


@component
class SimulatedEntityExtractor(_SimulatedDocumentsComponent):
    """Stand-in for a model-backed entity extractor: documents pass through with no annotations."""

    family = "entity_extractor"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"documents": list(kwargs.get("documents") or [])}


# -- network ----------------------------------------------------------------------------------------------------

@component
class SimulatedWebSearch(_SimulatedDocumentsComponent):
    """Stand-in for a web search component: `top_k` made-up results under the reserved .invalid domain."""

    family = "web_search"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        query = str(kwargs.get("query") or "")
        key = _digest(query)
        docs, links = [], []
        for i in range(1, (self.top_k or 3) + 1):
            link = f"https://{SIMULATED_DOMAIN}/search/{key}/{i}"
            links.append(link)
            docs.append(Document(content=f"Simulated search result {i} for: {query}",
                                 meta={"title": f"Result {i}", "link": link, "genops_simulated": True}))
        return {"documents": docs, "links": links}


@component
class SimulatedLinkFetcher(_SimulatedDocumentsComponent):
    """Stand-in for a link content fetcher: a small HTML page per URL, fetched from nowhere."""

    family = "link_fetcher"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        streams = []
        for url in kwargs.get("urls") or []:
            html = (f"<html><head><title>Simulated page</title></head><body><p>Simulated content of {url}. "
                    "It was not fetched: genops ran this pipeline with --simulate.</p></body></html>")
            streams.append(ByteStream(data=html.encode(), mime_type="text/html",
                                      meta={"url": url, "content_type": "text/html", "genops_simulated": True}))
        return {"streams": streams}


# -- components whose parsing library is missing here ---------------------------------------------------------------

#: Stand-ins for a component that exists here but imports a library only when it runs (trafilatura, pypdf, nltk):
#: the same class, so its real sockets are kept.
_DEPENDENCY_FAMILIES = ("converter", "pass_through")
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.S | re.I)


class _SimulatedLocalComponent(_StandIn):
    def __init__(self, original_type: str | None = None, missing: list[str] | None = None) -> None:
        self.original_type, self.missing = original_type, list(missing or [])
        self._init_params = {"original_type": original_type, "missing": self.missing}
        mirror_sockets(self, original_type or "", self.family)


def _source_text(source: Any) -> tuple[str, dict[str, Any]]:
    """A converter source's text and metadata: a ByteStream's bytes, else a local file's (a missing file reads as
    empty, as the simulation cannot tell a real converter's error apart)."""
    from pathlib import Path

    if isinstance(source, ByteStream):
        data, meta = source.data, dict(source.meta or {})
        html = "html" in str(source.mime_type or meta.get("content_type") or "")
    else:
        path = Path(str(source))
        data = path.read_bytes() if path.is_file() else b""
        meta, html = {"file_path": str(source)}, path.suffix.lower() in (".html", ".htm")
    text = data.decode("utf-8", errors="replace")
    if html or text.lstrip().lower().startswith(("<!doctype html", "<html")):
        text = re.sub(r"\s+", " ", _TAG.sub(" ", text)).strip()
    return text, meta


@component
class SimulatedConverter(_SimulatedLocalComponent):
    """Stand-in for a converter whose parsing library is missing: one Document per source with its text (HTML tags
    dropped) and the source's metadata."""

    family = "converter"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        sources = list(kwargs.get("sources") or [])
        meta = kwargs.get("meta")
        documents = []
        for i, source in enumerate(sources):
            text, source_meta = _source_text(source)
            extra = meta[i] if isinstance(meta, list) and i < len(meta) else meta
            documents.append(Document(content=text, meta={**source_meta, **(extra if isinstance(extra, dict)
                                                                             else {})}))
        return {"documents": documents}


@component
class SimulatedPassThrough(_SimulatedLocalComponent):
    """Stand-in for a preprocessor whose library is missing (an NLTK sentence splitter): documents pass through
    unchanged."""

    family = "pass_through"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"documents": list(kwargs.get("documents") or [])}


def _dependency_stand_in(type_path: str, missing: list[tuple[str, str]]) -> dict[str, Any]:
    cls = SimulatedConverter if ".converters." in f".{type_path}" else SimulatedPassThrough
    return {"type": f"{__name__}.{cls.__name__}",
            "init_parameters": {"original_type": type_path, "missing": [module for module, _package in missing]}}


# -- retrieval over in-memory stores ----------------------------------------------------------------------------

class _SimulatedRetriever(_StandIn):
    """Retrieval from the in-memory store that replaced a server-backed one."""

    def __init__(self, document_store: Any, original_type: str | None = None, top_k: int | None = None) -> None:
        self.document_store = document_store
        self.original_type, self.top_k = original_type, top_k
        self._init_params = {"original_type": original_type, "top_k": top_k}
        mirror_sockets(self, original_type or "", self.family)

    def to_dict(self) -> dict[str, Any]:
        from haystack.core.serialization import default_to_dict

        return default_to_dict(self, document_store=self.document_store.to_dict(), **self._init_params)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        from haystack.core.serialization import default_from_dict
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        params = data.get("init_parameters") or {}
        if isinstance(params.get("document_store"), dict):
            params["document_store"] = InMemoryDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, data)

    def _bm25(self, query: str, filters: Any, top_k: int) -> list[Any]:
        return self.document_store.bm25_retrieval(query=query, filters=filters, top_k=top_k) if query else []

    def _dense(self, embedding: Any, filters: Any, top_k: int) -> list[Any]:
        if not embedding:
            return []
        docs = self.document_store.filter_documents(filters=filters)
        if not any(d.embedding is not None for d in docs):
            return []
        return self.document_store.embedding_retrieval(query_embedding=embedding, filters=filters, top_k=top_k)

    def _limit(self, kwargs: dict[str, Any]) -> tuple[Any, int]:
        return kwargs.get("filters"), int(kwargs.get("top_k") or self.top_k or 10)


@component
class SimulatedBM25Retriever(_SimulatedRetriever):
    family = "bm25_retriever"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        filters, top_k = self._limit(kwargs)
        return {"documents": self._bm25(str(kwargs.get("query") or ""), filters, top_k)}


@component
class SimulatedEmbeddingRetriever(_SimulatedRetriever):
    family = "embedding_retriever"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        filters, top_k = self._limit(kwargs)
        return {"documents": self._dense(kwargs.get("query_embedding"), filters, top_k)}


@component
class SimulatedSparseRetriever(_SimulatedRetriever):
    """Sparse-vector retrieval: documents ranked by the sparse dimensions they share with the query."""

    family = "sparse_retriever"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        filters, top_k = self._limit(kwargs)
        return {"documents": _sparse_ranked(kwargs.get("query_sparse_embedding"),
                                            self.document_store.filter_documents(filters=filters))[:top_k]}


def _sparse_ranked(query: Any, documents: list[Any]) -> list[Any]:
    wanted = dict(zip(getattr(query, "indices", []) or [], getattr(query, "values", []) or [], strict=False))

    def score(doc: Any) -> float:
        sparse = getattr(doc, "sparse_embedding", None)
        if sparse is None:
            return 0.0
        return sum(wanted.get(i, 0.0) * v for i, v in zip(sparse.indices, sparse.values, strict=False))

    return [doc for _score, _i, doc in sorted(((score(d), i, d) for i, d in enumerate(documents)),
                                              key=lambda t: (-t[0], t[1]))]


@component
class SimulatedHybridEmbeddingRetriever(_SimulatedRetriever):
    """Hybrid retrieval: dense and BM25 results merged by reciprocal rank (sparse inputs are accepted, unused)."""

    family = "hybrid_retriever"

    def run(self, **kwargs: Any) -> dict[str, Any]:
        filters, top_k = self._limit(kwargs)
        ranked: dict[str, tuple[float, Any]] = {}
        sparse = kwargs.get("query_sparse_embedding")
        sparse_hits = (_sparse_ranked(sparse, self.document_store.filter_documents(filters=filters))[:top_k]
                       if sparse is not None else [])
        for result in (self._dense(kwargs.get("query_embedding"), filters, top_k),
                       self._bm25(str(kwargs.get("query") or ""), filters, top_k), sparse_hits):
            for rank, doc in enumerate(result):
                score, _ = ranked.get(doc.id, (0.0, doc))
                ranked[doc.id] = (score + 1.0 / (60 + rank), doc)
        best = sorted(ranked.values(), key=lambda s: -s[0])[:top_k]
        return {"documents": [doc for _score, doc in best]}


# -- which component becomes which stand-in -------------------------------------------------------------------------

#: Rankers that compute locally from metadata and need no model: they stay real.
_LOCAL_RANKERS = ("LostInTheMiddleRanker", "MetaFieldRanker", "MetaFieldGroupingRanker", "LLMRanker")
_WRAPPERS = ("FallbackChatGenerator",)  # delegate to nested generators, which are replaced themselves


def family_of(type_path: str) -> str | None:
    """The stand-in family of a component class path, or None when the component runs for real."""
    module, _, name = type_path.rpartition(".")
    if module.startswith(__name__) or name in _WRAPPERS:
        return None
    if name.endswith("ChatGenerator"):
        return "chat_generator"
    if name.endswith("Generator") and "Image" not in name:
        return "text_generator"
    if name.endswith("Embedder"):
        sparse = "Sparse" in name
        if "Document" in name:
            return "sparse_document_embedder" if sparse else "document_embedder"
        return "sparse_text_embedder" if sparse else "text_embedder"
    if name.endswith("Ranker") and name not in _LOCAL_RANKERS:
        return "ranker"
    if name.endswith("Reader"):
        return "reader"
    if name.endswith("NamedEntityExtractor"):
        return "entity_extractor"
    if name.endswith("WebSearch") or ".websearch" in module:
        return "web_search"
    if name == "LinkContentFetcher":
        return "link_fetcher"
    if name.endswith("Retriever") and module.startswith("haystack_integrations."):
        if "Hybrid" in name:
            return "hybrid_retriever"
        if "Sparse" in name:
            return "sparse_retriever"
        return "embedding_retriever" if "Embedding" in name else "bm25_retriever"
    return None


_STAND_INS = {
    "chat_generator": SimulatedChatGenerator, "text_generator": SimulatedTextGenerator,
    "text_embedder": SimulatedTextEmbedder, "document_embedder": SimulatedDocumentEmbedder,
    "sparse_text_embedder": SimulatedSparseTextEmbedder, "sparse_document_embedder": SimulatedSparseDocumentEmbedder,
    "ranker": SimulatedRanker, "reader": SimulatedReader, "entity_extractor": SimulatedEntityExtractor,
    "web_search": SimulatedWebSearch, "link_fetcher": SimulatedLinkFetcher,
    "bm25_retriever": SimulatedBM25Retriever, "embedding_retriever": SimulatedEmbeddingRetriever,
    "hybrid_retriever": SimulatedHybridEmbeddingRetriever, "sparse_retriever": SimulatedSparseRetriever,
}


@dataclass
class Simulated:
    """One replaced component or document store, for the run's report."""

    path: str  # "llm", "agent.chat_generator", "agent.tools[0].component"
    original_type: str
    stand_in: str
    note: str = ""  # e.g. "not installed here"

    def to_json(self) -> dict[str, str]:
        out = {"path": self.path, "original_type": self.original_type, "stand_in": self.stand_in}
        if self.note:
            out["note"] = self.note
        return out


def _model_of(params: dict[str, Any], type_path: str | None = None) -> str:
    from genops_cli.tracking.usage import model_of

    model = params.get("model") or params.get("model_name") or params.get("azure_deployment") or params.get(
        "model_id")
    if not model:
        model = model_of(params)  # e.g. a local Hugging Face generator's huggingface_pipeline_kwargs.model
    if not model and type_path:
        from genops_cli.execution.loading import default_model

        model = default_model(type_path)
    if isinstance(model, dict):  # TGI / HF API generators: api_params {"model": ...} or {"url": ...}
        model = None
    api_params = params.get("api_params")
    if not model and isinstance(api_params, dict):
        model = api_params.get("model") or api_params.get("url")
    return str(model or "unknown-model")


def _stand_in(type_path: str, params: dict[str, Any], family: str, provider: str | None,
              max_tokens: int | None, output_tokens: int | None) -> dict[str, Any]:
    cls = _STAND_INS[family]
    target = f"{__name__}.{cls.__name__}"
    model = _model_of(params, type_path)
    common = {"model": model, "provider": provider, "original_type": type_path}
    if family == "chat_generator":
        settings = params.get("generation_kwargs") if isinstance(params.get("generation_kwargs"), dict) else {}
        reply_schema = reply_schema_of({**settings, **({"response_format": params["response_format"]}
                                                      if params.get("response_format") else {})})
        init = {**common, "max_tokens": max_tokens, "output_tokens": output_tokens, "reply_schema": reply_schema}
    elif family == "text_generator":
        system = params.get("system_prompt")
        init = {**common, "max_tokens": max_tokens, "output_tokens": output_tokens,
                "system_prompt": system if isinstance(system, str) else None}
    elif family.endswith("embedder"):
        dims = params.get("dimensions")
        init = {**common, "dimensions": dims if isinstance(dims, int) else None}
    elif family.endswith("retriever"):
        top_k = params.get("top_k")
        init = {"original_type": type_path, "top_k": top_k if isinstance(top_k, int) else None,
                "document_store": _memory_store(params.get("document_store"))}
    else:
        top_k = params.get("top_k")
        init = {"original_type": type_path, "model": model if model != "unknown-model" else None,
                "top_k": top_k if isinstance(top_k, int) else None}
    return {"type": target, "init_parameters": init}


def stand_in_for(instance: Any) -> Any | None:
    """The stand-in that answers, in a simulated run, a real generator's or embedder's direct `run()` call: one a
    custom component built itself, which the pipeline's data (what simulation rewrites) does not show. None for
    a class with no generator or embedder stand-in."""
    from genops_cli.tracking.usage import max_tokens_of, provider_for

    cls = type(instance)
    type_path = f"{cls.__module__}.{cls.__name__}"
    family = family_of(type_path)
    if family is None or not family.endswith(("generator", "embedder")):
        return None
    try:
        params = instance.to_dict().get("init_parameters") or {}
    except Exception:  # a component without a usable to_dict: its model attribute still says enough
        params = {"model": getattr(instance, "model", None)}
    provider = provider_for(cls.__name__, type_path, _model_of(params, type_path), params)
    spec = _stand_in(type_path, params, family, provider, max_tokens_of(params), None)
    return _STAND_INS[family](**spec["init_parameters"])


def _memory_store(store: Any) -> dict[str, Any]:
    """An in-memory store for a server-backed one. Components that pointed at the same server collection share
    one in-memory index (writer and retriever see the same documents)."""
    key = json.dumps(store, sort_keys=True, default=str) if store is not None else "default"
    params: dict[str, Any] = {"index": f"genops-simulated-{_digest(key)}", "embedding_similarity_function": "cosine"}
    if _store_takes_shared():
        params["shared"] = True  # Haystack 3: an index is shared only when asked; 2.x shares by index always
    return {"type": "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore",
            "init_parameters": params}


#: The index of a simulated copy's in-memory store that stands for the real store's shared index `<index>`:
#: `SIMULATED_INDEX + <index>`. A named in-memory index is process-global storage (Haystack 2.x always, 3.x unless
#: `shared: false`), so a simulated run writing simulated embeddings into it would hand them to the real runs of
#: the same process; it writes into its own index instead, and reads what the real one holds through
#: `documents.sync_simulated_stores`.
SIMULATED_INDEX = "genops-simulated:"


def _simulated_index(store: dict[str, Any]) -> dict[str, Any]:
    params = store["init_parameters"]
    index = params.get("index")
    if not isinstance(index, str) or index.startswith(("genops-simulated-", SIMULATED_INDEX)) or \
            params.get("shared") is False:  # unnamed or instance-local: nothing shared to protect
        return store
    return {**store, "init_parameters": {**params, "index": SIMULATED_INDEX + index}}


def real_index_of(index: str | None) -> str | None:
    """The real index a simulated store stands for, or None."""
    return index[len(SIMULATED_INDEX):] if isinstance(index, str) and index.startswith(SIMULATED_INDEX) else None


def _store_takes_shared() -> bool:
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    return "shared" in inspect.signature(InMemoryDocumentStore.__init__).parameters


def _replaceable(type_path: str) -> bool:
    """A class is simulated when it exists here, or is known to exist elsewhere (a removed Haystack 2.x class in
    the migration table, a class of a known integration package that is not installed), or lives outside
    Haystack's namespaces (a platform's or a team's own generator: it is never imported, so no allowlist is
    needed). A Haystack class path that matches nothing known (a typo, an invented path) is left for the loader
    to report."""
    if _real_class(type_path) is not None:
        return True
    if type_path.split(".", 1)[0] not in HAYSTACK_NAMESPACES:
        return True
    from genops_cli.execution.loading import integration_package_for
    from genops_cli.execution.migrate import migration_table

    return migration_table().find(type_path) is not None or integration_package_for(
        type_path.rpartition(".")[0]) is not None


def simulated_tool(**kwargs: Any) -> str:
    """What a simulated remote tool (an MCP server's) returns: a deterministic text naming its arguments."""
    text = json.dumps(kwargs, sort_keys=True, default=str)
    return f"[simulated tool result {_digest(text)} for {text}]"


def _is_remote_tool(type_path: str) -> bool:
    """Tools that reach a server to list or call their functions (MCP)."""
    return ".tools.mcp." in f".{type_path}." or type_path.rsplit(".", 1)[-1] in ("MCPTool", "MCPToolset")


def _tool_stand_in(type_path: str, data: dict[str, Any]) -> dict[str, Any]:
    def tool(name: str, description: str | None) -> dict[str, Any]:
        return {"type": "haystack.tools.tool.Tool", "data": {
            "name": name, "description": description or f"simulated stand-in for the remote tool {name}",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
            "function": f"{__name__}.simulated_tool"}}

    if type_path.endswith("Toolset"):
        names = data.get("tool_names") or ["mcp_tool"]
        return {"type": "haystack.tools.toolset.Toolset", "data": {"tools": [tool(str(n), None) for n in names]}}
    return tool(str(data.get("name") or "mcp_tool"), data.get("description"))


def _generator_family_by_wiring(data: dict[str, Any], name: str, family: str) -> str:
    """For a generator whose class is not importable here, the pipeline's wiring tells its shape: a `messages`
    input makes it a chat generator, a `prompt` input a text generator."""
    sockets = {str(c.get("receiver", "")).partition(".")[2] for c in data.get("connections") or []
               if isinstance(c, dict) and str(c.get("receiver", "")).partition(".")[0] == name}
    if "messages" in sockets:
        return "chat_generator"
    if "prompt" in sockets:
        return "text_generator"
    return family


def _is_local_processor(type_path: str) -> bool:
    """Converters and preprocessors: local code whose output a plain-text stand-in can give."""
    return any(f".{kind}." in f".{type_path}" for kind in ("converters", "preprocessors"))


def _is_server_store(value: dict[str, Any]) -> bool:
    type_path = value.get("type")
    return (isinstance(type_path, str) and ".document_stores." in f".{type_path}"
            and not type_path.endswith("InMemoryDocumentStore"))


def simulate_components(data: dict[str, Any], profile: PipelineProfile, output_tokens: int | None) -> list[Simulated]:
    """Rewrite a serialized pipeline in place: every model-backed or network-bound component (top level or nested
    in Agents, tools, AgentTools, LLM-backed components) and every server-backed document store becomes its
    stand-in. Returns what was replaced."""
    from genops_cli.execution.migrate import missing_dependencies_of
    from genops_cli.tracking.usage import max_tokens_of, provider_for

    replaced: list[Simulated] = []

    def walk(value: Any, path: str, top_name: str | None) -> Any:
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]", None) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        type_path = value.get("type")
        params = value.get("init_parameters")
        if isinstance(type_path, str) and isinstance(value.get("data"), dict) and _is_remote_tool(type_path):
            new_tool = _tool_stand_in(type_path, value["data"])
            replaced.append(Simulated(path, type_path, new_tool["type"].rsplit(".", 1)[-1]))
            return new_tool
        if isinstance(type_path, str) and isinstance(params, dict):
            if type_path.endswith("InMemoryDocumentStore"):
                return _simulated_index(value)
            if _is_server_store(value):
                store = _memory_store(value)
                replaced.append(Simulated(path, type_path, "InMemoryDocumentStore"))
                return store
            missing = missing_dependencies_of(type_path, params) if _is_local_processor(type_path) else []
            if missing:
                packages = " ".join(dict.fromkeys(package for _module, package in missing))
                new = _dependency_stand_in(type_path, missing)
                replaced.append(Simulated(path, type_path, new["type"].rsplit(".", 1)[-1],
                                          f"needs {packages} (pip install {packages}), not installed here"))
                return new
            family = family_of(type_path)
            if family in ("chat_generator", "text_generator") and top_name and _real_class(type_path) is None:
                family = _generator_family_by_wiring(data, top_name, family)
            if family is not None and _replaceable(type_path):
                prof = profile.components.get(top_name) if top_name else None
                name = type_path.rsplit(".", 1)[-1]
                provider = prof.provider if prof is not None and prof.provider else provider_for(
                    name, type_path, _model_of(params), params)
                new = _stand_in(type_path, params, family, provider, max_tokens_of(params), output_tokens)
                note = "" if _real_class(type_path) is not None else (
                    "not installed here" if type_path.split(".", 1)[0] in HAYSTACK_NAMESPACES
                    else "not imported (outside Haystack)")
                replaced.append(Simulated(path, type_path, new["type"].rsplit(".", 1)[-1], note))
                store = params.get("document_store")
                if family.endswith("retriever") and isinstance(store, dict) and _is_server_store(store):
                    replaced.append(Simulated(f"{path}.document_store", str(store["type"]), "InMemoryDocumentStore"))
                return new
        return {k: walk(v, f"{path}.{k}" if k not in ("init_parameters", "data") else path, None)
                for k, v in value.items()}

    for name in list(data["components"]):
        data["components"][name] = walk(data["components"][name], name, name)
    _schemas_from_validators(data)
    return replaced


def _schemas_from_validators(data: dict[str, Any]) -> None:
    """A simulated chat generator whose replies feed a JsonSchemaValidator answers JSON of that validator's schema
    (a self-correcting loop would otherwise retry until max_runs_per_component)."""
    components = data["components"]
    for conn in data.get("connections") or []:
        if not isinstance(conn, dict):
            continue
        sender, _, out = str(conn.get("sender", "")).partition(".")
        receiver = str(conn.get("receiver", "")).partition(".")[0]
        generator, validator = components.get(sender), components.get(receiver)
        if out != "replies" or not isinstance(generator, dict) or not isinstance(validator, dict):
            continue
        schema = (validator.get("init_parameters") or {}).get("json_schema")
        params = generator.get("init_parameters")
        if str(validator.get("type", "")).endswith("JsonSchemaValidator") and isinstance(schema, dict) and \
                generator.get("type") == f"{__name__}.{SimulatedChatGenerator.__name__}" and \
                isinstance(params, dict) and not params.get("reply_schema"):
            params["reply_schema"] = schema


# -- agent steps --------------------------------------------------------------------------------------------------

def apply_agent_steps(pipeline: Any, configured: int | dict[str, int] | None,
                      recorded: dict[str, list[int]] | None = None) -> dict[str, int | list[int]]:
    """Set how many LLM steps each simulated Agent takes: `configured` (a number for every Agent, or
    {agent or AgentTool name | "default": steps}) wins, else the steps recorded for that Agent, else
    DEFAULT_AGENT_STEPS. Agents nested in AgentTools are found through their tools. Returns what was set."""
    chosen: dict[str, int | list[int]] = {}

    def steps_for(name: str) -> int | list[int] | None:
        if isinstance(configured, int):
            return configured
        if isinstance(configured, dict):
            if name in configured:
                return configured[name]
            if "default" in configured:
                return configured["default"]
        if recorded and recorded.get(name):
            return list(recorded[name])
        return None

    def visit(name: str, agent: Any, depth: int) -> None:
        generator = getattr(agent, "chat_generator", None)
        if isinstance(generator, SimulatedChatGenerator):
            steps = steps_for(name)
            generator.agent_steps = steps
            chosen[name] = steps if steps is not None else DEFAULT_AGENT_STEPS
        for tool in _flatten_tools(getattr(agent, "tools", None)):
            inner = getattr(tool, "_component", None)
            if inner is not None and hasattr(inner, "chat_generator") and depth < 5:
                visit(getattr(tool, "name", name), inner, depth + 1)

    for name, instance in pipeline.walk():
        visit(name, instance, 0)
    return chosen


def recorded_agent_steps(ledger: Any, pipeline_name: str) -> dict[str, list[int]]:
    """Agent component -> LLM steps taken in each recorded (real, successful) run of the pipeline."""
    with ledger.read() as tx:
        rows = tx.query(
            "SELECT c.component_name, c.run_id, COUNT(*) FROM calls c JOIN runs r ON r.run_id = c.run_id "
            "WHERE r.pipeline_name = ? AND NOT r.simulated AND r.status = 'ok' AND c.span_kind = 'agent_llm' "
            "GROUP BY c.component_name, c.run_id",
            [pipeline_name],
        )
    out: dict[str, list[int]] = {}
    for component_name, _run_id, count in rows:
        out.setdefault(component_name, []).append(int(count))
    return {name: sorted(counts) for name, counts in out.items()}


# -- what the run says before it starts ---------------------------------------------------------------------------

def prepare_run(loaded: Any, settings: Any, ledger: Any, has_documents: bool, events: Any) -> None:
    """Before the first run of a loaded pipeline: set simulated Agents' steps (configured, else recorded history),
    say what was simulated, and warn about retrievers over in-memory stores that nothing fills."""
    if loaded.simulated:
        recorded: dict[str, list[int]] = {}
        configured = getattr(settings, "simulation_agent_steps", None)
        if not isinstance(configured, int):
            try:
                recorded = recorded_agent_steps(ledger, loaded.profile.name)
            except Exception:  # no ledger yet, or unreadable: the default steps apply
                recorded = {}
        steps = apply_agent_steps(loaded.pipeline, configured, recorded)
        replaced = ", ".join(f"{s.path} ({s.original_type.rsplit('.', 1)[-1]} -> {s.stand_in})"
                             for s in loaded.simulated_components)
        events.info("simulate.components", f"simulated: {replaced or 'nothing (no model-backed component)'}",
                    components=len(loaded.simulated_components))
        if steps:
            described = ", ".join(f"{name}: {'recorded ' + str(v) if isinstance(v, list) else v}"
                                  for name, v in steps.items())
            events.info("simulate.agent_steps", f"simulated agent LLM steps: {described}")
        for item in loaded.simulated_components:
            if item.note.startswith("needs "):
                events.warning("simulate.unavailable", f"{item.path}: {item.original_type} {item.note} "
                               "(simulated without it); genops validate --fix-issues --yes installs it")
            elif item.note:
                events.warning("simulate.unavailable", f"{item.path}: {item.original_type} is {item.note} "
                               "(simulated anyway); a real run needs it: genops validate --fix-issues --yes")
    if not has_documents:
        for message in empty_retriever_stores(loaded):
            events.warning("documents.empty", message)


def empty_retriever_stores(loaded: Any) -> list[str]:
    """One warning per retriever that reads an empty in-memory store (its contents are never serialized, so
    without --documents it retrieves nothing)."""
    from genops_cli.execution.documents import in_memory_stores

    out = []
    for name, store, _needs_embeddings in in_memory_stores(loaded):
        instance = loaded.pipeline.get_component(name) if name in dict(loaded.pipeline.walk()) else None
        if "Retriever" not in type(instance).__name__ and not getattr(instance, "tools", None):
            continue
        try:
            empty = store.count_documents() == 0
        except Exception:  # a store that cannot count is not ours to judge
            continue
        if empty:
            out.append(f"component '{name}' retrieves from an in-memory document store that is empty; pass "
                       "--documents FILE.jsonl to fill it")
    return out
