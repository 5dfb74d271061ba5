"""Hostile inputs, one case each: every file genops reads (pipeline YAML, inputs JSON/JSONL and stdin,
.genops.yml, --documents, pricing overlays) and every flag that takes a value. Each case must end with its
documented exit code (2 for bad input, with one `error:` line naming the file or flag), no traceback and no hang.

Run with `-s` to see the tally: `.venv/bin/python -m pytest -q -s tests/test_hostile_inputs.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import sample
from hostile import invoke, invoke_subprocess, summary

CHAIN = sample("chain")
CHAIN_INPUTS = sample("chain", "inputs.json")
VALID_PIPELINE = Path(CHAIN).read_text(encoding="utf-8")

BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))
)
RECURSIVE_ALIAS = "components: &c {x: *c}\nconnections: []\n"


def _deep_block(levels: int) -> str:
    body = "".join("  " * (i + 1) + f"k{i}:\n" for i in range(levels))
    return "components:\n" + body + "  " * (levels + 1) + "v: 1\n"


PIPELINES: dict[str, bytes] = {
    "alias bomb (billion laughs)": BOMB.encode(),
    "alias bomb under components": ("components:\n  x: &x [1,2,3,4,5,6,7,8,9,10]\n" + "".join(
        f"  y{i}: &y{i} [{', '.join(['*' + ('x' if i == 0 else f'y{i - 1}')] * 10)}]\n" for i in range(7))).encode(),
    "recursive alias": RECURSIVE_ALIAS.encode(),
    "undefined alias": b"components: *nope\n",
    "duplicate anchor": b"components: {a: &x 1, b: &x 2}\nconnections: []\n",
    "deep block nesting": _deep_block(400).encode(),
    "deep flow nesting": ("components: " + "[" * 3000 + "]" * 3000 + "\n").encode(),
    "deep flow mappings": ("components: " + "{a: " * 600 + "1" + "}" * 600 + "\n").encode(),
    "not utf-8": b"components:\n  x: \xff\xfe\xfa\n",
    "latin-1 text": "components:\n  caf\u00e9: {type: x.Y}\n".encode("latin-1"),
    "utf-16": "components: {}\n".encode("utf-16"),
    "nul bytes": b"components:\x00\n",
    "empty file": b"",
    "only a document marker": b"---\n",
    "two documents": b"components: {}\n---\ncomponents: {}\n",
    "top-level list": b"- components\n- connections\n",
    "top-level scalar": b"42\n",
    "components is a list": b"components: [a, b]\nconnections: []\n",
    "components is null": b"components:\nconnections: []\n",
    "component is a scalar": b"components:\n  a: 1\nconnections: []\n",
    "component type is a number": b"components:\n  a: {type: 12, init_parameters: {}}\n",
    "component type is a list": b"components:\n  a: {type: [x], init_parameters: {}}\n",
    "component type not a class path": b"components:\n  a: {type: nodots, init_parameters: {}}\n",
    "component type outside allowlist": b"components:\n  a: {type: os.system, init_parameters: {}}\n",
    "python object tag": b"components: !!python/object/apply:os.system [echo pwned]\n",
    "python name tag": b"components:\n  a: {type: !!python/name:os.system '', init_parameters: {}}\n",
    "python module tag": b"components: !!python/module:os\n",
    "init_parameters is a list": b"components:\n  a: {type: haystack.components.builders.prompt_builder."
                                 b"PromptBuilder, init_parameters: [1, 2]}\nconnections: []\n",
    "connections is a mapping": b"components: {}\nconnections: {a: b}\n",
    "connection entries are numbers": b"components: {}\nconnections: [1, 2, 3]\n",
    "connection without sender": VALID_PIPELINE.replace("sender:", "sendr:", 1).encode(),
    "connection to a missing component": VALID_PIPELINE.replace("receiver: reviewer", "receiver: nobody", 1).encode(),
    "unhashable key": b"? [a, b]\n: c\n",
    "integer with 10000 digits": b"components:\n  a: " + b"9" * 10000 + b"\n",
    "tagged int with 10000 digits": b"components:\n  a: !!int " + b"9" * 10000 + b"\n",
    "bad timestamp": b"components: !!timestamp 2026-13-45\n",
    "bad base64 binary": b"components: !!binary '%%%'\n",
    "tab indentation": b"components:\n\ta: 1\n",
    "unclosed quote": b"components: 'abc\n",
    "unclosed flow": b"components: [a, b\n",
    "metadata is a list": VALID_PIPELINE.replace("metadata: {}", "metadata: [1, 2]").encode(),
    "max_runs_per_component negative": VALID_PIPELINE.replace("max_runs_per_component: 100",
                                                              "max_runs_per_component: -5").encode(),
    "unknown init parameter": VALID_PIPELINE.replace("model: gpt-4o-mini", "modle: gpt-4o-mini", 1).encode(),
    "a very long line": b"components: {a: '" + b"x" * 2_000_000 + b"'}\n",
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_hostile_pipeline_file_exits_2(tmp_path, name):
    path = tmp_path / "pipeline.yml"
    path.write_bytes(PIPELINES[name])
    out = invoke(["run", str(path), "--inputs", CHAIN_INPUTS, "--simulate"])
    assert str(path) in out.stderr


def test_alias_bomb_is_refused_in_a_separate_process_without_spinning(tmp_path):
    """The 504-byte document that used to pin a CPU: a real process, killed if it does not answer."""
    path = tmp_path / "bomb.yml"
    path.write_text(BOMB, encoding="utf-8")
    out = invoke_subprocess(["run", str(path), "--inputs", CHAIN_INPUTS, "--simulate"], timeout=30)
    assert "YAML nodes once aliases are expanded" in out.stderr and "GENOPS_MAX_YAML_NODES" in out.stderr
    for command in (["validate", str(path)], ["pricing", "check", str(path)], ["estimate", str(path), "--inputs",
                                                                                CHAIN_INPUTS]):
        out = invoke(command, expect={1, 2})  # validate reports problems with exit 1
        assert "GENOPS_MAX_YAML_NODES" in out.stdout + out.stderr


def test_oversized_pipeline_is_refused_before_parsing(tmp_path):
    """A 37 MB pipeline is refused from its size at once (it used to parse for minutes)."""
    path = tmp_path / "huge.yml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("components:\n")
        for i in range(400_000):
            fh.write(f"  c{i}: {{type: haystack.components.builders.prompt_builder.PromptBuilder, x: {i}}}\n")
    assert path.stat().st_size > 30 * 1024 * 1024
    out = invoke_subprocess(["run", str(path), "--inputs", CHAIN_INPUTS, "--simulate"], expect={2}, timeout=30)
    assert "exceeds the pipeline file size limit" in out.stderr and "GENOPS_MAX_PIPELINE_BYTES" in out.stderr


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_endless_device_as_pipeline_or_inputs(device):
    if not Path(device).exists():
        pytest.skip(f"{device} missing")
    invoke(["run", device, "--inputs", CHAIN_INPUTS, "--simulate"])
    invoke(["run", CHAIN, "--inputs", device, "--simulate"])


def test_limits_are_configurable_by_env_and_config(tmp_path):
    out = invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate"], env={"GENOPS_MAX_PIPELINE_BYTES": "1KB"})
    assert "pipeline file size limit (1 KiB)" in out.stderr and "GENOPS_MAX_PIPELINE_BYTES" in out.stderr
    (tmp_path / ".genops.yml").write_text("limits:\n  pipeline_bytes: 2KB\n", encoding="utf-8")
    out = invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate"])
    assert "(2 KiB)" in out.stderr
    (tmp_path / ".genops.yml").write_text("limits:\n  pipeline_bytes: 1MB\n  depth: 3\n", encoding="utf-8")
    out = invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate"])
    assert "depth limit (3)" in out.stderr
    # raised: the same pipeline runs
    (tmp_path / ".genops.yml").write_text("limits:\n  pipeline_bytes: 1MB\n", encoding="utf-8")
    invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--json"], expect={0})


@pytest.mark.parametrize(("var", "value"), [
    ("GENOPS_MAX_DEPTH", "abc"), ("GENOPS_MAX_DEPTH", "0"), ("GENOPS_MAX_DEPTH", "100000"),
    ("GENOPS_MAX_PIPELINE_BYTES", "1XB"), ("GENOPS_MAX_PIPELINE_BYTES", "-5"), ("GENOPS_MAX_YAML_NODES", "1.5"),
    ("GENOPS_LOCK_TIMEOUT", "-1"), ("GENOPS_LOCK_TIMEOUT", "soon"), ("GENOPS_LOCK_TIMEOUT", "1e9"),
])
def test_bad_limit_values_in_the_environment_exit_2(var, value):
    out = invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate"], env={var: value})
    assert var in out.stderr


@pytest.mark.parametrize(("var", "value"), [
    ("GENOPS_CAPTURE_CONTENT", "maybe"), ("GENOPS_WEBHOOK_URL", "ftp://hooks.example/x"),
    ("GENOPS_WEBHOOK_URL", "hooks.example/genops"),
])
def test_bad_switches_in_the_environment_exit_2(var, value):
    """A value genops would otherwise read as "off" (content capture) or could never post to (a webhook) is
    refused by name instead of silently changing what a run records or alerts."""
    out = invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate"], env={var: value})
    assert var in out.stderr


@pytest.mark.parametrize("command", ["run", "estimate"])
def test_a_missing_pipeline_file_is_named_before_missing_inputs(command, tmp_path):
    out = invoke([command, str(tmp_path / "nope.yml")])
    assert "nope.yml: pipeline file not found" in out.stderr


def test_validate_with_an_unknown_provider_is_bad_input():
    out = invoke(["validate", "--provider", "bogus"])
    assert "--provider" in out.stderr and "openai" in out.stderr


def test_tuple_tag_from_pipeline_dumps_still_loads(tmp_path):
    """Loader parity with Haystack: Pipeline.dumps() writes tuples as !!python/tuple, which must load."""
    text = VALID_PIPELINE.replace("metadata: {}", "metadata: {sizes: !!python/tuple [1, 2]}")
    if text == VALID_PIPELINE:
        text = VALID_PIPELINE + "metadata:\n  sizes: !!python/tuple [1, 2]\n"
    path = tmp_path / "tuple.yml"
    path.write_text(text, encoding="utf-8")
    invoke(["run", str(path), "--inputs", CHAIN_INPUTS, "--simulate", "--json"], expect={0})


def _deep_json(levels: int) -> str:
    return '{"draft_prompt": {"request": ' + "[" * levels + "]" * levels + ', "audience": "x"}}'


INPUTS: dict[str, tuple[str, bytes]] = {
    "deep json": ("in.json", _deep_json(5000).encode()),
    "deep json within recursion limit": ("in.json", _deep_json(400).encode()),
    "deep jsonl line": ("in.jsonl", (json.dumps({"draft_prompt": {"request": "a", "audience": "b"}}) + "\n"
                                     + _deep_json(3000) + "\n").encode()),
    "not utf-8": ("in.json", b'{"draft_prompt": {"request": "\xff\xfe", "audience": "x"}}'),
    "utf-16": ("in.json", '{"a": 1}'.encode("utf-16")),
    "empty": ("in.json", b""),
    "whitespace": ("in.json", b"  \n\t \n"),
    "array": ("in.json", b"[1, 2, 3]"),
    "string": ("in.json", b'"hello"'),
    "null": ("in.json", b"null"),
    "truncated": ("in.json", b'{"draft_prompt": {"request": '),
    "trailing garbage": ("in.json", b'{"a": 1} xyz'),
    "huge integer": ("in.json", b'{"draft_prompt": {"request": ' + b"9" * 6000 + b', "audience": "x"}}'),
    "lone surrogate": ("in.json", b'{"draft_prompt": {"request": "\\ud800", "audience": "x"}}'),
    "jsonl with a bad line": ("in.jsonl", b'{"a": 1}\n{oops}\n'),
    "jsonl with an array line": ("in.jsonl", b'{"a": 1}\n[1]\n'),
    "unknown component": ("in.json", b'{"nobody": {"x": 1}}'),
    "unknown flat socket": ("in.json", b'{"zzz": 1}'),
    "unknown socket of a component": ("in.json", b'{"draft_prompt": {"zzz": 1}}'),
    "missing required input": ("in.json", b'{"draft_prompt": {"request": "x"}}'),
    "component value is a list": ("in.json", b'{"draft_prompt": [1, 2]}'),
    "nested key is a number-like string": ("in.json", b'{"123": {"456": 7}}'),
    "keys with control characters": ("in.json", b'{"\\u0000\\u001b[31m": 1}'),
    "100k keys": ("in.json", json.dumps({f"k{i}": i for i in range(100_000)}).encode()),
}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_hostile_inputs_file_exits_2(tmp_path, name):
    filename, content = INPUTS[name]
    path = tmp_path / filename
    path.write_bytes(content)
    out = invoke(["run", CHAIN, "--inputs", str(path), "--simulate"])
    assert filename in out.stderr


@pytest.mark.parametrize("name", ["deep json", "not utf-8", "array", "truncated", "huge integer", "empty"])
def test_hostile_inputs_on_stdin_exit_2(name):
    out = invoke(["run", CHAIN, "--inputs", "-", "--simulate"], input=INPUTS[name][1])
    assert "stdin" in out.stderr


def test_stdin_over_the_size_cap():
    out = invoke(["run", CHAIN, "--inputs", "-", "--simulate"], input=b'{"a": "' + b"x" * 5000 + b'"}',
                 env={"GENOPS_MAX_INPUTS_BYTES": "1KB"})
    assert "GENOPS_MAX_INPUTS_BYTES" in out.stderr


QUICK_INPUTS = ["=x", "", ".=1", "a.b.c", "draft_prompt.request", "nobody.x=1", "draft_prompt.zzz=1",
                "draft_prompt.request=" + "[" * 5000]


@pytest.mark.parametrize("value", QUICK_INPUTS)
def test_hostile_input_flags_exit_2(value):
    invoke(["run", CHAIN, "--input", value, "--simulate"])


CONFIGS: dict[str, bytes] = {
    "not utf-8": b"ledger: \xff\xfe\n",
    "alias bomb": BOMB.encode(),
    "recursive alias": b"budgets: &b {scopes: *b}\n",
    "deep nesting": ("budgets:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300))).encode(),
    "duplicate key": b"ledger: a.duckdb\nbudgets: {}\nledger: b.duckdb\n",
    "duplicate nested key": b"budgets:\n  timezone: UTC\n  timezone: Europe/Berlin\n",
    "top-level list": b"- ledger\n",
    "top-level scalar": b"hello\n",
    "unknown key": b"ledgr: x\n",
    "budgets is a list": b"budgets: [1, 2]\n",
    "scopes is a list": b"budgets: {scopes: [a]}\n",
    "scope spec is a scalar": b"budgets: {scopes: {'team:ml': 5}}\n",
    "bad scope": b"budgets: {scopes: {'nonsense': {daily: 1}}}\n",
    "negative budget": b"budgets: {scopes: {'team:ml': {daily: -1}}}\n",
    "NaN budget": b"budgets: {scopes: {'team:ml': {daily: .nan}}}\n",
    "infinite budget": b"budgets: {scopes: {'team:ml': {daily: .inf}}}\n",
    "budget as a mapping": b"budgets: {scopes: {'team:ml': {daily: {a: 1}}}}\n",
    "bad timezone": b"budgets: {timezone: Mars/Olympus}\n",
    "timezone path traversal": b"budgets: {timezone: ../../etc/passwd}\n",
    "alert thresholds garbage": b"budgets: {alert_at: [a, b]}\n",
    "webhook not a URL": b"alerts: {webhook_url: 'file:///etc/passwd'}\n",
    "limits unknown": b"limits: {everything: 1}\n",
    "limits garbage": b"limits: {pipeline_bytes: lots}\n",
    "limits depth absurd": b"limits: {depth: 100000000}\n",
    "lock timeout negative": b"limits: {lock_timeout_seconds: -5}\n",
    "redact not a mapping": b"redact: [A]\n",
    "redact env_vars a mapping": b"redact: {env_vars: {a: 1}}\n",
    "classification unknown": b"attribution: {data_classification: top-secret}\n",
    "pricing dir missing": b"pricing: {dirs: [/nonexistent/dir]}\n",
    "log level garbage": b"logging: {level: LOUD}\n",
    "huge integer": b"reservation: {max_tokens_cap: " + b"9" * 6000 + b"}\n",
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hostile_config_exits_2(tmp_path, name):
    (tmp_path / ".genops.yml").write_bytes(CONFIGS[name])
    out = invoke(["budget", "list", "--json"])
    assert ".genops.yml" in out.stderr


def test_duplicate_config_key_names_its_line(tmp_path):
    (tmp_path / ".genops.yml").write_text("ledger: a.duckdb\nbudgets: {}\nledger: b.duckdb\n", encoding="utf-8")
    out = invoke(["budget", "list", "--json"])
    assert ".genops.yml:3: duplicate key 'ledger' (first at line 1)" in out.stderr


def test_config_over_the_size_cap(tmp_path):
    (tmp_path / ".genops.yml").write_text("# " + "x" * 5000 + "\n", encoding="utf-8")
    out = invoke(["budget", "list"], env={"GENOPS_MAX_CONFIG_BYTES": "1KB"})
    assert "GENOPS_MAX_CONFIG_BYTES" in out.stderr


DOCUMENTS: dict[str, bytes] = {
    "not utf-8": b'{"content": "\xff"}\n',
    "deep line": (b'{"content": "a", "meta": ' + b"[" * 3000 + b"]" * 3000 + b"}\n"),
    "bad json": b"{content}\n",
    "no content": b'{"meta": {}}\n',
    "content not a string": b'{"content": 5}\n',
    "empty": b"",
    "array line": b"[1]\n",
}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_hostile_documents_exit_2(tmp_path, name):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(DOCUMENTS[name])
    out = invoke(["run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--documents", str(path),
                  "--simulate"])
    assert "--documents" in out.stderr


OVERLAYS: dict[str, bytes] = {
    "not utf-8": b"models: \xff\n",
    "alias bomb": BOMB.encode(),
    "deep nesting": ("models:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300))).encode(),
    "duplicate key": b"models:\n  - {id: m, id: n}\n",
    "top-level list": b"- 1\n",
    "malformed": b"models: [\n",
    "python tag": b"models: !!python/object/apply:os.system [id]\n",
}


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_hostile_price_overlay_exits_2(tmp_path, name):
    overlays = tmp_path / "overlays"
    overlays.mkdir()
    (overlays / "bad.yml").write_bytes(OVERLAYS[name])
    out = invoke(["pricing", "show", "gpt-4o-mini"], env={"GENOPS_PRICING_DIR": str(overlays)})
    assert "bad.yml" in out.stderr


FLAGS: list[list[str]] = [
    ["analyze", "--since", "99999999999d"],
    ["analyze", "--since", "999999999d"],
    ["analyze", "--since", "9" * 5000 + "d"],
    ["analyze", "--since", "0d"],
    ["analyze", "--since", "-1d"],
    ["analyze", "--since", "1y"],
    ["analyze", "--since", ""],
    ["analyze", "--since", "\x00"],
    ["analyze", "--from", "9999-12-31", "--to", "9999-12-31"],
    ["analyze", "--from", "0001-01-01T00:00+05:00"],
    ["analyze", "--from", "2026-13-01"],
    ["analyze", "--from", "2026-05-02", "--to", "2026-05-01"],
    ["analyze", "--to", "+999999-01-01"],
    ["analyze", "--since", "1d", "--from", "2026-01-01"],
    ["recommend", "--since", "99999999999d"],
    ["report", "--tenant", "acme", "--period", "0000-00"],
    ["report", "--tenant", "acme", "--period", "9999-12"],
    ["report", "--tenant", "acme", "--period", "garbage"],
    ["report", "--tenant", "acme", "--from", "9999-12-31", "--to", "9999-12-31"],
    ["report", "--tenant", "acme", "--format", "exe"],
    ["compliance", "report", "--days", str(10**20)],
    ["compliance", "report", "--days", "1000000000"],
    ["compliance", "report", "--days", "0"],
    ["compliance", "report", "--days", "-3"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--max-cost", "NaN"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--max-cost", "-1"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--max-cost", "Infinity"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--max-cost", "1e999999999"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--concurrency", "0"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--concurrency", str(10**30)],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--retries", "-1"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--classification", "ultra"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--policy", "yolo"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--tag", "novalue"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--tag", "=x"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--cache", "--cache-ttl", "99999999999d"],
    ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--log-format", "xml"],
    ["run", CHAIN, "--inputs", "/nonexistent/in.json", "--simulate"],
    ["run", "/nonexistent/p.yml", "--inputs", CHAIN_INPUTS, "--simulate"],
    ["run", "/", "--inputs", CHAIN_INPUTS, "--simulate"],
    ["run", CHAIN, "--inputs", "/", "--simulate"],
    ["run", CHAIN, "--simulate"],
    ["budget", "set", "team:ml", "--daily", "NaN"],
    ["budget", "set", "team:ml", "--daily", "-5"],
    ["budget", "set", "team:ml", "--daily", "1e999999999"],
    ["budget", "set", "nonsense", "--daily", "5"],
    ["budget", "set", "team:ml", "--monthly", "abc"],
    ["ledger", "export", "--table", "users; DROP TABLE runs", "--format", "csv", "--out", "x.csv"],
    ["ledger", "export", "--table", "runs", "--format", "xlsx", "--out", "x.xlsx"],
    ["ledger", "export", "--table", "runs", "--format", "csv", "--out", "/nonexistent/dir/x.csv"],
    ["ledger", "export", "--table", "runs", "--format", "csv", "--out", "/"],
    ["--ledger", "/", "runs"],
    ["--ledger", "", "runs"],
    ["--ledger", "postgresql://x@[::1", "runs"],
    ["--ledger", "postgresql://x@host:99999/db", "runs"],
    ["pricing", "show", "gpt-4o-mini", "--at", "99999-01-01"],
    ["pricing", "show", "gpt-4o-mini", "--at", "garbage"],
    ["compliance", "verify", "--expect-head", ""],
    ["compliance", "verify", "--expect-head", "abc"],
    ["runs", "tail", "--once", "--backlog", str(10**23)],
    ["runs", "tail", "--once", "--interval", "nan"],
    ["ledger", "migrate", "--to", "other.duckdb", "--batch", str(10**23)],
    ["serve", "--refresh", "nan"],
    ["serve", "--refresh", "inf"],
    ["serve", "--host", ""],
    ["serve", "--host", "\u202eabc", "--port", "0"],
    ["budget", "set", "team:ml", "--daily", "5", "--timezone", "x" * 5000],
]

LONG = "x" * 5000  # longer than any file name the system allows (ENAMETOOLONG)
LONG_PATHS: list[list[str]] = [
    ["--ledger", LONG, "runs"],
    ["--config", LONG, "budget", "list"],
    ["run", LONG, "--inputs", CHAIN_INPUTS, "--simulate"],
    ["run", CHAIN, "--inputs", LONG, "--simulate"],
    ["run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--documents", LONG, "--simulate"],
    ["ledger", "export", "--table", "runs", "--format", "csv", "--out", LONG],
    ["ledger", "migrate", "--to", LONG],
    ["ledger", "migrate", "--from", LONG, "--to", "other.duckdb"],
    ["report", "--tenant", "acme", "--format", "json", "--out", LONG],
]


@pytest.mark.parametrize("args", LONG_PATHS, ids=[" ".join(a)[:40] for a in LONG_PATHS])
def test_a_path_too_long_for_the_file_system_is_one_line(args):
    """The system's own refusal of a path (File name too long) is a one-line exit 2 naming the path, shortened."""
    invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--json"], expect={0})
    out = invoke(args)
    assert "File name too long" in out.stderr or "file not found" in out.stderr
    assert len(out.stderr) < 600  # the 5000 characters are not echoed back


