"""`--documents FILE.jsonl`: fill a loaded pipeline's in-memory document stores (their contents are not
serialized). When a store feeds an embedding retriever and the documents carry no embeddings, they are embedded
with the pipeline's own embedder model (a simulator under --simulate) and that call is recorded like any other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from genops_cli.errors import InputError
from genops_cli.execution.loading import LoadedPipeline
from genops_cli.safe_load import parse_json, read_text


def read_documents(path: str | Path) -> list[Any]:
    from haystack import Document

    p = Path(path)
    if not p.exists():
        raise InputError(f"--documents {path}: file not found")
    if p.is_dir():
        raise InputError(f"--documents {path}: is a directory; pass a JSONL file")
    docs = []
    text = read_text(p, "documents", InputError, label=f"--documents {path}")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = parse_json(line, f"--documents {path}", "documents", InputError, line=number)
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise InputError(f"--documents {path}:{number}: each line needs a string 'content' field")
        try:
            docs.append(Document.from_dict(item))
        except Exception as exc:
            raise InputError(f"--documents {path}:{number}: not a Haystack Document ({exc})") from None
    if not docs:
        raise InputError(f"--documents {path}: no documents in the file")
    return docs


def _stores_of(obj: Any, depth: int = 0, seen: set[int] | None = None) -> list[Any]:
    """In-memory stores reachable from a component (directly, or through an Agent's tools)."""
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    seen = seen if seen is not None else set()
    if obj is None or depth > 4 or id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, InMemoryDocumentStore):
        return [obj]
    found = []
    for attr in ("document_store", "_component", "component", "tools", "_tools", "pipeline"):
        value = getattr(obj, attr, None)
        if isinstance(value, list | tuple):
            for item in value:
                found += _stores_of(item, depth + 1, seen)
        elif value is not None:
            found += _stores_of(value, depth + 1, seen)
    return found


def in_memory_stores(loaded: LoadedPipeline) -> list[tuple[str, Any, bool]]:
    """(component name, store, needs embeddings) for each distinct in-memory store in the pipeline."""
    result: list[tuple[str, Any, bool]] = []
    seen: set[int] = set()
    for name, instance in loaded.pipeline.walk():
        needs_embeddings = "EmbeddingRetriever" in type(instance).__name__
        for store in _stores_of(instance):
            if id(store) in seen:
                for i, (n, s, _needs) in enumerate(result):
                    if s is store and needs_embeddings:
                        result[i] = (n, s, True)
                continue
            seen.add(id(store))
            result.append((name, store, needs_embeddings))
    return result


def document_embedder_for(loaded: LoadedPipeline) -> Any | None:
    """A document embedder matching the pipeline's text embedder (same model), or None."""
    for name, comp in loaded.data["components"].items():
        profile = loaded.profile.components[name]
        if not profile.is_embedder or "Document" in profile.type_name:
            continue
        params = dict(comp.get("init_parameters") or {})
        if loaded.simulated:
            from genops_cli.execution.simulate import SimulatedDocumentEmbedder

            return SimulatedDocumentEmbedder(model=profile.model or "unknown-model", provider=profile.provider,
                                             original_type=profile.fully_qualified_type,
                                             dimensions=params.get("dimensions"))
        if profile.type_name == "OpenAITextEmbedder":
            from haystack.components.embedders import OpenAIDocumentEmbedder
            from haystack.utils import Secret

            kwargs: dict[str, Any] = {"model": profile.model}
            for key in ("api_base_url", "organization", "dimensions", "timeout", "max_retries"):
                if params.get(key) is not None:
                    kwargs[key] = params[key]
            if isinstance(params.get("api_key"), dict):
                kwargs["api_key"] = Secret.from_dict(params["api_key"])
            # genops' own indexing step: its progress is the run's, never a third-party bar
            return OpenAIDocumentEmbedder(**kwargs, progress_bar=False)
    return None


def fill_stores(loaded: LoadedPipeline, documents: list[Any]) -> dict[str, int]:
    """Write documents into every in-memory store; embed first where an embedding retriever needs it.
    Must run inside a genops capture so embedding calls are recorded. Returns {component: documents}."""
    from haystack.document_stores.types import DuplicatePolicy

    stores = in_memory_stores(loaded)
    if not stores:
        raise InputError(f"--documents: {loaded.path} has no in-memory document store to fill")
    written: dict[str, int] = {}
    embedded: list[Any] | None = None
    for name, store, needs_embeddings in stores:
        docs = documents
        if needs_embeddings and any(d.embedding is None for d in documents):
            if embedded is None:
                embedder = document_embedder_for(loaded)
                if embedder is None:
                    raise InputError(
                        f"--documents: component '{name}' retrieves by embedding but the documents have no "
                        "'embedding' and the pipeline has no text embedder to embed them with"
                    )
                from haystack import Pipeline

                source = next(c for c in loaded.profile.components.values()
                              if c.is_embedder and "Document" not in c.type_name)
                loaded.profile.components["genops_document_embedder"] = replace(
                    source, name="genops_document_embedder",
                    type_name=source.type_name.replace("TextEmbedder", "DocumentEmbedder"))
                # A one-component pipeline, so the tracer records the embedding call like any other.
                indexing = Pipeline()
                indexing.add_component("genops_document_embedder", embedder)
                embedded = indexing.run({"genops_document_embedder": {"documents": documents}})[
                    "genops_document_embedder"]["documents"]
            docs = embedded
        written[name] = store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE)
    return written


def sync_simulated_stores(loaded: LoadedPipeline, real: LoadedPipeline | None = None) -> int:
    """Give a simulated pipeline's in-memory stores the documents their real counterparts hold now (filled by an
    earlier real run, by the application, by `--documents`), so a simulated run retrieves, and so prompts, what a
    real one would. The real store of a component is `real`'s store of the same component when given, else the
    shared index the simulated one stands for (`simulate.SIMULATED_INDEX`). Where an embedding retriever reads
    the store, the copies are embedded by the simulator (no provider call, nothing recorded). The real stores
    are only read. Returns how many documents were copied."""
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.document_stores.types import DuplicatePolicy

    from genops_cli.execution.simulate import real_index_of

    real_stores = {name: store for name, store, _ in in_memory_stores(real)} if real is not None else {}
    copied = 0
    embedder: Any = None
    for name, store, needs_embeddings in in_memory_stores(loaded):
        source = real_stores.get(name)
        if source is None and (index := real_index_of(getattr(store, "index", None))) is not None:
            source = InMemoryDocumentStore(index=index)  # the process-global storage of that index
        if source is None or source is store:
            continue
        total = source.count_documents()
        if total == 0 or total == store.count_documents():
            continue
        docs = source.filter_documents()
        if needs_embeddings:
            embedder = embedder or document_embedder_for(loaded)
            if embedder is not None:
                docs = embedder.run(documents=[replace(d, embedding=None) for d in docs])["documents"]
        copied += store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE)
    return copied

