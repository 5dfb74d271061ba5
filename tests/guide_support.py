"""What the integration guide's examples leave to the reader ("your pipeline", "# ... populate with documents ..."),
built with Haystack 3 components against the loopback fakes.

Haystack 3 removed the guide's `OpenAIGenerator` (and `AnthropicGenerator`, `CohereGenerator` were never in
`haystack.components.generators`): its replacement is `OpenAIChatGenerator` fed by a `ChatPromptBuilder` (the
`PromptBuilder` of the guide renders a string; a chat generator takes messages). The guide's model names are
kept: the fakes answer for any model, and genops prices them from its price book.

Usage on the fakes is fixed by `fixed_usage`, so costs are exact:
gpt-3.5-turbo 0.50 / 1.50 USD per 1M tokens -> 1000 in + 500 out = 0.00125
gpt-4         30 / 60                       -> 1000 in + 500 out = 0.06
claude-3-haiku 0.25 / 1.25                  -> 1000 in + 500 out = 0.000875
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

GPT35_RUN = Decimal("0.00125")
GPT4_RUN = Decimal("0.06")
HAIKU_RUN = Decimal("0.000875")

RAG_TEMPLATE = """
    Use the following context to answer the question:

    Context:
    {% for document in documents %}
    {{ document.content }}
    {% endfor %}

    Question: {{question}}

    Answer based on the context:
    """

KNOWLEDGE = [
    "Retrieval-augmented generation (RAG) retrieves documents and gives them to a language model as context.",
    "Machine learning is the study of algorithms that improve through experience.",
    "The key findings: costs fell by a third after caching; latency stayed flat.",
    "Haystack pipelines connect components such as retrievers, prompt builders and generators.",
    "Recent AI developments include agents that call tools in loops.",
]


def fixed_usage(openai_server: Any = None, anthropic_server: Any = None) -> None:
    if openai_server is not None:
        openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    if anthropic_server is not None:
        anthropic_server.usage = {"input_tokens": 1000, "output_tokens": 500}


def document_store() -> Any:
    from haystack import Document
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents([Document(content=text) for text in KNOWLEDGE])
    return store


def chat_prompt(template: str) -> Any:
    """The Haystack 3 replacement of the guide's `PromptBuilder(template=...)` in front of a chat generator."""
    from haystack.components.builders import ChatPromptBuilder
    from haystack.dataclasses import ChatMessage

    return ChatPromptBuilder(template=[ChatMessage.from_user(template)])


def rag_pipeline(model: str = "gpt-3.5-turbo", top_k: int = 5) -> Any:
    """The guide's complete RAG pipeline (retriever -> prompt_builder -> llm), Haystack 3 components."""
    from haystack import Pipeline
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.components.retrievers import InMemoryBM25Retriever

    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=document_store(), top_k=top_k))
    pipeline.add_component("prompt_builder", chat_prompt(RAG_TEMPLATE))
    pipeline.add_component("llm", OpenAIChatGenerator(
        model=model, generation_kwargs={"max_tokens": 200, "temperature": 0.7}))
    pipeline.connect("retriever", "prompt_builder.documents")
    pipeline.connect("prompt_builder", "llm")
    return pipeline


def qa_pipeline(model: str = "gpt-3.5-turbo", template: str = "Answer: {{question}}", name: str = "llm") -> Any:
    """prompt_builder -> llm: the guide's quick-start pipeline (inputs {"prompt_builder": {"question": ...}})."""
    from haystack import Pipeline
    from haystack.components.generators.chat import OpenAIChatGenerator

    pipeline = Pipeline()
    pipeline.add_component("prompt_builder", chat_prompt(template))
    pipeline.add_component(name, OpenAIChatGenerator(model=model))
    pipeline.connect("prompt_builder", name)
    return pipeline