@pytest.mark.parametrize("var", ["GENOPS_LEDGER", "GENOPS_CONFIG", "GENOPS_BUDGET_TIMEZONE", "GENOPS_SPOOL_DIR"])
def test_an_environment_path_too_long_is_one_line(var):
    out = invoke(["budget", "list"], env={var: LONG})
    assert "error:" in out.stderr


def test_ledger_that_is_not_a_duckdb_file_is_named_and_left_alone(tmp_path):
    """GENOPS_LEDGER pointing at another kind of file: a reader exits 2 naming it, and the file is untouched. A
    device or a FIFO (whose open would block) is refused before anything runs, by readers and writers."""
    other = tmp_path / "notes.json"
    other.write_text('{"important": true}\n', encoding="utf-8")
    for command in (["runs"], ["analyze"], ["report", "--tenant", "acme"], ["compliance", "verify"]):
        out = invoke(["--ledger", str(other), *command])
        assert f"ledger {other}: not a DuckDB database" in out.stderr
    assert other.read_text(encoding="utf-8") == '{"important": true}\n'
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in ("/dev/null", str(fifo)):
        for command in (["runs"], ["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate"]):
            out = invoke(["--ledger", target, *command])
            assert f"ledger {target}: not a regular file" in out.stderr


def test_ledger_url_of_another_database_never_prints_its_password():
    for url in ("mysql://admin:SuperSecretPw123@db.internal/genops", "sqlite:///x.db", "http://u:SuperSecretPw123@h/"):
        out = invoke(["--ledger", url, "runs"])
        assert "not supported" in out.stderr and "SuperSecretPw123" not in out.stdout + out.stderr


