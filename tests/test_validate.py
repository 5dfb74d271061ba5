"""`genops validate`: environment, keys, config, ledger, pipeline checks; one issue per broken component with the
fix; --fix-issues repairs; never Haystack's traceback on stderr; exit 0 valid / 1 errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO, cli, sample

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"

BROKEN = textwrap.dedent("""
    components:
      prompt_builder:
        type: haystack.components.builders.prompt_builder.PromptBuilder
        init_parameters: {template: "Answer: {{question}}"}
      llm:
        type: haystack.components.generators.openai.OpenAIGenerator
        init_parameters:
          model: gpt-3.5-turbo
          api_key: {type: env_var, env_vars: [OPENAI_API_KEY], strict: true}
      ranker:
        type: haystack_integrations.components.rankers.cohere.CohereRanker
        init_parameters: {model: rerank-v3.5}
      retriever:
        type: haystack_integrations.components.retrievers.qdrant.QdrantEmbeddingRetriever
        init_parameters:
          document_store:
            type: haystack_integrations.document_stores.qdrant.QdrantDocumentStore
            init_parameters: {url: "http://127.0.0.1:9"}
      agent:
        type: haystack.components.agents.agent.Agent
        init_parameters:
          chat_generator:
            type: haystack.components.generators.chat.openai.OpenAIChatGenerator
            init_parameters: {model: gpt-4o-mini}
          tools:
          - type: mycompany.tools.SearchTool
            data: {name: search}
    connections:
    - {sender: prompt_builder.prompt, receiver: llm.prompt}
