"""Haystack 1.x pipeline files (`components` as a list of {name, type, params}, a `pipelines` section of nodes and
their `inputs`) rewritten as a Haystack 3 pipeline, for `genops validate --fix-issues`.

    data, notes = convert_v1(v1_data, path)      # raises PipelineLoadError naming the node it cannot map

One pipeline of the file is converted: `query` when the file has one, else the first. Each 1.x node becomes the
component(s) that do its job in Haystack 3 (an EmbeddingRetriever is a text embedder and an embedding retriever, a
PromptNode a ChatPromptBuilder and a chat generator, a PreProcessor a cleaner and a splitter); the 1.x `Query` and
`File` inputs become the file's declared `inputs` (`query`, `files`), which `genops run` accepts as flat values.
Classes that moved to integration packages are taken from the migration table (migrations.yml), as for 2.x files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from genops_cli.errors import PipelineLoadError

_I = "haystack_integrations."
_STORES = {
    "InMemoryDocumentStore": ("memory", "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore"),
    "ElasticsearchDocumentStore": (
        "elasticsearch", _I + "document_stores.elasticsearch.document_store.ElasticsearchDocumentStore"),
    "OpenSearchDocumentStore": ("opensearch", _I + "document_stores.opensearch.document_store.OpenSearchDocumentStore"),
    "WeaviateDocumentStore": ("weaviate", _I + "document_stores.weaviate.document_store.WeaviateDocumentStore"),
    "PineconeDocumentStore": ("pinecone", _I + "document_stores.pinecone.document_store.PineconeDocumentStore"),
    "QdrantDocumentStore": ("qdrant", _I + "document_stores.qdrant.document_store.QdrantDocumentStore"),
}
_BM25 = {
    "memory": "haystack.components.retrievers.in_memory.bm25_retriever.InMemoryBM25Retriever",
    "elasticsearch": _I + "components.retrievers.elasticsearch.bm25_retriever.ElasticsearchBM25Retriever",
    "opensearch": _I + "components.retrievers.opensearch.bm25_retriever.OpenSearchBM25Retriever",
    "weaviate": _I + "components.retrievers.weaviate.bm25_retriever.WeaviateBM25Retriever",
}
_DENSE = {
    "memory": "haystack.components.retrievers.in_memory.embedding_retriever.InMemoryEmbeddingRetriever",
    "elasticsearch": _I + "components.retrievers.elasticsearch.embedding_retriever.ElasticsearchEmbeddingRetriever",
    "opensearch": _I + "components.retrievers.opensearch.embedding_retriever.OpenSearchEmbeddingRetriever",
    "weaviate": _I + "components.retrievers.weaviate.embedding_retriever.WeaviateEmbeddingRetriever",
    "pinecone": _I + "components.retrievers.pinecone.embedding_retriever.PineconeEmbeddingRetriever",
    "qdrant": _I + "components.retrievers.qdrant.retriever.QdrantEmbeddingRetriever",
}
_CONVERTERS = {
    "TextConverter": "haystack.components.converters.txt.TextFileToDocument",
    "PDFToTextConverter": "haystack.components.converters.pypdf.PyPDFToDocument",
    "PyPDFToDocument": "haystack.components.converters.pypdf.PyPDFToDocument",
    "MarkdownConverter": "haystack.components.converters.markdown.MarkdownToDocument",
    "DocxToTextConverter": "haystack.components.converters.docx.DOCXToDocument",
}
_MIME = {"txt": "text/plain", "pdf": "application/pdf", "md": "text/markdown", "html": "text/html",
         "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
#: 1.x PromptHub / built-in template names -> the question answering prompt they stood for
_QA_TEMPLATE = ("Given these documents, answer the question.\nDocuments:\n{% for document in documents %}"
                "{{ document.content }}\n{% endfor %}\nQuestion: {{ query }}\nAnswer:")
_SECRET = {"type": "env_var", "strict": True}


def is_v1(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("components"), list) and "pipelines" in data


def _moved(path_2x: str) -> str:
    """The Haystack 3 class path of a 2.x class (the migration table's row), else the path itself."""
    from genops_cli.execution.migrate import migration_table

    row = migration_table().find(path_2x)
    return row.new if row is not None and row.new else path_2x


def _store(spec: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    kind, type_path = _STORES.get(str(spec.get("type")), (None, None))
    if kind is None:
        raise PipelineLoadError(f"{where}: document store type {spec.get('type')} has no Haystack 3 equivalent "
                                "genops can write")
    params = dict(spec.get("params") or {})
    index = params.get("index")
    init: dict[str, Any] = {}
    if kind in ("elasticsearch", "opensearch"):
        scheme = "https" if params.get("scheme") == "https" else "http"
        init["hosts"] = f"{scheme}://{params.get('host', 'localhost')}:{params.get('port', 9200)}"
        if kind == "opensearch" and params.get("embedding_dim"):
            init["embedding_dim"] = params["embedding_dim"]
    elif kind == "weaviate":
        init["url"] = str(params.get("host", "http://localhost")) + f":{params.get('port', 8080)}"
    elif kind == "pinecone":
        init["api_key"] = {**_SECRET, "env_vars": ["PINECONE_API_KEY"]}
        if params.get("embedding_dim"):
            init["dimension"] = params["embedding_dim"]
    elif kind == "qdrant":
        init.update({k: params[k] for k in ("url", "host", "port", "embedding_dim") if k in params})
    elif params.get("similarity") in ("cosine", "dot_product"):
        init["embedding_similarity_function"] = params["similarity"]
    if index and kind != "memory":
        init["index"] = index
    return kind, {"type": type_path, "init_parameters": init}


def _template(value: Any, templates: dict[str, dict[str, Any]]) -> str:
    """A PromptNode's default_prompt_template as Jinja: an inline 1.x template ({query}, {join(documents)}), a
    PromptTemplate node, or a PromptHub name (the question answering prompt)."""
    if isinstance(value, str) and value in templates:
        value = (templates[value].get("params") or {}).get("prompt") or ""
    if not isinstance(value, str) or "{" not in value:
        return _QA_TEMPLATE
    text = re.sub(r"\{\s*join\(\s*documents[^}]*\}|\{\s*documents\s*\}",
                  "{% for document in documents %}{{ document.content }}\n{% endfor %}", value)
    return re.sub(r"(?<!\{)\{\s*(\w+)\s*\}(?!\})", r"{{ \1 }}", text)


def _generator(params: dict[str, Any]) -> dict[str, Any]:
    model = str(params.get("model_name_or_path") or "google/flan-t5-base")
    cap = params.get("max_length") if isinstance(params.get("max_length"), int) else None
    if model.startswith(("gpt-", "o1", "o3", "o4", "text-davinci", "chatgpt")):
        init = {"model": model, "api_key": {**_SECRET, "env_vars": ["OPENAI_API_KEY"]}}
        if cap:
            init["generation_kwargs"] = {"max_tokens": cap}
        return {"type": "haystack.components.generators.chat.openai.OpenAIChatGenerator", "init_parameters": init}
    if model.startswith("claude"):
        init = {"model": model, "api_key": {**_SECRET, "env_vars": ["ANTHROPIC_API_KEY"]}}
        if cap:
            init["generation_kwargs"] = {"max_tokens": cap}
        return {"type": "haystack_integrations.components.generators.anthropic.chat.chat_generator."
                        "AnthropicChatGenerator", "init_parameters": init}
    init = {"model": model, "task": "text2text-generation" if "t5" in model else "text-generation"}
    if cap:
        init["generation_kwargs"] = {"max_new_tokens": cap}
    return {"type": _moved("haystack.components.generators.chat.hugging_face_local.HuggingFaceLocalChatGenerator"),
            "init_parameters": init}


class _Builder:
    """Collects the Haystack 3 components and connections; `entry` / `exit` say which socket stands for a 1.x
    node's input and output."""

    def __init__(self, where: str, specs: dict[str, dict[str, Any]]) -> None:
        self.where, self.specs = where, specs
        self.components: dict[str, Any] = {}
        self.connections: list[dict[str, str]] = []
        self.inputs: dict[str, list[str]] = {"query": [], "files": []}
        self.entry: dict[str, dict[str, str]] = {}  # node -> {"documents"|"query"|"sources": "comp.socket"}
        self.exit: dict[str, str] = {}  # node -> "comp.socket" its documents leave from
        self.stores: dict[str, tuple[str, dict[str, Any]]] = {}
        self.notes: list[str] = []

    def store_of(self, node: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = params.get("document_store") or next(
            (n for n, s in self.specs.items() if str(s.get("type")).endswith("DocumentStore")), None)
        spec = self.specs.get(str(name)) if name else None
        if spec is None:
            raise PipelineLoadError(f"{self.where}: node '{node}': no document store to read from")
        if name not in self.stores:
            self.stores[str(name)] = _store(spec, f"{self.where}: node '{name}'")
        return self.stores[str(name)]

    def add(self, name: str, type_path: str, init: dict[str, Any]) -> str:
        self.components[name] = {"type": type_path, "init_parameters": init}
        return name

    def connect(self, sender: str, receiver: str) -> None:
        self.connections.append({"sender": sender, "receiver": receiver})

    def node(self, name: str, spec: dict[str, Any], queried: bool = True) -> None:
        """`queried`: the node takes the 1.x Query (else documents: an EmbeddingRetriever in an indexing pipeline
        embeds the documents it is given)."""
        kind = str(spec.get("type"))
        params = dict(spec.get("params") or {})
        top_k = {"top_k": params["top_k"]} if isinstance(params.get("top_k"), int) else {}
        if kind == "EmbeddingRetriever" and not queried:
            model = str(params.get("embedding_model") or "sentence-transformers/all-MiniLM-L6-v2")
            if model.startswith("text-embedding") or params.get("model_format") == "openai":
                self.add(name, "haystack.components.embedders.openai_document_embedder.OpenAIDocumentEmbedder",
                         {"model": model, "api_key": {**_SECRET, "env_vars": ["OPENAI_API_KEY"]}})
            else:
                self.add(name, _moved("haystack.components.embedders.sentence_transformers_document_embedder."
                                      "SentenceTransformersDocumentEmbedder"), {"model": model})
            self.entry[name] = {"documents": f"{name}.documents"}
            self.exit[name] = f"{name}.documents"
        elif kind in ("BM25Retriever", "ElasticsearchRetriever", "EmbeddingRetriever"):
            store_kind, store = self.store_of(name, params)
            if kind == "EmbeddingRetriever":
                model = str(params.get("embedding_model") or "sentence-transformers/all-MiniLM-L6-v2")
                if model.startswith("text-embedding") or params.get("model_format") == "openai":
                    embedder = ("haystack.components.embedders.openai_text_embedder.OpenAITextEmbedder",
                                {"model": model, "api_key": {**_SECRET, "env_vars": ["OPENAI_API_KEY"]}})
                else:
                    embedder = (_moved("haystack.components.embedders.sentence_transformers_text_embedder."
                                       "SentenceTransformersTextEmbedder"), {"model": model})
                text = self.add(f"{name}_embedder", *embedder)
                if store_kind not in _DENSE:
                    raise PipelineLoadError(f"{self.where}: node '{name}': no embedding retriever for a {store_kind} "
                                            "store in Haystack 3")
                self.add(name, _DENSE[store_kind], {"document_store": store, **top_k})
                self.connect(f"{text}.embedding", f"{name}.query_embedding")
                self.entry[name] = {"query": f"{text}.text"}
            else:
                if store_kind not in _BM25:
                    raise PipelineLoadError(f"{self.where}: node '{name}': no keyword retriever for a {store_kind} "
                                            "store in Haystack 3")
                self.add(name, _BM25[store_kind], {"document_store": store, **top_k})
                self.entry[name] = {"query": f"{name}.query"}
            self.exit[name] = f"{name}.documents"
        elif kind in ("FARMReader", "TransformersReader"):
            self.add(name, _moved("haystack.components.readers.extractive.ExtractiveReader"),
                     {"model": params.get("model_name_or_path", "deepset/roberta-base-squad2"), **top_k})
            self.entry[name] = {"query": f"{name}.query", "documents": f"{name}.documents"}
        elif kind in ("SentenceTransformersRanker", "CohereRanker"):
            self.add(name, _moved("haystack.components.rankers.sentence_transformers_similarity."
                                  "SentenceTransformersSimilarityRanker"),
                     {"model": params.get("model_name_or_path", "cross-encoder/ms-marco-MiniLM-L-6-v2"), **top_k})
            self.entry[name] = {"query": f"{name}.query", "documents": f"{name}.documents"}
            self.exit[name] = f"{name}.documents"
        elif kind == "JoinDocuments":
            mode = {"merge": "merge", "reciprocal_rank_fusion": "reciprocal_rank_fusion"}.get(
                str(params.get("join_mode")), "concatenate")
            self.add(name, "haystack.components.joiners.document_joiner.DocumentJoiner", {"join_mode": mode, **top_k})
            self.entry[name] = {"documents": f"{name}.documents"}
            self.exit[name] = f"{name}.documents"
        elif kind == "PromptNode":
            templates = {n: s for n, s in self.specs.items() if s.get("type") == "PromptTemplate"}
            prompt = self.add(f"{name}_prompt", "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder", {
                "template": [{"role": "user", "content": [
                    {"text": _template(params.get("default_prompt_template"), templates)}]}],
                "required_variables": ["query"]})
            generator = _generator(params)
            self.add(name, generator["type"], generator["init_parameters"])
            self.connect(f"{prompt}.prompt", f"{name}.messages")
            self.entry[name] = {"query": f"{prompt}.query", "documents": f"{prompt}.documents"}
        elif kind == "PreProcessor":
            cleaner = self.add(f"{name}_cleaner", "haystack.components.preprocessors.document_cleaner.DocumentCleaner",
                               {k: params[k] for k in ("remove_empty_lines", "remove_extra_whitespaces")
                                if k in params})
            split = {k: params[k] for k in ("split_by", "split_length", "split_overlap") if k in params}
            if params.get("split_respect_sentence_boundary") and split.get("split_by", "word") == "word":
                split["respect_sentence_boundary"] = True
            self.add(name, "haystack.components.preprocessors.document_splitter.DocumentSplitter", split)
            self.connect(f"{cleaner}.documents", f"{name}.documents")
            self.entry[name] = {"documents": f"{cleaner}.documents"}
            self.exit[name] = f"{name}.documents"
        elif kind in _CONVERTERS:
            self.add(name, _CONVERTERS[kind], {})
            self.entry[name] = {"sources": f"{name}.sources"}
            self.exit[name] = f"{name}.documents"
        elif kind == "FileTypeClassifier":
            types = params.get("supported_types") or ["txt", "pdf", "md", "docx", "html"]
            self.add(name, "haystack.components.routers.file_type_router.FileTypeRouter",
                     {"mime_types": [_MIME.get(str(t), f"application/{t}") for t in types]})
            self.entry[name] = {"sources": f"{name}.sources"}
            for i, t in enumerate(types, start=1):  # 1.x edges name the outputs output_1, output_2...
                self.exit[f"{name}.output_{i}"] = f"{name}.{_MIME.get(str(t), f'application/{t}')}"
        elif kind.endswith("DocumentStore"):
            _store_kind, store = self.store_of(name, {"document_store": name})
            self.add(name, "haystack.components.writers.document_writer.DocumentWriter",
                     {"document_store": store, "policy": "OVERWRITE"})
            self.entry[name] = {"documents": f"{name}.documents"}
        else:
            raise PipelineLoadError(f"{self.where}: node '{name}' ({kind}) has no Haystack 3 equivalent genops can "
                                    "write")

    def wire(self, name: str, inputs: list[str]) -> None:
        entry = self.entry.get(name, {})
        for source in inputs:
            if source in ("Query", "File"):
                socket = entry.get("query" if source == "Query" else "sources")
                if socket:
                    self.inputs["query" if source == "Query" else "files"].append(socket)
                continue
            out = self.exit.get(source)
            if out is not None and ".output_" in source and "sources" in entry:  # a classifier's file type branch
                self.connect(out, entry["sources"])
                continue
            if out is None or "documents" not in entry:
                raise PipelineLoadError(f"{self.where}: node '{name}' takes the output of '{source}', which genops "
                                        "cannot connect in Haystack 3")
            self.connect(out, entry["documents"])
        # nodes that need the query but only read documents upstream (a reader, a ranker, a prompt) get it too
        if "Query" not in inputs and "query" in entry:
            self.inputs["query"].append(entry["query"])


def convert_v1(data: dict[str, Any], path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """The Haystack 3 pipeline a 1.x file's query pipeline (else its first) describes, and notes for the user."""
    where = str(path)
    specs = {str(c.get("name")): c for c in data["components"] if isinstance(c, dict) and c.get("name")}
    pipelines = [p for p in data.get("pipelines") or [] if isinstance(p, dict)]
    if not pipelines:
        raise PipelineLoadError(f"{where}: a Haystack 1.x file with no pipeline in 'pipelines'; nothing to convert")
    chosen = next((p for p in pipelines if p.get("name") == "query"), pipelines[0])
    builder = _Builder(where, specs)
    nodes = [n for n in chosen.get("nodes") or [] if isinstance(n, dict) and n.get("name")]
    for node in nodes:
        spec = specs.get(str(node["name"]))
        if spec is None:
            raise PipelineLoadError(f"{where}: pipeline '{chosen.get('name')}' uses node '{node['name']}', which "
                                    "'components' does not define")
        inputs = node.get("inputs") or []
        builder.node(str(node["name"]), spec, queried="Query" in (inputs if isinstance(inputs, list) else [inputs]))
    for node in nodes:
        inputs = node.get("inputs") or []
        builder.wire(str(node["name"]), [str(i) for i in (inputs if isinstance(inputs, list) else [inputs])])
    out: dict[str, Any] = {"components": builder.components, "connections": builder.connections,
                           "max_runs_per_component": 100, "metadata": {"name": str(chosen.get("name") or "query")}}
    declared = {k: list(dict.fromkeys(v)) for k, v in builder.inputs.items() if v}
    if declared:
        out["inputs"] = declared
    others = [str(p.get("name")) for p in pipelines if p is not chosen]
    notes = [f"converted the Haystack 1.x pipeline '{chosen.get('name')}'"]
    if others:
        notes.append(f"not converted: pipeline(s) {', '.join(others)} of the same file (convert a copy that lists "
                     "it first)")
    return out, notes
