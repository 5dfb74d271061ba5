"""Every row of the migration table (genops_cli/execution/migrations.yml): the fix it makes, and that the migrated
file loads on the installed Haystack (for real when the new class is installed, else under --simulate or with a
load error that names the row's package)."""

from __future__ import annotations

import importlib

import pytest
import yaml

from genops_cli.errors import PipelineLoadError
from genops_cli.execution.loading import load_pipeline
from genops_cli.execution.migrate import (
    _NotMechanical,
    migration_table,
    missing_optional_dependencies,
    plan_migrations,
    reply_template_to_chat,
)

ROWS = migration_table().rows


def _importable(type_path: str) -> bool:
    module, _, name = type_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    # Haystack's registry knows a component only by the module that defines it
    assert cls is None or cls.__module__ == module, f"{type_path} is defined in {cls.__module__}"
    return cls is not None


def _params(row) -> dict:
    params = dict(row.when) | dict(row.drop_if_default)
    if row.params == "tgi_api":
        params["url"] = "http://localhost:8080"
    if row.params == "agent_tool_invoker":
        params["chat_generator"] = {"type": "haystack.components.generators.chat.openai.OpenAIChatGenerator",
                                    "init_parameters": {"model": "gpt-4o-mini"}}
        params["tool_invoker_kwargs"] = {"max_workers": 2, "enable_streaming_callback_passthrough": True}
    return params


def _single(row) -> dict:
    return {"components": {"comp": {"type": row.old, "init_parameters": _params(row)}}, "connections": []}


def _endpoint(row) -> dict:
    return {"azure_endpoint": "https://example.openai.azure.com"} if "Azure" in row.old else {}


def _chain(row) -> dict:
    return {
        "components": {
            "builder": {"type": "haystack.components.builders.prompt_builder.PromptBuilder",
                        "init_parameters": {"template": "Q: {{ question }}"}},
            "comp": {"type": row.old,
                     "init_parameters": {**_params(row), **_endpoint(row), "system_prompt": "Be brief."}},
            "answers": {"type": "haystack.components.builders.answer_builder.AnswerBuilder", "init_parameters": {}},
        },
        "connections": [{"sender": "builder.prompt", "receiver": "comp.prompt"},
                        {"sender": "comp.replies", "receiver": "answers.replies"},
                        {"sender": "comp.meta", "receiver": "answers.meta"}],
    }


def test_table_is_versioned_and_names_only_real_packages():
    table = migration_table()
    assert table.version >= 1
    # Package names as their pyproject.toml in deepset-ai/haystack-core-integrations spells them.
    assert table.packages() <= {
        "huggingface-api-haystack", "transformers-haystack", "sentence-transformers-haystack", "serperdev-haystack",
        "searchapi-haystack", "whisper-haystack", "tika-haystack", "azure-form-recognizer-haystack",
        "langdetect-haystack", "openapi-haystack", "spacy-haystack"}
    for row in ROWS:
        assert row.kind in ("move", "text_to_chat", "report")
        assert (row.new is None) == (row.kind == "report"), row.old
        if row.new and row.new.startswith("haystack_integrations."):
            assert row.package, row.old
            # the package that provides the new class is the one the integration table names for its module
            assert table.package_for_module(row.new.rpartition(".")[0]) == row.package, row.new