""")


def _json(result) -> dict:
    return json.loads(result.stdout)


def test_valid_setup_and_pipeline_exit_zero(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (tmp_path / ".genops.yml").write_text("haystack:\n  default_team: ml\n")
    assert cli("ledger", "drain").exit_code == 0  # creates nothing; the ledger appears on first write
    result = cli("validate", "--fix-issues", "--yes")  # create the ledger
    result = cli("validate", sample("chain"), "--provider", "openai", "--json")
    assert result.exit_code == 0, result.stdout
    out = _json(result)
    assert set(out) >= {"is_valid", "overall_score", "environment", "issues"}
    assert out["is_valid"] is True and out["overall_score"] == 100.0
    env = out["environment"]
    assert env["packages"]["haystack-ai"].startswith("3.")
    assert env["providers"]["openai"] == "set"
    assert env["ledger"]["schema_version"] == env["ledger"]["current_schema_version"]
    assert env["pipeline"]["required_inputs"] == {"draft_prompt": ["request", "audience"]} or \
        set(env["pipeline"]["required_inputs"]["draft_prompt"]) == {"request", "audience"}
    assert {m["model"] for m in env["pipeline"]["models"]} == {"gpt-4o-mini", "gpt-4o"}
    assert KEY not in result.stdout and KEY not in result.stderr


def test_broken_pipeline_one_issue_per_component_no_traceback(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    result = cli("validate", str(path), "--json")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and result.stderr.strip() == ""
    issues = _json(result)["issues"]
    by = {}
    for issue in issues:
        by.setdefault(issue["component"], []).append(issue)
    assert "OpenAIChatGenerator" in by["llm"][0]["fix_suggestion"]
    assert "removed in Haystack 3" in by["llm"][0]["message"]
    assert by["ranker"][0]["fix_suggestion"] == "pip install cohere-haystack"
    assert by["retriever"][0]["fix_suggestion"] == "pip install qdrant-haystack"
    assert "mycompany.tools.SearchTool" in by["agent"][0]["message"]
    assert "--allow-module mycompany" in by["agent"][0]["fix_suggestion"]
    assert by["prompt_builder"][0]["severity"] == "warning"
    assert "ChatPromptBuilder" in by["prompt_builder"][0]["fix_suggestion"]
    assert any("needs a server at 127.0.0.1:9" in i["message"] for i in by["retriever"])
    assert any("OPENAI_API_KEY" in i["message"] for i in by["llm"])
    # one type issue per broken component, never several for the same cause
    assert sum("cannot import" in i["message"] for i in by["ranker"]) == 1
    for issue in issues:
        assert set(issue) == {"severity", "component", "message", "fix_suggestion"}


def test_connection_error_and_unpriced_model(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    text = open(sample("chain")).read().replace("model: gpt-4o\n", "model: gpt-4o-imaginary-9000\n")
    text = text.replace("receiver: reviewer.messages", "receiver: reviewer.nonexistent")
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    out = _json(cli("validate", str(path), "--json"))
    messages = {(i["component"], i["message"]) for i in out["issues"]}
    assert ("reviewer", "model openai:gpt-4o-imaginary-9000 has no price") in messages
    assert any(c == "connections" for c, _ in messages)
    assert out["is_valid"] is False


def test_human_checklist_names_score_and_fixes(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert "Overall score:" in result.stdout
    assert "fix: pip install cohere-haystack" in result.stdout


def test_bad_config_names_key_and_line(tmp_path):
    (tmp_path / ".genops.yml").write_text("haystack:\n  default_team: ml\n  governance_policy: yolo\n")
    out = _json(cli("validate", "--json"))
    [issue] = [i for i in out["issues"] if i["component"] == ".genops.yml"]
    assert ".genops.yml:3" in issue["message"] and "governance_policy" in issue["message"]
    assert out["is_valid"] is False


def test_implausible_key_is_flagged_but_never_printed(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not a key at all")
    result = cli("validate", "--provider", "anthropic", "--json")
    out = _json(result)
    assert out["environment"]["providers"]["anthropic"] == "implausible"
    assert any(i["component"] == "provider anthropic" and i["severity"] == "warning" for i in out["issues"])
    assert "not a key at all" not in result.stdout
    missing = _json(cli("validate", "--provider", "cohere", "--json"))
    assert missing["is_valid"] is False
    assert any("COHERE_API_KEY" in i["message"] for i in missing["issues"])


def test_fix_issues_writes_config_creates_ledger_and_drains_spool(tmp_path, isolated):
    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger
    from genops_cli.models import RunRecord, utcnow

    spool = Spool(open_ledger(str(isolated)).spool_dir())
    spool.write(RunRecord(run_id="r-1", pipeline_name="p", pipeline_hash="h", started_at=utcnow(), ended_at=utcnow()))
    before = _json(cli("validate", "--json"))
    fixable = {i["component"] for i in before["issues"]}
    assert {".genops.yml", "ledger", "spool"} <= fixable
    result = cli("validate", "--fix-issues", "--yes", "--json")
    out = _json(result)
    assert [f["fix"] for f in out["fixes"]] == ["write_config", "create_ledger", "drain_spool"]
    assert all(f["applied"] for f in out["fixes"])
    assert (tmp_path / ".genops.yml").read_text().startswith("# genops configuration")
    assert len(spool) == 0
    assert out["environment"]["ledger"]["exists"] is True
    assert not {"ledger", "spool", ".genops.yml"} & {i["component"] for i in out["issues"]}
    from conftest import ledger_rows

    assert ledger_rows("SELECT run_id FROM runs") == [("r-1",)]
    # the written default config is itself valid
    assert not [i for i in out["issues"] if i["severity"] == "error" and "genops.yml" in i["component"]]


def test_fix_issues_asks_before_each_step(tmp_path):
    result = cli("validate", "--fix-issues", "--json", input="n\ny\n")
    out = _json(result)
    assert [(f["fix"], f["applied"]) for f in out["fixes"]] == [("write_config", False), ("create_ledger", True)]
    assert not (tmp_path / ".genops.yml").exists()
    assert "fix: write a commented default .genops.yml" in result.stderr


def test_pip_install_is_offered_with_the_right_package(tmp_path):
    from genops_cli.validation import apply_fixes, planned_fixes, validate_haystack_setup

    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    result = validate_haystack_setup(path)
    steps = dict(planned_fixes(result))
    assert "pip:cohere-haystack qdrant-haystack" in steps
    assert steps["pip:cohere-haystack qdrant-haystack"].endswith("-m pip install cohere-haystack qdrant-haystack")
    commands: list[list[str]] = []
    outcomes = apply_fixes(result, confirm=lambda step: "pip install" in step,
                           run_command=lambda cmd: commands.append(cmd) or 0)
    # one pip call per package, so each gets its own one-line outcome
    assert [cmd[-1] for cmd in commands] == ["cohere-haystack", "qdrant-haystack"]
    assert all(cmd[:4] == [sys.executable, "-m", "pip", "install"] for cmd in commands)
    assert [o.applied for o in outcomes if o.fix.startswith("pip:")] == [True]


def test_python_module_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "genops_cli.validate", "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    out = json.loads(proc.stdout)
    assert proc.returncode == (0 if out["is_valid"] else 1)
    assert out["environment"]["python"]["version"]


def test_library_api_of_the_guide(capsys):
    from genops_cli import print_validation_result, validate_haystack_setup

    result = validate_haystack_setup()
    assert result.get_error_count() == len([i for i in result.issues if i.severity == "error"])
    print_validation_result(result)
    assert "Overall score" in capsys.readouterr().out


def test_key_checks_agree_when_a_key_looks_wrong(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-key")
    out = _json(cli("validate", "--json"))
    check = next(c for c in out["checks"] if c["name"] == "AI provider keys")
    assert "none set" not in check["detail"] and "openai (set, implausible)" in check["detail"]
    assert any("does not look like a openai key" in i["message"] or "does not look like an openai key" in i["message"]
               for i in out["issues"])
    assert "not-a-key" not in json.dumps(out)


def test_pipeline_named_key_variable_is_the_one_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("TEAM_OPENAI_KEY", KEY)
    text = open(sample("rag")).read().replace("- OPENAI_API_KEY", "- TEAM_OPENAI_KEY")
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    out = _json(cli("validate", str(path), "--json"))
    check = next(c for c in out["checks"] if c["name"] == "openai API key")
    assert check["passed"] and check["detail"] == "TEAM_OPENAI_KEY set"
    assert not any("OPENAI_API_KEY" in i["message"] for i in out["issues"])


def test_human_checklist_has_no_literal_markup(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    result = cli("validate", str(path))
    assert "✘" in result.stdout and "error" in result.stdout
    assert "[red]" not in result.stdout and "[/bold]" not in result.stdout
