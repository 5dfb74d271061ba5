"""Every load failure is one line naming the file, component and field, with exit 2 and no traceback."""

from __future__ import annotations

import json

import pytest
from conftest import cli, sample

GENERATOR = "haystack.components.generators.chat.openai.OpenAIChatGenerator"

CASES = {
    "unknown type": (GENERATOR, GENERATOR.replace("OpenAIChatGenerator", "NopeGenerator"),
                     ["component 'llm'", "has no NopeGenerator"]),
    "missing integration": (GENERATOR, "haystack_integrations.components.generators.cohere.CohereChatGenerator",
                            ["component 'llm'", "pip install cohere-haystack"]),
    "outside allowlist": (GENERATOR, "mycorp.llm.Generator", ["component 'llm'", "--allow-module mycorp"]),
    "removed in haystack 3": (GENERATOR, "haystack.components.generators.openai.OpenAIGenerator",
                              ["component 'llm'", "use haystack.components.generators.chat.openai"]),
    "bad init parameter": ("model: gpt-4o-mini", "model: gpt-4o-mini\n      temperature_x: 3",
                           ["component 'llm'", "unknown init parameter 'temperature_x'"]),
    "bad connection": ("receiver: llm.messages", "receiver: llm.msgs", ["connections:", "llm.msgs"]),
}


#: Known classes that are not installed (an integration package) or were removed (Haystack 2.x), and a team's
#: own generator (never imported): --simulate replaces them with stand-ins, so only a real run fails on them.
SIMULATE_RUNS = {"missing integration", "removed in haystack 3", "outside allowlist"}