TERMINAL_ATTACKS = {
    "customer": "acme\x1b]0;owned\x07\x1b[2J",  # retitle the terminal, clear the screen
    "team": "ml\rpayments",  # a carriage return hides what came before it
    "user": "\u202eevil",  # right-to-left override ("Trojan source")
    "project": "a\nb\x9b31m",  # a newline and a C1 CSI
}


def _has_terminal_controls(text: str) -> bool:
    return any(c in text for c in ("\x1b", "\x07", "\r", "\u202e", "\x9b"))


def test_control_characters_in_user_strings_never_reach_the_terminal(tmp_path):
    """A tenant, team or user string with ANSI/OSC escapes, a carriage return or a bidi override is data: every
    table, CSV, Markdown report, notice and error line shows it escaped (\\x1b), never acts on it."""
    attribution = [f"--{k}={v}" for k, v in TERMINAL_ATTACKS.items()]
    out = invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", *attribution, "--tag", "k=\x1b[31mred"],
                 expect={0})
    assert not _has_terminal_controls(out.stdout + out.stderr)
    tenant = TERMINAL_ATTACKS["customer"]
    commands = [
        (["runs"], {0}), (["runs", "--format", "csv"], {0}),
        (["analyze", "--by", "customer", "--include-simulated"], {0}),
        (["analyze", "--by", "tag:k", "--include-simulated", "--format", "csv"], {0}),
        (["report", "--tenant", tenant], {0}), (["report", "--tenant", tenant, "--format", "md"], {0}),
        (["report", "--tenant", tenant, "--format", "csv"], {0}),
        (["budget", "set", f"customer:{tenant}", "--daily", "5"], {0}), (["budget", "list"], {0}),
        (["budget", "status", f"customer:{tenant}"], {0}),
        (["ledger", "hold", "set", f"customer:{tenant}", "--reason", "\x1b[8mhidden"], {0}),
        (["ledger", "hold", "list"], {0}),
        (["analyze", "--by", "\x1b[2J"], {2}), (["runs", "--status", "a\nerror: forged"], {2}),
        (["runs", "show", "\x1b[2J"], {2}), (["--ledger", "\x1b[2J", "runs"], {2}),
    ]
    for args, expect in commands:
        out = invoke(args, expect=expect)
        assert not _has_terminal_controls(out.stdout + out.stderr), args
    assert "\\x1b" in invoke(["runs"], expect={0}).stdout  # shown, escaped
    forged = invoke(["runs", "--status", "a\nerror: forged"])
    assert forged.stderr.count("\n") == 1 and "a\\nerror: forged" in forged.stderr