@pytest.mark.parametrize("row", [r for r in ROWS if r.kind == "move"], ids=lambda r: f"{r.old}{dict(r.when)}")
def test_move_row(row, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    plan = plan_migrations(_single(row))
    assert not plan.reports
    [fix] = plan.fixes
    comp = fix.data["components"]["comp"]
    assert comp["type"] == row.new and fix.package == row.package
    for key, _value in row.drop_if_default:
        assert key not in comp["init_parameters"]
    if row.params == "agent_tool_invoker":
        assert comp["init_parameters"]["tool_concurrency_limit"] == 2
        assert comp["init_parameters"]["tool_streaming_callback_passthrough"] is True
    path = tmp_path / "migrated.yml"
    path.write_text(yaml.safe_dump(fix.data))
    if _importable(row.new):
        load_pipeline(path, check_secrets=False)  # loads on the installed Haystack
        return
    try:
        loaded = load_pipeline(path, simulate=True)
    except PipelineLoadError as exc:  # not model-backed: the load names the package to install
        assert f"pip install {row.package}" in str(exc)
    else:
        assert loaded.simulated_components and loaded.simulated_components[0].original_type == row.new


@pytest.mark.parametrize("row", [r for r in ROWS if r.kind == "text_to_chat"], ids=lambda r: r.old)
def test_text_to_chat_row(row, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "a" * 32)
    [fix] = plan_migrations(_chain(row)).fixes
    data = fix.data
    assert data["components"]["comp"]["type"] == row.new
    assert "system_prompt" not in data["components"]["comp"]["init_parameters"]
    builder = data["components"]["builder"]
    assert builder["type"] == "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder"
    assert [m["role"] for m in builder["init_parameters"]["template"]] == ["system", "user"]
    assert builder["init_parameters"]["template"][0]["content"] == [{"text": "Be brief."}]
    assert {"sender": "builder.prompt", "receiver": "comp.messages"} in data["connections"]
    assert not any(c["sender"] == "comp.meta" for c in data["connections"])
    path = tmp_path / "migrated.yml"
    path.write_text(yaml.safe_dump(data))
    if _importable(row.new) and row.params is None:
        load_pipeline(path, check_secrets=False)
    loaded = load_pipeline(path, simulate=True)
    out = loaded.pipeline.run({"builder": {"question": "why?"}, "answers": {"query": "why?"}})
    assert out["answers"]["answers"][0].data.startswith("[simulated")


@pytest.mark.parametrize("row", [r for r in ROWS if r.kind == "report"], ids=lambda r: r.old)
def test_report_row_is_never_rewritten(row):
    plan = plan_migrations(_single(row))
    assert not plan.fixes
    [(component, message)] = plan.reports
    assert component == "comp" and row.advice in message


def test_parameter_with_no_equivalent_is_reported_and_left_alone():
    row = next(r for r in ROWS if r.old.endswith(".TransformersSimilarityRanker"))
    data = _single(row)
    data["components"]["comp"]["init_parameters"]["calibration_factor"] = 0.5
    plan = plan_migrations(data)
    assert not plan.fixes
    assert "calibration_factor" in plan.reports[0][1] and "left unchanged" in plan.reports[0][1]


def test_system_prompt_without_a_prompt_builder_is_not_mechanical():
    row = next(r for r in ROWS if r.old.endswith(".OpenAIGenerator"))
    data = _single(row)
    data["components"]["comp"]["init_parameters"]["system_prompt"] = "Be brief."
    plan = plan_migrations(data)
    assert not plan.fixes and "system_prompt" in plan.reports[0][1]


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ replies[0] }}", "{{ replies[0].text }}"),
    ("{{ replies[-1] | upper }} and {{ replies[0].text }}", "{{ replies[-1].text | upper }} and {{ replies[0].text }}"),
    ("{% for r in replies %}- {{ r }}\n{% endfor %}",
     "{% for r in (replies | map(attribute='text') | list) %}- {{ r }}\n{% endfor %}"),
    ("{{ replies }}", "{{ (replies | map(attribute='text') | list) }}"),
    ("replies[0] outside Jinja stays", "replies[0] outside Jinja stays"),
])
def test_reply_templates_adapted(template, expected):
    assert reply_template_to_chat(template, "replies") == expected


@pytest.mark.parametrize("template", [
    "{{ replies[0] }}", "{{ replies }}", "{{ replies | join(', ') }}", "{% if replies %}x{% endif %}",
    "{% for r in replies %}{{ loop.index }}: {{ r | upper }}\n{% endfor %}", "{{ replies | length }}",
])
def test_adapted_template_renders_chat_messages_exactly_as_strings_before(template):
    from haystack.dataclasses import ChatMessage
    from jinja2 import Template

    texts = ["first answer", "second answer"]
    before = Template(template).render(replies=texts)
    after = Template(reply_template_to_chat(template, "replies")).render(
        replies=[ChatMessage.from_assistant(t) for t in texts])
    assert after == before


def test_attribute_of_the_reply_list_is_not_mechanical():
    with pytest.raises(_NotMechanical):
        reply_template_to_chat("{{ replies.0 }}", "replies")


