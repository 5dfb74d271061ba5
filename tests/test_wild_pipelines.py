"""Real-world-shaped pipelines (tests/fixtures/wild): `validate --fix-issues --yes` migrates them, `run --simulate`
runs them offline with no key, and the migrated files run against the loopback fakes with exact money."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, json_lines

WILD = Path(__file__).resolve().parent / "fixtures" / "wild"

MESSAGES = [{"role": "user", "content": [{"text": "Research otters and summarise."}]}]
#: fixture -> run inputs
INPUTS = {
    "openai_generator_rag": {"retriever": {"query": "What is X?"}, "prompt_builder": {"query": "What is X?"},
                             "answer_builder": {"query": "What is X?"}},
    "prompt_chain": {"draft_prompt": {"topic": "otters"}},
    "output_adapter": {"prompt_builder": {"text": "I love it"}},
    "hybrid_elasticsearch": {"text_embedder": {"text": "q"}, "bm25_retriever": {"query": "q"},
                             "ranker": {"query": "q"}, "prompt_builder": {"query": "q"}},
    "qdrant_rag": {"embedder": {"text": "q"}, "prompt_builder": {"question": "q"}},
    "tgi_generator": {"prompt_builder": {"question": "q"}},
    "hf_api_chat": {"prompt_builder": {"question": "q"}},
    "web_rag": {"search": {"query": "q"}, "prompt_builder": {"query": "q"}},
    "websearch_agent": {"agent": {"messages": MESSAGES}},
    "multi_agent": {"coordinator": {"messages": MESSAGES}},
    "extractive_reader": {"retriever": {"query": "q"}, "reader": {"query": "q"}},
    "azure_generator": {"prompt_builder": {"text": "hello"}},
    "indexing_nltk": {"splitter": {"documents": [{"content": "One. Two. Three. Four."}]}},
    "dumps_tuple": {"prompt_builder": {"question": "q"}},
    "streaming_print": {"prompt_builder": {"question": "q"}},
    "mcp_agent": {"agent": {"messages": MESSAGES}},
    "hayhooks_yaml_deploy": {"urls": ["https://example.com/page"], "query": "What is on the page?"},
    "qdrant_hybrid": {"dense_embedder": {"text": "otters"}, "sparse_embedder": {"text": "otters"},
                      "prompt_builder": {"question": "Where do otters live?"}},
    "anthropic_agent": {"agent": {"messages": MESSAGES}},
    "hayhooks_chat_with_website": {"urls": ["https://example.com/page"], "query": "What is on the page?"},
    "hybrid_qdrant_indexing": {"link_fetcher": {"urls": ["https://example.com/a", "https://example.com/b"]},
                               "file_type_router": {"sources": []}},
    "hf_local_tutorial": {"builder": {"sentence": "I love capybaras"}},
    "nvidia_nim_rag": {"embedder": {"text": "q"}, "prompt": {"query": "q"}},
    "mcp_toolset_mapping": {"agent": {"messages": MESSAGES}},
    "legacy_chat_message_template": {"builder": {"sentence": "I love capybaras"}},
    "bedrock_converse": {"prompt_builder": {"question": "hi"}},
    "structured_output_loop": {"joiner": {"value": [{"role": "user", "content": [
        {"text": "Describe deepset as JSON with name, founded and products."}]}]}},
    "v1_bm25_prompt_node": {"query": "What is the capital of France?"},
    "v1_embedding_rank_prompt": {"query": "What is the capital of France?"},
}
#: Haystack 1.x files: run refuses them (exit 2) until validate --fix-issues rewrote them
HAYSTACK_1X = {"v1_bm25_prompt_node", "v1_embedding_rank_prompt"}
#: these need a lazily imported package that a --yes run installs from the index (none offline)
NEEDS_INSTALL = {"web_rag": "trafilatura", "indexing_nltk": "nltk", "hayhooks_chat_with_website": "trafilatura",
                 "hybrid_qdrant_indexing": "pypdf"}


@pytest.fixture
def offline_pip(monkeypatch, tmp_path):
    """pip may run (validate --yes) but never reaches a network: an empty local index."""
    empty = tmp_path / "empty-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / f"{name}.yml"
    shutil.copy(WILD / f"{name}.yml", target)
    return target


def _inputs(name: str, tmp_path: Path) -> str:
    path = tmp_path / f"{name}.inputs.json"
    path.write_text(json.dumps(INPUTS[name]))
    return str(path)


def test_every_fixture_has_inputs():
    assert {p.stem for p in WILD.glob("*.yml")} == set(INPUTS)
    assert len(INPUTS) >= 12


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_fix_issues_yes_then_simulate_runs_offline_without_keys(name, tmp_path, offline_pip):
    path = _copy(name, tmp_path)
    original = path.read_text()
    fixed = cli("validate", str(path), "--fix-issues", "--yes")
    assert "Traceback" not in fixed.stderr + fixed.stdout
    if path.read_text() != original:
        assert (tmp_path / f"{name}.yml.bak").read_text() == original
    result = cli("run", str(path), "--simulate", "--inputs", _inputs(name, tmp_path), "--json")
    assert "Traceback" not in result.stderr
    if name in NEEDS_INSTALL:
        # offline the install fails (one line); the simulation runs without it and names what a real run needs
        assert f"{NEEDS_INSTALL[name]} failed (" in fixed.stderr
        said = " ".join(result.stderr.split())
        assert f"pip install {NEEDS_INSTALL[name]}" in said and "not installed here (simulated without it)" in said
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["simulated"] is True and out["status"] == "ok"
    assert "simulated: " in result.stderr


def test_migrated_rag_runs_against_fake_with_exact_cost(openai_server, tmp_path, offline_pip):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    path = _copy("openai_generator_rag", tmp_path)
    assert cli("validate", str(path), "--fix-issues", "--yes").exit_code in (0, 1)
    text = path.read_text()
    assert "OpenAIChatGenerator" in text and "ChatPromptBuilder" in text and "system_prompt" not in text
    result = cli("run", str(path), "--inputs", _inputs("openai_generator_rag", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    llm = next(c for c in out["components"] if c["name"] == "llm")
    assert (llm["input_tokens"], llm["output_tokens"]) == (1000, 500)
    assert Decimal(llm["cost"]) == Decimal("0.000450")  # gpt-4o-mini: 0.15 / 0.60 USD per 1M tokens
    assert Decimal(out["total_cost"]) == Decimal("0.000450")
    # the system prompt moved into a system message: the provider received it
    request = openai_server.last_request("/chat/completions").body
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][0]["content"] == "You answer from the documents only."
    answers = out["outputs"]["answer_builder"]["answers"]
    assert answers and answers[0]["data"]


def test_migrated_chain_adapts_reply_consumers_and_costs_two_calls(openai_server, tmp_path, offline_pip):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    path = _copy("prompt_chain", tmp_path)
    cli("validate", str(path), "--fix-issues", "--yes")
    assert "{{ replies[0].text }}" in path.read_text()
    result = cli("run", str(path), "--inputs", _inputs("prompt_chain", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert Decimal(out["total_cost"]) == Decimal("0.000900")
    assert openai_server.count("/chat/completions") == 2


def test_output_adapter_template_reads_reply_text(openai_server, tmp_path, offline_pip):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    path = _copy("output_adapter", tmp_path)
    cli("validate", str(path), "--fix-issues", "--yes")
    assert "replies[0].text | lower" in path.read_text()
    result = cli("run", str(path), "--inputs", _inputs("output_adapter", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert isinstance(out["outputs"]["adapter"]["output"], str)
    assert Decimal(out["total_cost"]) == Decimal("0.000450")


def test_dumps_output_with_python_tuple_loads_and_runs(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    path = _copy("dumps_tuple", tmp_path)
    assert "!!python/tuple" in path.read_text()
    result = cli("run", str(path), "--inputs", _inputs("dumps_tuple", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    assert Decimal(json_lines(result.stdout)[0]["total_cost"]) == Decimal("0.000450")


def test_unsafe_python_tags_stay_refused(tmp_path):
    path = _copy("dumps_tuple", tmp_path)
    path.write_text(path.read_text().replace("stop: !!python/tuple", "stop: !!python/object/apply:os.system"))
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("dumps_tuple", tmp_path))
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) >= 1


def test_json_stdout_stays_json_when_the_streaming_callback_prints(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    path = _copy("streaming_print", tmp_path)
    result = cli("run", str(path), "--inputs", _inputs("streaming_print", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and json.loads(lines[0])["status"] == "ok"
    assert Decimal(json.loads(lines[0])["total_cost"]) == Decimal("0.000450")  # usage streamed (include_usage)


def test_out_writes_elsewhere_and_keeps_the_original(tmp_path, offline_pip):
    path = _copy("tgi_generator", tmp_path)
    original = path.read_text()
    target = tmp_path / "migrated.yml"
    result = cli("validate", str(path), "--fix-issues", "--yes", "--out", str(target))
    assert "Traceback" not in result.stderr
    assert path.read_text() == original and not (tmp_path / "tgi_generator.yml.bak").exists()
    migrated = target.read_text()
    assert ("haystack_integrations.components.generators.huggingface_api.chat.chat_generator."
            "HuggingFaceAPIChatGenerator") in migrated
    assert "api_type: text_generation_inference" in migrated and "url: http://localhost:8080" in migrated
    assert "--- " in result.stderr and "+++ " in result.stderr  # the unified diff was shown
    assert "huggingface-api-haystack" in result.stderr


def test_declined_fix_leaves_the_file_alone(tmp_path):
    path = _copy("prompt_chain", tmp_path)
    original = path.read_text()
    result = cli("validate", str(path), "--fix-issues", input="n\nn\nn\nn\n")
    assert path.read_text() == original
    assert not (tmp_path / "prompt_chain.yml.bak").exists()
    assert "apply this fix? [y/N]" in result.stderr


def test_not_mechanical_change_is_reported_and_left_alone(tmp_path, offline_pip):
    path = _copy("output_adapter", tmp_path)
    path.write_text(path.read_text().replace('"{{ replies[0] | lower }}"', '"{{ replies.0 | lower }}"'))
    result = cli("validate", str(path), "--fix-issues", "--yes", "--json")
    assert "OpenAIGenerator" in path.read_text()
    issues = json.loads(result.stdout)["issues"]
    assert any(i["component"] == "llm" and "attribute of the 'replies' list" in i["message"]
               and "left unchanged" in i["message"] for i in issues)


def test_unknown_class_path_gets_closest_real_class_and_no_package(tmp_path):
    path = _copy("qdrant_rag", tmp_path)
    path.write_text(path.read_text().replace(
        "haystack.components.generators.chat.openai.OpenAIChatGenerator",
        "haystack_integrations.components.generators.openai.OpenAIChatGenerater"))
    result = cli("validate", str(path), "--json")
    issue = next(i for i in json.loads(result.stdout)["issues"] if i["component"] == "llm")
    assert "closest known class is haystack.components.generators.chat.openai.OpenAIChatGenerator" in (
        issue["fix_suggestion"])
    assert "pip install" not in issue["fix_suggestion"]


def test_tgi_is_a_hugging_face_endpoint_not_mistral(tmp_path):
    path = _copy("tgi_generator", tmp_path)
    result = cli("validate", str(path), "--json")
    out = json.loads(result.stdout)
    assert out["environment"]["pipeline"]["models"][0]["provider"] == "huggingface"
    assert not any("MISTRAL" in i["message"] + i["fix_suggestion"] for i in out["issues"])


def test_missing_optional_dependency_detected_before_the_run(tmp_path):
    path = _copy("web_rag", tmp_path)
    result = cli("validate", str(path), "--json")
    issues = json.loads(result.stdout)["issues"]
    assert any(i["component"] == "converter" and i["fix_suggestion"] == "pip install trafilatura" for i in issues)


def test_simulated_agent_steps_follow_configuration(tmp_path):
    path = _copy("websearch_agent", tmp_path)
    (tmp_path / ".genops.yml").write_text("simulation:\n  agent_steps: 4\n")
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("websearch_agent", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    llm_calls = [c for c in out["components"] if c["model"]]
    assert len(llm_calls) == 4
    assert "agent: 4" in result.stderr


def test_nested_agent_in_agent_tool_is_simulated(tmp_path):
    path = _copy("multi_agent", tmp_path)
    (tmp_path / ".genops.yml").write_text("simulation:\n  agent_steps: {coordinator: 2, researcher: 3}\n")
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("multi_agent", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    models = [c["model"] for c in out["components"] if c["model"]]
    # coordinator: tool call + answer; researcher (inside the tool call): 2 tool calls + answer
    assert models.count("gpt-4o-mini") == 2 and models.count("claude-3-5-haiku-20241022") == 3
    assert "coordinator.tools[0].agent.chat_generator" in result.stderr


def test_server_document_store_becomes_in_memory_filled_from_documents(tmp_path):
    path = _copy("qdrant_rag", tmp_path)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"content": c}) for c in ("otters live in rivers", "cats sleep a lot")))
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"embedder": {"text": "where do otters live"},
                                  "prompt_builder": {"question": "where do otters live"}}))
    result = cli("run", str(path), "--simulate", "--inputs", str(inputs), "--documents", str(docs), "--json")
    assert result.exit_code == 0, result.stderr
    assert "QdrantDocumentStore -> InMemoryDocumentStore" in result.stderr
    assert "empty" not in result.stderr


def test_empty_in_memory_store_without_documents_warns(tmp_path):
    path = _copy("extractive_reader", tmp_path)
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("extractive_reader", tmp_path))
    assert "component 'retriever' retrieves from an in-memory document store that is empty" in result.stderr


def test_estimate_honours_allow_module_for_tool_functions(tmp_path, monkeypatch):
    (tmp_path / "wildtools.py").write_text("def lookup(query: str) -> str:\n    return 'found: ' + query\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "agent.yml"
    path.write_text((WILD / "websearch_agent.yml").read_text().replace(
        """      - type: haystack.tools.component_tool.ComponentTool
        data:
          name: web_search
          description: Search the web for current information.
          component:
            type: haystack.components.websearch.serper_dev.SerperDevWebSearch
            init_parameters:
              api_key: {type: env_var, env_vars: [SERPERDEV_API_KEY], strict: true}
              top_k: 3