def test_terminal_text_escapes_controls_and_keeps_text():
    from genops_cli.safe_output import csv_cell, terminal_text

    assert terminal_text("caf\u00e9 \u65e5\u672c\ttab\nline") == "caf\u00e9 \u65e5\u672c\ttab\nline"
    assert terminal_text("a\x1b[2Jb\u202ec\x9b\x7f") == "a\\x1b[2Jb\\u202ec\\x9b\\x7f"
    assert terminal_text("a\nb\r", one_line=True) == "a\\nb\\r"
    assert csv_cell("\x1b=1+1") == "\\x1b=1+1" and csv_cell("=1+1") == "'=1+1" and csv_cell("-0.5") == "-0.5"


@pytest.mark.parametrize("args", FLAGS, ids=[" ".join(a)[:60] for a in FLAGS])
def test_hostile_flag_values_exit_2(args):
    invoke(args)


@pytest.mark.parametrize("target", ["directory", "fifo"])
def test_report_out_never_replaces_a_directory_or_a_device(tmp_path, target):
    """`--out` onto something that is not a regular file (a folder, a FIFO or device node such as /dev/full) is
    refused: an atomic rename over it would replace the device."""
    path = tmp_path / "target"
    path.mkdir() if target == "directory" else os.mkfifo(path)
    invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--json", "--customer", "acme"], expect={0})
    commands = [["report", "--tenant", "acme", "--format", "json", "--out", str(path)],
                ["compliance", "report", "--format", "json", "--out", str(path)]]
    if target == "directory":  # export streams (a FIFO or /dev/stdout are fine targets for it)
        commands.append(["ledger", "export", "--table", "runs", "--format", "csv", "--out", str(path)])
    for command in commands:
        out = invoke(command)
        assert str(path) in out.stderr
    assert path.is_dir() if target == "directory" else not path.is_file()