def test_optional_dependency_only_when_the_parameters_need_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nltk" else real(name, *a))
    splitter = "haystack.components.preprocessors.document_splitter.DocumentSplitter"

    def data(split_by: str) -> dict:
        return {"components": {"s": {"type": splitter, "init_parameters": {"split_by": split_by}}}}

    assert missing_optional_dependencies(data("sentence")) == [("s", "nltk", "nltk")]
    assert missing_optional_dependencies(data("word")) == []


def test_nested_component_moves_inside_an_agent_tool():
    data = yaml.safe_load(open(__file__.replace("test_migrations.py", "fixtures/wild/websearch_agent.yml")))
    [fix] = plan_migrations(data).fixes
    tool = fix.data["components"]["agent"]["init_parameters"]["tools"][0]["data"]["component"]
    assert tool["type"] == "haystack_integrations.components.websearch.serperdev.websearch.SerperDevWebSearch"
    assert fix.package == "serperdev-haystack" and fix.component == "agent"


def test_agent_without_removed_parameters_is_not_touched():
    data = {"components": {"agent": {"type": "haystack.components.agents.agent.Agent", "init_parameters": {
        "chat_generator": {"type": "haystack.components.generators.chat.openai.OpenAIChatGenerator",
                           "init_parameters": {"model": "gpt-4o-mini"}}}}}}
    plan = plan_migrations(data)
    assert not plan.fixes and not plan.reports


def test_system_prompt_with_braces_stays_literal_in_the_chat_template():
    from haystack.components.builders import ChatPromptBuilder
    from haystack.dataclasses import ChatMessage

    row = next(r for r in ROWS if r.old.endswith(".OpenAIGenerator"))
    data = _chain(row)
    data["components"]["comp"]["init_parameters"]["system_prompt"] = 'Answer as JSON: {{"answer": "..."}}'
    [fix] = plan_migrations(data).fixes
    template = [ChatMessage.from_dict(m) for m in fix.data["components"]["builder"]["init_parameters"]["template"]]
    rendered = ChatPromptBuilder(template=template).run(question="why?")["prompt"]
    assert rendered[0].text == 'Answer as JSON: {{"answer": "..."}}'
    assert rendered[1].text == "Q: why?"


def test_installed_but_broken_optional_dependency_counts_as_missing(tmp_path, monkeypatch):
    from genops_cli.execution.migrate import _importable_module

    (tmp_path / "genops_broken_dep.py").write_text("raise ImportError('lxml.html.clean is a separate project')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _importable_module("genops_broken_dep") is False
    assert _importable_module("json") is True
    assert _importable_module("genops_absent_dep") is False


def test_one_prompt_builder_feeding_two_text_generators_migrates_both():
    row = next(r for r in ROWS if r.old.endswith(".OpenAIGenerator"))
    data = _chain(row)
    data["components"]["comp_b"] = {"type": row.old, "init_parameters": {"system_prompt": "Be brief."}}
    data["connections"].append({"sender": "builder.prompt", "receiver": "comp_b.prompt"})
    plan = plan_migrations(data)
    assert not plan.reports and [f.component for f in plan.fixes] == ["comp", "comp_b"]
    final = plan.data
    assert {c["receiver"] for c in final["connections"] if c["sender"] == "builder.prompt"} == {
        "comp.messages", "comp_b.messages"}


def test_prompt_builder_shared_with_a_string_consumer_is_left_alone():
    row = next(r for r in ROWS if r.old.endswith(".OpenAIGenerator"))
    data = _chain(row)
    data["components"]["echo"] = {"type": "haystack.components.converters.output_adapter.OutputAdapter",
                                  "init_parameters": {"template": "{{ prompt }}", "output_type": "str"}}
    data["connections"].append({"sender": "builder.prompt", "receiver": "echo.prompt"})
    plan = plan_migrations(data)
    assert not plan.fixes and "also feeds echo.prompt" in plan.reports[0][1]


def test_a_joiner_typed_for_strings_is_reported():
    row = next(r for r in ROWS if r.old.endswith(".OpenAIGenerator"))
    data = _chain(row)
    data["components"]["join"] = {"type": "haystack.components.joiners.branch.BranchJoiner",
                                  "init_parameters": {"type_": "list[str]"}}
    data["connections"].append({"sender": "comp.replies", "receiver": "join.value"})
    plan = plan_migrations(data)
    assert not plan.fixes and "typed list[str]" in plan.reports[0][1]