@pytest.mark.parametrize("simulate", [True, False], ids=["simulate", "real"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_load_errors_name_file_component_and_field(case, simulate, tmp_path, monkeypatch):
    if simulate and case in SIMULATE_RUNS:
        pytest.skip("simulated: covered by test_simulate_replaces_known_missing_classes")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-unused")
    old, new, expected = CASES[case]
    text = open(sample("rag")).read()
    assert old in text
    path = tmp_path / "pipeline.yml"
    path.write_text(text.replace(old, new, 1))
    args = ["run", str(path), "--inputs", sample("rag", "inputs.json")] + (["--simulate"] if simulate else [])
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(path) in lines[0]
    for fragment in expected:
        assert fragment in lines[0]


def test_allow_module_admits_a_trusted_package(tmp_path, monkeypatch):
    pkg = tmp_path / "trustedpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from haystack import component\n\n"
        "@component\nclass Shout:\n"
        "    @component.output_types(text=str)\n"
        "    def run(self, text: str):\n        return {'text': text.upper()}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "p.yml"
    path.write_text("components:\n  shout:\n    type: trustedpkg.Shout\n    init_parameters: {}\nconnections: []\n")
    denied = cli("run", str(path), "--input", "shout.text=hi")
    assert denied.exit_code == 2 and "--allow-module trustedpkg" in denied.stderr
    allowed = cli("run", str(path), "--input", "shout.text=hi", "--allow-module", "trustedpkg", "--json")
    assert allowed.exit_code == 0, allowed.stderr
    assert '"HI"' in allowed.stdout


def test_not_a_pipeline_file(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("just: a mapping\n")
    result = cli("run", str(path), "--input", "x=1")
    assert result.exit_code == 2 and "not a Haystack pipeline" in result.stderr


def test_missing_pipeline_file(tmp_path):
    result = cli("run", str(tmp_path / "nope.yml"), "--input", "x=1")
    assert result.exit_code == 2 and "pipeline file not found" in result.stderr


def test_unknown_input_socket_suggests_the_right_name():
    result = cli("run", sample("rag"), "--input", "retriever.query=x", "--input", "prompt_builder.questin=x",
                 "--simulate")
    assert result.exit_code == 2
    assert "prompt_builder.questin" in result.stderr and "question" in result.stderr


def test_root_cause_is_whole_and_has_no_object_reprs():
    from haystack.core.errors import DeserializationError

    from genops_cli.execution.loading import root_cause

    cause = ValueError("None of the following authentication environment variables are set: ('SERPERDEV_API_KEY',) "
                       + "and the secret <haystack.utils.auth.EnvVarSecret object at 0x7f3a2b1c> could not resolve. "
                       * 12)
    try:
        try:
            raise cause
        except ValueError as exc:
            raise DeserializationError(
                "Couldn't deserialize component 'search' of class 'SerperDevWebSearch' with the following data: "
                '{"type": "x", "init_parameters": {"top_k": 3}} Original error: ' + str(exc)) from exc
    except DeserializationError as wrapped:
        text = root_cause(wrapped)
    assert text.startswith("ValueError: None of the following authentication environment variables are set: "
                           "('SERPERDEV_API_KEY',)")
    assert "0x7f3a2b1c" not in text and "<EnvVarSecret>" in text
    assert text.endswith("could not resolve.") and len(text) > 540  # whole, never cut
    assert "following data" not in text


def test_lazy_import_error_keeps_its_install_advice():
    from genops_cli.execution.loading import root_cause

    try:
        try:
            import genops_no_such_module  # noqa: F401
        except ImportError as exc:
            raise ImportError("Haystack failed to import the optional dependency 'nltk'. Run 'pip install "
                              "nltk>=3.9.1'.") from exc
    except ImportError as wrapped:
        assert root_cause(wrapped) == ("Haystack failed to import the optional dependency 'nltk'. Run 'pip install "
                                       "nltk>=3.9.1'.")


def test_reexported_class_path_names_the_path_haystack_looks_up(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
    path = tmp_path / "pipeline.yml"
    path.write_text("components:\n  llm:\n    type: haystack_integrations.components.generators.anthropic."
                    "AnthropicChatGenerator\n    init_parameters: {model: claude-3-5-haiku-20241022}\n"
                    "connections: []\n")
    result = cli("run", str(path), "--input", "llm.messages=hi")
    assert result.exit_code == 2
    assert ("Haystack looks AnthropicChatGenerator up as haystack_integrations.components.generators.anthropic.chat."
            "chat_generator.AnthropicChatGenerator; use that class path") in result.stderr


@pytest.mark.parametrize("command", [["run", "--simulate"], ["run"], ["validate"],
                                     ["validate", "--fix-issues", "--yes"], ["estimate"]])
def test_a_module_outside_the_allowlist_is_never_imported(command, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "wild_untrusted.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nclass TeamGenerator:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "pipeline.yml"
    path.write_text("components:\n  llm:\n    type: wild_untrusted.TeamGenerator\n"
                    "    init_parameters: {model: gpt-4o-mini}\nconnections: []\n")
    args = [command[0], str(path), *command[1:]]
    if command[0] in ("run", "estimate"):
        args += ["--input", "llm.prompt=hi"]
    result = cli(*args)
    assert not marker.exists(), result.stderr
    assert "Traceback" not in result.stderr
    if command == ["run", "--simulate"]:
        # never imported, so simulation may stand in for it (a team's own generator), and says so
        assert result.exit_code == 0, result.stderr
        assert "not imported (outside Haystack)" in result.stderr
    elif command[0] == "run":
        assert result.exit_code == 2 and "--allow-module wild_untrusted" in result.stderr


def test_haystack_1x_file_is_named_as_such(tmp_path):
    path = tmp_path / "pipeline.yml"
    path.write_text("version: 1.26.0\ncomponents:\n- name: Retriever\n  type: BM25Retriever\n"
                    "pipelines:\n- name: query\n  nodes:\n  - name: Retriever\n    inputs: [Query]\n")
    result = cli("run", str(path), "--simulate", "--input", "q=1")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "a Haystack 1.x pipeline" in line and "Traceback" not in result.stderr


@pytest.mark.parametrize("text, problem, fix", [
    # a placeholder file published as a pipeline (deepset-ai/dap-github-agent-template indexing.yml)
    ("# Empty Pipeline\n", "not a Haystack pipeline", "Pipeline.dumps()"),
    ("version: ignore\ncomponents:\n- name: Retriever\n  type: BM25Retriever\n"
     "pipelines:\n- name: query\n  nodes:\n  - name: Retriever\n    inputs: [Query]\n",
     "a Haystack 1.x pipeline", "rebuild it"),
])
def test_validate_names_an_unreadable_file_once_with_its_own_fix(tmp_path, text, problem, fix):
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    issue = next(i for i in json.loads(cli("validate", str(path), "--json").stdout)["issues"]
                 if i["component"] == str(path))
    assert issue["message"].startswith(problem) and str(path) not in issue["message"]
    assert fix in issue["fix_suggestion"]