def test_export_to_a_full_device_is_one_line():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--json"], expect={0})
    out = invoke(["ledger", "export", "--table", "runs", "--format", "csv", "--out", "/dev/full"])
    assert "--out /dev/full: cannot write" in out.stderr


SPOOL_FILES: dict[str, bytes] = {
    "deep json": b"[" * 100_000 + b"]" * 100_000,
    "a list": b"[1, 2]",
    "run id is a number": b'{"run_id": 5}',
    "not utf-8": b"\xff\xfe",
    "group file of garbage": b'{"runs": [1, "x", null]}',
}


@pytest.mark.parametrize("name", sorted(SPOOL_FILES))
def test_damaged_or_planted_spool_file_never_breaks_later_commands(isolated, name):
    """A spool file that is not a run (disk damage, a planted file) is reported and kept; commands go on."""
    spool = Path(str(isolated) + ".spool")
    spool.mkdir(parents=True, exist_ok=True)
    prefix = "group-0123456789abcdef.3" if name.startswith("group") else "0190a0a0-0000-7000-8000-000000000000.1"
    (spool / f"{prefix}.json").write_bytes(SPOOL_FILES[name])
    invoke(["ledger", "drain"], expect={0, 4})
    invoke(["runs", "--json"], expect={0})
    invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--json"], expect={0})


def test_zz_hostile_inputs_tally():
    """Printed with -s: the number of hostile cases this module ran, with hangs and tracebacks (both 0)."""
    from hostile import TALLY

    summary("inputs")
    assert TALLY["hangs"] == 0 and TALLY["tracebacks"] == 0
