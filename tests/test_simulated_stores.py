"""A simulated run never writes into the stores a real run of the same process reads, and still reads what they
hold: in-memory stores with a named index are shared process-wide (`shared: true`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from conftest import cli, json_lines, ledger_rows, sample


def _own_index(tmp_path: Any) -> tuple[str, str]:
    import uuid

    text = open(sample("embedding_rag")).read()
    index = f"test-{uuid.uuid4().hex}"
    path = tmp_path / "pipeline.yml"
    path.write_text(text.replace("index: ai_gateway_docs", f"index: {index}"))
    return str(path), index


def _shared_store(index: str) -> Any:
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    return InMemoryDocumentStore(index=index, shared=True)


def _run(path: str, *extra: str) -> dict[str, Any]:
    result = cli("run", path, "--inputs", sample("embedding_rag", "inputs.json"), "--documents",
                 sample("embedding_rag", "corpus.jsonl"), "--json", *extra)
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    return out


def test_a_simulated_run_leaves_the_shared_store_to_the_real_runs(openai_server, tmp_path):
    openai_server.model_usage = {"text-embedding-3-small": {"prompt_tokens": 1000}}
    openai_server.usage = {"prompt_tokens": 500, "completion_tokens": 100}
    path, index = _own_index(tmp_path)
    simulated = _run(path, "--simulate")
    assert simulated["simulated"] is True
    assert _shared_store(index).count_documents() == 0  # the simulated documents went to a private copy
    assert openai_server.requests == []

    real = _run(path)
    embeddings = [c for c in real["components"] if c["span_kind"] == "embedding"]
    assert [c["name"] for c in embeddings] == ["genops_document_embedder", "query_embedder"]
    assert all(Decimal(c["cost"]) == Decimal("0.00002") for c in embeddings)
    retriever = next(c for c in real["components"] if c["name"] == "retriever")
    assert retriever["status"] == "ok"
    store = _shared_store(index)
    assert store.count_documents() == 21
    # the real embeddings (the fake's), not the simulator's
    dims = {len(d.embedding) for d in store.filter_documents()}
    assert len(dims) == 1


def test_a_simulated_run_reads_what_the_shared_store_holds(openai_server, tmp_path):
    """Documents a real run (or the application) put in the shared store are retrieved by a simulated run of the
    same pipeline, embedded by the simulator, so its prompt is as large as the real one's."""
    openai_server.model_usage = {"text-embedding-3-small": {"prompt_tokens": 1000}}
    path, index = _own_index(tmp_path)
    _run(path)
    before = [(d.id, list(d.embedding)) for d in _shared_store(index).filter_documents()]
    requests = len(openai_server.requests)
    result = cli("run", path, "--inputs", sample("embedding_rag", "inputs.json"), "--simulate", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    [(docs,)] = ledger_rows("SELECT documents_retrieved FROM calls WHERE run_id = ? AND component_name = 'retriever'",
                            [out["run_id"]])
    assert docs == 3
    assert len(openai_server.requests) == requests
    assert [(d.id, list(d.embedding)) for d in _shared_store(index).filter_documents()] == before
