"""The run estimator: counted input tokens, worst-case output basis, upstream outputs, agent steps, observed
history for the expected value, static fallback, and the simulated copy kept apart from the real pipeline."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from conftest import cli, json_lines, sample

MTOK = Decimal(1_000_000)
MINI_IN, MINI_OUT = Decimal("0.15"), Decimal("0.60")  # gpt-4o-mini, USD per 1M tokens
FOUR_O_IN, FOUR_O_OUT = Decimal("2.50"), Decimal("10.00")  # gpt-4o


def _load(name: str, path: str | None = None, inputs: str | None = None):
    from genops_cli.execution.inputs import prepare_run_data, read_inputs
    from genops_cli.execution.loading import load_pipeline

    loaded = load_pipeline(path or sample(name), check_secrets=False)
    data = prepare_run_data(loaded.pipeline, read_inputs(inputs or sample(name, "inputs.json"), None)[0])
    return loaded, data


def _settings():
    from genops_cli.config import load_settings

    return load_settings()


def _estimate(name: str, **kwargs):
    from genops_cli.execution.estimate import estimate_run

    loaded, data = _load(name)
    return estimate_run(loaded, data, _settings(), **kwargs)


def test_rag_estimate_counts_the_rendered_prompt_and_assumes_max_tokens():
    est = _estimate("rag")
    assert est.method == "simulation"
    [line] = est.lines
    # the same count a simulated run records for the call (rendered messages, offline tokenizer)
    simulated = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--simulate", "--json")
    [llm] = [c for c in json_lines(simulated.stdout)[0]["components"] if c["model"]]
    assert line.input_tokens == llm["input_tokens"] > 0
    assert (line.component, line.component_type, line.model, line.provider) == (
        "llm", "OpenAIChatGenerator", "gpt-4o-mini", "openai")
    assert (line.output_tokens, line.output_basis, line.worst_calls) == (512, "max_tokens", 1)
    assert line.high == (line.input_tokens * MINI_IN + 512 * MINI_OUT) / MTOK
    assert line.low == line.input_tokens * MINI_IN / MTOK
    assert est.high == line.high and est.low <= est.expected <= est.high


def test_downstream_llm_worst_case_includes_the_upstream_output():
    est = _estimate("chain")
    drafter, reviewer = est.lines
    assert (drafter.component, reviewer.component) == ("drafter", "reviewer")
    assert drafter.worst_input_tokens == drafter.input_tokens
    assert reviewer.worst_input_tokens == reviewer.input_tokens + 512  # the drafter may write 512 tokens
    assert reviewer.high == ((reviewer.input_tokens + 512) * FOUR_O_IN + 512 * FOUR_O_OUT) / MTOK
    assert est.high == drafter.high + reviewer.high


def test_agent_worst_case_is_max_agent_steps_llm_calls():
    est = _estimate("agent")
    [line] = est.lines
    assert (line.component, line.calls, line.worst_calls) == ("agent", 2, 5)  # max_agent_steps: 5
    assert line.output_tokens == 5 * 512
    assert line.worst_input_tokens > line.input_tokens
    assert any("max_agent_steps=5" in note for note in est.notes)


def test_a_runs_preflight_holds_an_agents_first_step_only():
    """Per-call admission holds each further step when the Agent takes it, so the run's up-front hold is one LLM
    call: a run whose first step fits the budget is not refused for steps it may never take."""
    est = _estimate("agent", extrapolate_agents=False)
    [line] = est.lines
    assert (line.calls, line.worst_calls, line.output_tokens) == (1, 1, 512)
    assert line.high == (line.input_tokens * MINI_IN + 512 * MINI_OUT) / MTOK


def _rewrite(tmp_path: Path, name: str, edit) -> str:
    data = yaml.safe_load(Path(sample(name)).read_text())
    edit(data)
    path = tmp_path / name / "pipeline.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_unset_max_tokens_uses_the_model_output_limit_or_the_configured_cap(tmp_path):
    from genops_cli.execution.estimate import estimate_run

    def no_max_tokens(data):
        data["components"]["llm"]["init_parameters"]["generation_kwargs"] = {}

    path = _rewrite(tmp_path, "rag", no_max_tokens)
    loaded, data = _load("rag", path)
    [line] = estimate_run(loaded, data, _settings()).lines
    assert (line.output_tokens, line.output_basis) == (16384, "model_output_limit")  # gpt-4o-mini's limit
    assert any("output limit" in n for n in line.notes)

    def unknown_limit(data):
        no_max_tokens(data)
        data["components"]["llm"]["init_parameters"]["model"] = "claude-2"  # priced, no known output limit

    other = tmp_path / "other"
    other.mkdir()
    loaded, data = _load("rag", _rewrite(other, "rag", unknown_limit))
    settings = _settings()
    settings.max_tokens_cap = 1000
    [line] = estimate_run(loaded, data, settings).lines
    assert (line.output_tokens, line.output_basis) == (1000, "configured_cap")


def test_expected_value_uses_recorded_outputs(openai_server):
    from genops_cli.execution.estimate import estimate_run
    from genops_cli.ledger.store import open_ledger

    openai_server.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    for completion in (100, 300):
        openai_server.usage = {"prompt_tokens": 200, "completion_tokens": completion}
        assert cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json")).exit_code == 0
    loaded, data = _load("rag")
    import os

    est = estimate_run(loaded, data, _settings(), ledger=open_ledger(os.environ["GENOPS_LEDGER"]))
    [line] = est.lines
    assert (line.expected_output_tokens, line.expected_basis) == (200, "observed")  # average of 100 and 300
    assert line.expected == (line.input_tokens * MINI_IN + 200 * MINI_OUT) / MTOK
    assert line.output_basis == "max_tokens" and line.high > line.expected
    assert any("2 recorded call(s)" in n for n in line.notes)


def test_configured_expectation_when_there_is_no_history():
    settings = _settings()
    settings.simulation_output_tokens = 64
    from genops_cli.execution.estimate import estimate_run

    loaded, data = _load("rag")
    [line] = estimate_run(loaded, data, settings).lines
    assert (line.expected_output_tokens, line.expected_basis) == (64, "configured")


def test_static_fallback_when_the_simulation_pass_cannot_run():
    from genops_cli.execution.estimate import estimate_run

    loaded, _ = _load("rag")
    # the prompt builder's required variable is missing: the pipeline cannot run, the estimate still can
    est = estimate_run(loaded, {"retriever": {"query": "what is FOCUS?"}}, _settings())
    assert est.method == "static"
    assert any("static count" in n for n in est.notes)
    [line] = est.lines
    assert line.input_tokens > 0 and line.output_basis == "max_tokens" and line.high > 0


def test_documents_are_embedded_in_the_estimate_and_never_reach_the_real_store():
    from genops_cli.execution.documents import in_memory_stores, read_documents
    from genops_cli.execution.estimate import estimate_run, simulated_copy

    loaded, data = _load("embedding_rag")
    docs = read_documents(sample("embedding_rag", "corpus.jsonl"))
    real = [store for _, store, _ in in_memory_stores(loaded)]
    before = [store.count_documents() for store in real]
    first = estimate_run(loaded, data, _settings(), documents=docs)
    embed = first.lines[0]
    assert (embed.component, embed.kind, embed.model) == ("genops_document_embedder", "embedding",
                                                          "text-embedding-3-small")
    assert embed.input_tokens > 0 and embed.high == embed.input_tokens * Decimal("0.02") / MTOK
    assert [store.count_documents() for store in real] == before  # the real (shared) store is untouched
    sim = simulated_copy(loaded)
    assert sim is simulated_copy(loaded)  # built once per pipeline per process
    assert all(store.count_documents() == len(docs) for _, store, _ in in_memory_stores(sim.loaded))
    second = estimate_run(loaded, data, _settings())  # documents are embedded by the first run only
    assert [line.component for line in second.lines] == ["query_embedder", "llm"]


def test_estimate_reads_what_the_real_store_holds():
    from haystack.document_stores.types import DuplicatePolicy

    from genops_cli.execution.documents import in_memory_stores, read_documents
    from genops_cli.execution.estimate import estimate_run, simulated_copy

    loaded, data = _load("rag")
    [(_, store, _)] = in_memory_stores(loaded)
    corpus = read_documents(sample("rag", "corpus.jsonl"))
    store.write_documents(corpus, policy=DuplicatePolicy.OVERWRITE)  # as an API user fills a shared store
    [line] = estimate_run(loaded, data, _settings()).lines
    [(_, sim_store, _)] = in_memory_stores(simulated_copy(loaded).loaded)
    assert sim_store is not store and sim_store.count_documents() == store.count_documents() >= len(corpus)
    # a real simulated run over the same (now filled) store renders the same prompt
    simulated = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--simulate", "--json")
    [llm] = [c for c in json_lines(simulated.stdout)[0]["components"] if c["model"]]
    assert line.input_tokens == llm["input_tokens"]


def test_estimate_is_an_upper_bound_of_the_actual_run(openai_server):
    from genops_cli.execution.estimate import estimate_run

    loaded, data = _load("chain")
    est = estimate_run(loaded, data, _settings())
    drafter, reviewer = est.lines
    # the provider writes the full max_tokens and bills exactly the counted inputs plus the upstream output
    openai_server.model_usage = {
        "gpt-4o-mini": {"prompt_tokens": drafter.worst_input_tokens, "completion_tokens": 512},
        "gpt-4o": {"prompt_tokens": reviewer.worst_input_tokens, "completion_tokens": 512},
    }
    out = json_lines(cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json").stdout)[0]
    assert Decimal(out["total_cost"]) == est.high


def test_observed_history_matches_dated_releases_not_sibling_models():
    from genops_cli.execution.estimate import _same_model

    assert _same_model("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
    assert _same_model("claude-3-haiku-20240307", "claude-3-haiku")
    assert not _same_model("gpt-4o-mini", "gpt-4o")
    assert not _same_model("gpt-4o-mini-2024-07-18", "gpt-4o")