""", """      - type: haystack.tools.tool.Tool
        data:
          name: lookup
          description: Look something up.
          parameters: {type: object, properties: {query: {type: string}}, required: [query]}
          function: wildtools.lookup
"""))
    assert "wildtools.lookup" in path.read_text()
    inputs = _inputs("websearch_agent", tmp_path)
    result = cli("estimate", str(path), "--inputs", inputs, "--allow-module", "wildtools", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["per_run"][0]["method"] == "simulation", out["per_run"][0]["notes"]


def test_mcp_tools_become_deterministic_stand_ins_called_in_turn(tmp_path):
    path = _copy("mcp_agent", tmp_path)
    (tmp_path / ".genops.yml").write_text("simulation:\n  agent_steps: 4\n")
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("mcp_agent", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert [c["tool_name"] for c in out["components"] if c.get("tool_name")] == ["fetch", "search", "read_page"]
    assert "agent.tools[0] (MCPTool -> Tool)" in result.stderr


def test_missing_integration_is_named_from_the_package_table(tmp_path):
    path = _copy("mcp_agent", tmp_path)
    result = cli("validate", str(path), "--json")
    issue = next(i for i in json.loads(result.stdout)["issues"] if i["component"] == "agent")
    assert issue["fix_suggestion"] == "pip install mcp-haystack"


def test_declared_inputs_of_a_hayhooks_style_file_take_one_flat_value(tmp_path, offline_pip):
    path = _copy("openai_generator_rag", tmp_path)
    cli("validate", str(path), "--fix-issues", "--yes")
    assert "inputs:" in path.read_text()  # the rewrite keeps the file's other keys
    inputs = tmp_path / "flat.json"
    inputs.write_text(json.dumps({"query": "What is X?"}))
    result = cli("run", str(path), "--simulate", "--inputs", str(inputs), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["outputs"]["answer_builder"]["answers"][0]["query"] == "What is X?"


def test_simulated_agent_takes_the_recorded_steps_by_default(openai_server, tmp_path):
    from conftest import sample
    from fakeproviders import tool_call

    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 20}
    openai_server.script = [tool_call("search_model_catalog", {"query": "tiers"}),
                            tool_call("search_model_catalog", {"query": "approval"}), "Tier A needs approval [mc-002]."]
    real = cli("run", sample("agent"), "--inputs", sample("agent", "inputs.json"), "--documents",
               sample("agent", "corpus.jsonl"), "--json")
    assert real.exit_code == 0, real.stderr
    assert sum(1 for c in json_lines(real.stdout)[0]["components"] if c["model"]) == 3
    simulated = cli("run", sample("agent"), "--inputs", sample("agent", "inputs.json"), "--documents",
                    sample("agent", "corpus.jsonl"), "--simulate", "--json")
    assert simulated.exit_code == 0, simulated.stderr
    assert "agent: recorded [3]" in simulated.stderr
    assert sum(1 for c in json_lines(simulated.stdout)[0]["components"] if c["model"]) == 3


def test_fix_issues_json_keeps_stdout_json_and_reports_the_rewrite(tmp_path, offline_pip):
    path = _copy("prompt_chain", tmp_path)
    result = cli("validate", str(path), "--fix-issues", "--yes", "--json")
    report = json.loads(result.stdout)  # the diffs and pip lines went to stderr
    rewrite = report["pipeline_rewrite"]
    assert rewrite["target"] == str(path) and rewrite["backup"] == f"{path}.bak"
    assert [title.split(":")[0] for title in rewrite["applied"]] == ["drafter", "summarizer"]
    assert "+++ " in result.stderr
    assert not any(i["component"] in ("drafter", "summarizer") and "removed in Haystack 3" in i["message"]
                   for i in report["issues"])


def test_package_level_class_paths_are_rewritten_to_the_registry_paths(tmp_path, offline_pip):
    path = _copy("hayhooks_yaml_deploy", tmp_path)
    result = cli("validate", str(path), "--fix-issues", "--yes", "--json")
    text = path.read_text()
    assert "haystack.components.fetchers.link_content.LinkContentFetcher" in text
    assert "haystack.components.converters.txt.TextFileToDocument" in text
    assert "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder" in text
    assert "receiver: llm.messages" in text
    assert json.loads(result.stdout)["pipeline_rewrite"]["applied"]


def test_component_progress_bars_only_when_verbose(openai_server, tmp_path):
    from conftest import sample

    # the sample's own corpus: its in-memory store is shared process-wide, other tests count what it holds
    args = ("run", sample("embedding_rag"), "--inputs", sample("embedding_rag", "inputs.json"), "--documents",
            sample("embedding_rag", "corpus.jsonl"), "--json")
    quiet = cli(*args)
    assert quiet.exit_code == 0, quiet.stderr
    assert "Calculating embeddings" not in quiet.stderr and "it/s" not in quiet.stderr


def test_hybrid_dense_and_sparse_retrieval_over_the_simulated_store(tmp_path):
    path = _copy("qdrant_hybrid", tmp_path)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"content": c}) for c in ("otters live in rivers", "cats sleep a lot")))
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("qdrant_hybrid", tmp_path), "--documents",
                 str(docs), "--json")
    assert result.exit_code == 0, result.stderr
    assert "retriever (QdrantHybridRetriever -> SimulatedHybridEmbeddingRetriever)" in result.stderr
    [out] = json_lines(result.stdout)
    llm = next(c for c in out["components"] if c["name"] == "llm")
    assert llm["provider"] == "anthropic" and llm["model"] == "claude-3-5-haiku-20241022"


def test_estimate_runs_on_stand_ins_when_an_integration_is_missing(tmp_path):
    path = _copy("multi_agent", tmp_path)  # serperdev-haystack is not installed here
    result = cli("estimate", str(path), "--inputs", _inputs("multi_agent", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert any("pip install serperdev-haystack" in note and "estimated with stand-ins" in note for note in out["notes"])
    assert Decimal(out["expected"]) > 0


def test_haystack_warnings_only_when_verbose(tmp_path, monkeypatch, offline_pip):
    path = _copy("openai_generator_rag", tmp_path)
    cli("validate", str(path), "--fix-issues", "--yes")  # a ChatPromptBuilder with required_variables: null
    args = ("run", str(path), "--simulate", "--inputs", _inputs("openai_generator_rag", tmp_path), "--json")
    quiet = cli(*args)
    assert quiet.exit_code == 0 and "required_variables" not in quiet.stderr
    monkeypatch.setenv("GENOPS_LOG_LEVEL", "INFO")
    verbose = cli(*args)
    assert verbose.exit_code == 0 and "required_variables" in verbose.stderr


def test_migrated_anthropic_agent_against_the_fake_costs_exactly(anthropic_server, tmp_path, offline_pip):
    anthropic_server.usage = {"input_tokens": 1000, "output_tokens": 500}
    path = _copy("anthropic_agent", tmp_path)
    cli("validate", str(path), "--fix-issues", "--yes")
    assert "tool_invoker_kwargs" not in path.read_text()
    result = cli("run", str(path), "--inputs", _inputs("anthropic_agent", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    # claude-3-5-haiku: 0.80 / 4.00 USD per 1M input / output tokens; the fake answers at once (one LLM step)
    assert Decimal(out["total_cost"]) == Decimal("0.002800")


def test_converter_without_its_parser_is_simulated_and_estimated(tmp_path):
    path = _copy("hayhooks_chat_with_website", tmp_path)  # trafilatura is not installed here
    inputs = _inputs("hayhooks_chat_with_website", tmp_path)
    result = cli("run", str(path), "--simulate", "--inputs", inputs, "--json")
    assert result.exit_code == 0, result.stderr
    assert "converter (HTMLToDocument -> SimulatedConverter)" in result.stderr
    [out] = json_lines(result.stdout)
    assert [c["model"] for c in out["components"] if c["model"]] == ["gpt-4o-mini"]
    estimate = cli("estimate", str(path), "--inputs", inputs, "--json")
    assert estimate.exit_code == 0, estimate.stderr
    assert Decimal(json.loads(estimate.stdout)["expected"]) > 0


def test_a_real_run_still_names_the_missing_parser(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    path = _copy("hayhooks_chat_with_website", tmp_path)
    result = cli("run", str(path), "--inputs", _inputs("hayhooks_chat_with_website", tmp_path))
    assert result.exit_code == 2
    assert "pip install trafilatura" in result.stderr.strip().splitlines()[-1]


def test_simulated_converter_keeps_text_and_metadata_and_drops_markup():
    from haystack.dataclasses import ByteStream

    from genops_cli.execution.simulate import SimulatedConverter

    converter = SimulatedConverter(original_type="haystack.components.converters.html.HTMLToDocument")
    page = ByteStream(data=b"<html><head><style>p {}</style></head><body><p>Otters <b>swim</b>.</p></body></html>",
                      mime_type="text/html", meta={"url": "https://example.com"})
    [doc] = converter.run(sources=[page], meta={"lang": "en"})["documents"]
    assert doc.content == "Otters swim ."
    assert doc.meta == {"url": "https://example.com", "lang": "en"}


def test_indexing_with_missing_parsers_writes_every_fetched_page(tmp_path):
    path = _copy("hybrid_qdrant_indexing", tmp_path)  # trafilatura, pypdf, nltk and fastembed are not installed
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("hybrid_qdrant_indexing", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    assert "doc_splitter (DocumentSplitter -> SimulatedPassThrough)" in result.stderr
    [out] = json_lines(result.stdout)
    assert out["outputs"]["writer"]["documents_written"] == 2
    embedder = next(c for c in out["components"] if c["name"] == "doc_embedder")
    assert embedder["model"] == "text-embedding-3-small" and embedder["input_tokens"] > 0


def test_local_hugging_face_model_is_read_from_pipeline_kwargs(tmp_path, offline_pip):
    path = _copy("hf_local_tutorial", tmp_path)
    inputs = _inputs("hf_local_tutorial", tmp_path)
    for _ in ("as written", "migrated"):
        result = cli("run", str(path), "--simulate", "--inputs", inputs, "--json")
        assert result.exit_code == 0, result.stderr
        [llm] = [c for c in json_lines(result.stdout)[0]["components"] if c["model"]]
        assert (llm["provider"], llm["model"]) == ("huggingface-local", "google/flan-t5-large")
        cli("validate", str(path), "--fix-issues", "--yes")
    assert "TransformersChatGenerator" in path.read_text()


def test_nvidia_models_are_named_unpriced_and_their_output_cap_is_read(tmp_path):
    path = _copy("nvidia_nim_rag", tmp_path)
    inputs = _inputs("nvidia_nim_rag", tmp_path)
    result = cli("run", str(path), "--simulate", "--inputs", inputs, "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["unpriced_models"] == ["nvidia:meta/llama3-70b-instruct", "nvidia:snowflake/arctic-embed-l"]
    generator = next(c for c in out["components"] if c["name"] == "generator")
    assert generator["output_tokens"] == 1024  # model_arguments.max_tokens
    estimate = cli("estimate", str(path), "--inputs", inputs)
    assert estimate.exit_code == 2 and "nvidia:meta/llama3-70b-instruct" in estimate.stderr


def test_bedrock_camel_case_max_tokens_caps_the_estimate(tmp_path):
    path = _copy("bedrock_converse", tmp_path)
    result = cli("estimate", str(path), "--inputs", _inputs("bedrock_converse", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [line] = json.loads(result.stdout)["components"]
    assert (line["provider"], line["model"]) == ("aws", "global.anthropic.claude-sonnet-4-6")
    assert (line["output_tokens"], line["output_basis"]) == (512, "max_tokens")  # generation_kwargs.maxTokens
    # 20 input tokens x 3 USD + 512 output tokens x 15 USD per 1M tokens
    assert (line["input_tokens"], Decimal(line["high"])) == (20, Decimal("0.00774"))


def test_simulated_replies_satisfy_the_json_schema_validator_they_feed(tmp_path):
    path = _copy("structured_output_loop", tmp_path)
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("structured_output_loop", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr  # was: the loop retried until max_runs_per_component (exit 1)
    [out] = json_lines(result.stdout)
    assert [c["name"] for c in out["components"] if c["model"]] == ["llm"]  # valid at the first attempt
    [message] = out["outputs"]["validator"]["validated"]
    value = json.loads(message["content"][0]["text"])
    assert set(value) == {"name", "founded", "products"} and isinstance(value["founded"], int)


def test_simulated_structured_output_follows_the_requested_schema(tmp_path):
    import yaml

    path = _copy("structured_output_loop", tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["components"]["validator"]  # no validator: the request's own schema shapes the reply
    data["connections"] = [c for c in data["connections"] if "validator" not in c["sender"] + c["receiver"]]
    data["components"]["llm"]["init_parameters"]["generation_kwargs"]["response_format"] = {
        "type": "json_schema", "json_schema": {"name": "city", "schema": {
            "type": "object", "properties": {"city": {"type": "string"}, "people": {"type": "integer"}},
            "required": ["city", "people"]}}}
    path.write_text(yaml.safe_dump(data))
    result = cli("run", str(path), "--simulate", "--inputs", _inputs("structured_output_loop", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [reply] = json_lines(result.stdout)[0]["outputs"]["llm"]["replies"]
    assert set(json.loads(reply["content"][0]["text"])) == {"city", "people"}


@pytest.mark.parametrize("name", sorted(HAYSTACK_1X))
def test_haystack_1x_file_is_refused_until_rewritten(name, tmp_path):
    path = _copy(name, tmp_path)
    result = cli("run", str(path), "--simulate", "--inputs", _inputs(name, tmp_path))
    assert result.exit_code == 2
    assert f"genops validate {path} --fix-issues rewrites it" in " ".join(result.stderr.split())


def test_haystack_1x_query_pipeline_becomes_haystack_3_and_runs(tmp_path, offline_pip):
    import yaml

    path = _copy("v1_embedding_rank_prompt", tmp_path)
    result = cli("validate", str(path), "--fix-issues", "--yes", "--json")
    rewrite = json.loads(result.stdout)["pipeline_rewrite"]
    assert rewrite["applied"][0] == "pipeline: Haystack 1.x -> Haystack 3"
    assert any("indexing" in left["message"] for left in rewrite["left_alone"])  # the file's other pipeline
    data = yaml.safe_load(path.read_text())
    assert {c["sender"]: c["receiver"] for c in data["connections"]} == {
        "Retriever_embedder.embedding": "Retriever.query_embedding", "Retriever.documents": "Ranker.documents",
        "PromptNode_prompt.prompt": "PromptNode.messages", "Ranker.documents": "PromptNode_prompt.documents"}
    assert data["inputs"] == {"query": ["Retriever_embedder.text", "Ranker.query", "PromptNode_prompt.query"]}
    template = data["components"]["PromptNode_prompt"]["init_parameters"]["template"][0]["content"][0]["text"]
    assert "{% for document in documents %}" in template and "{{ query }}" in template
    assert data["components"]["PromptNode"]["init_parameters"]["generation_kwargs"] == {"max_tokens": 200}
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"content": "Paris is the capital of France."}) + "\n")
    run = cli("run", str(path), "--simulate", "--inputs", _inputs("v1_embedding_rank_prompt", tmp_path),
              "--documents", str(docs), "--json")
    assert run.exit_code == 0, run.stderr
    llm = next(c for c in json_lines(run.stdout)[0]["components"] if c["name"] == "PromptNode")
    assert (llm["provider"], llm["model"], llm["output_tokens"]) == ("openai", "gpt-4o-mini", 200)


def test_haystack_1x_node_without_an_equivalent_is_named(tmp_path):
    path = _copy("v1_bm25_prompt_node", tmp_path)
    path.write_text(path.read_text().replace("type: BM25Retriever", "type: DensePassageRetriever"))
    result = cli("run", str(path), "--simulate", "--input", "query=x")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "node 'Retriever' (DensePassageRetriever) has no Haystack 3 equivalent" in line


def test_haystack_1x_indexing_pipeline_embeds_documents_and_writes_them(tmp_path, offline_pip):
    import yaml

    path = _copy("v1_embedding_rank_prompt", tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pipelines"] = [p for p in data["pipelines"] if p["name"] == "indexing"]
    path.write_text(yaml.safe_dump(data))
    cli("validate", str(path), "--fix-issues", "--yes")
    converted = yaml.safe_load(path.read_text())
    assert converted["inputs"] == {"files": ["TextFileConverter.sources"]}
    assert converted["components"]["Retriever"]["type"].endswith("SentenceTransformersDocumentEmbedder")
    text = tmp_path / "doc.txt"
    text.write_text("Paris is the capital of France.")
    inputs = tmp_path / "files.json"
    inputs.write_text(json.dumps({"files": [str(text)]}))
    result = cli("run", str(path), "--simulate", "--inputs", str(inputs), "--json")
    assert result.exit_code == 0, result.stderr
    assert json_lines(result.stdout)[0]["outputs"]["DocumentStore"] == {"documents_written": 1}


def test_hugging_face_api_model_is_read_from_api_params(tmp_path):
    path = _copy("legacy_chat_message_template", tmp_path)
    out = json.loads(cli("validate", str(path), "--json").stdout)
    assert out["environment"]["pipeline"]["models"] == [
        {"component": "llm", "provider": "huggingface", "model": "microsoft/Phi-3.5-mini-instruct"}]
    assert not any("has no model" in i["message"] for i in out["issues"])


def test_the_worst_case_of_a_loop_counts_every_visit_it_may_make(tmp_path):
    """A self-correcting loop answers valid JSON at the first attempt in simulation, but a real run may retry up to
    max_runs_per_component (3 here): the worst case counts three visits, each seeing the earlier replies (the
    expected and low values count the simulated one)."""
    path = _copy("structured_output_loop", tmp_path)
    result = cli("estimate", str(path), "--inputs", _inputs("structured_output_loop", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [run] = json.loads(result.stdout)["per_run"]
    [line] = run["lines"]
    assert (line["component"], line["calls"], line["worst_calls"]) == ("llm", 1, 3)
    cap = line["output_tokens"] // 3
    # worst inputs: n, n + cap, n + 2 cap (each visit may see the replies before it)
    assert line["worst_input_tokens"] == 3 * line["input_tokens"] + 3 * cap
    assert any("max_runs_per_component=3 visits (1 in the simulation)" in note for note in run["notes"])


def test_a_visits_worst_input_never_exceeds_the_models_context_window(tmp_path):
    """With 20 visits, the replies a late visit may see would exceed gpt-4o-mini's 128,000-token window: a call's
    worst-case input is capped at the window less its output (16,384, the model's output limit)."""
    path = _copy("structured_output_loop", tmp_path)
    path.write_text(path.read_text().replace("max_runs_per_component: 3", "max_runs_per_component: 20"))
    result = cli("estimate", str(path), "--inputs", _inputs("structured_output_loop", tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [line] = json.loads(result.stdout)["per_run"][0]["lines"]
    n, cap = line["input_tokens"], 16384
    assert line["worst_calls"] == 20 and line["output_tokens"] == 20 * cap
    assert line["worst_input_tokens"] == sum(min(n + k * cap, 128000 - cap) for k in range(20))
