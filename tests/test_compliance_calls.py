"""Compliance on the call that happens: rules checked per call against the provider, model and endpoint actually
called (whatever the inputs changed, on every entry point), max_cost_per_operation that holds, governed and
recorded overrides, residency from the endpoint, customers bound to regions, strict configuration, and the
policy each run was admitted under."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from conftest import cli, json_lines, ledger_rows, sample

MODELS = """
compliance:
  mode: enforcing
  classifications:
    confidential:
      allowed_models: ["gpt-4o-mini*"]
"""


def _config(tmp_path, text: str) -> None:
    (tmp_path / ".genops.yml").write_text(text)


def _inputs(tmp_path, **llm) -> str:
    data = json.loads(open(sample("rag", "inputs.json")).read())
    if llm:
        data["llm"] = llm
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(data))
    return str(path)


def _run(tmp_path, *args: str, **llm):
    return cli("run", sample("rag"), "--inputs", _inputs(tmp_path, **llm), "--json", *args)


def test_a_model_switched_through_the_inputs_is_stopped_before_the_call(tmp_path, openai_server):
    _config(tmp_path, MODELS)
    allowed = _run(tmp_path, "--classification", "confidential")
    assert allowed.exit_code == 0, allowed.stderr
    assert openai_server.count("/chat/completions") == 1
    switched = _run(tmp_path, "--classification", "confidential", generation_kwargs={"model": "gpt-4o"})
    assert switched.exit_code == 3, switched.stderr
    [out] = json_lines(switched.stdout)
    assert (out["status"], out["policy"]["reason_code"]) == ("blocked", "POLICY_DENY_MODEL")
    assert openai_server.count("/chat/completions") == 1  # zero requests for the denied call
    [(message, enforced)] = ledger_rows("SELECT message, enforced FROM policy_events WHERE run_id = ?",
                                        [out["run_id"]])
    assert message.startswith("at call time:") and "gpt-4o" in message and enforced is True
    report = json.loads(cli("compliance", "report", "--format", "json").stdout)
    assert report["blocked_operations"] == 1


def test_the_api_without_pipeline_checks_rules_on_each_call(tmp_path, openai_server, monkeypatch):
    from genops.providers.haystack import GenOpsHaystackAdapter
    from haystack import Pipeline

    _config(tmp_path, MODELS)
    pipeline = Pipeline.loads(open(sample("rag")).read())
    adapter = GenOpsHaystackAdapter(team="ml", data_classification="confidential")
    data = json.loads(open(_inputs(tmp_path, generation_kwargs={"model": "gpt-4o"})).read())
    with pytest.raises(Exception) as raised:
        with adapter.track_pipeline("switching"):
            pipeline.run(data)
    assert "gpt-4o" in str(raised.value) or "compliance" in str(raised.value).lower()
    adapter.flush()
    assert openai_server.count("/chat/completions") == 0
    [(status, code)] = ledger_rows("SELECT status, policy_reason_code FROM runs")
    assert (status, code) == ("blocked", "POLICY_DENY_MODEL")


def test_enforcing_max_cost_per_operation_stops_before_the_crossing_call(tmp_path, openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}  # gpt-4o-mini: $0.00045 a call
    _config(tmp_path, "compliance:\n  mode: enforcing\n  max_cost_per_operation: 0.0001\n")
    result = _run(tmp_path)
    assert result.exit_code == 3
    [out] = json_lines(result.stdout)
    assert (out["status"], out["policy"]["result"], out["policy"]["reason_code"]) == (
        "blocked", "BLOCKED", "POLICY_MAX_COST")
    assert openai_server.count("/chat/completions") == 0
    assert Decimal(out["total_cost"]) <= Decimal("0.0001")
    [(rule, code, enforced)] = ledger_rows("SELECT rule, reason_code, enforced FROM policy_events")
    assert (rule, code, enforced) == ("compliance:max_cost", "POLICY_MAX_COST", True)


def test_enforcing_max_cost_lets_calls_through_while_their_worst_case_fits(tmp_path, openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    # The chain's two calls: 512 max tokens each; the cap fits the drafter's worst case, not the reviewer's on top.
    _config(tmp_path, "compliance:\n  mode: enforcing\n  max_cost_per_operation: 0.002\n")
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    [out] = json_lines(result.stdout)
    assert result.exit_code == 3 and out["policy"]["reason_code"] == "POLICY_MAX_COST"
    assert openai_server.count("/chat/completions") == 1  # the drafter ran, the reviewer never did
    assert Decimal(out["total_cost"]) == Decimal("0.00045")  # spend so far is recorded


def test_advisory_max_cost_warns_on_stderr_and_records(tmp_path, openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    _config(tmp_path, "compliance:\n  mode: advisory\n  max_cost_per_operation: 0.0001\n")
    result = _run(tmp_path)
    assert result.exit_code == 0
    [(rule, result_, enforced, message)] = ledger_rows("SELECT rule, result, enforced, message FROM policy_events")
    assert (rule, result_, enforced) == ("compliance:max_cost", "WARNING", False)
    assert "$0.000450 exceeds max_cost_per_operation $0.000100" in message


def test_policy_override_is_refused_unless_allowed_and_recorded_when_it_is(tmp_path, openai_server):
    _config(tmp_path, MODELS)
    refused = _run(tmp_path, "--classification", "confidential", "--policy", "monitoring",
                   generation_kwargs={"model": "gpt-4o"})
    assert refused.exit_code == 3
    assert openai_server.count("/chat/completions") == 0
    events = ledger_rows("SELECT rule, message FROM policy_events WHERE rule = 'compliance:override'")
    assert events and "may not weaken" in events[0][1] and "models" in events[0][1]

    _config(tmp_path, MODELS + "  allow_override: [models]\n")
    allowed = _run(tmp_path, "--classification", "confidential", "--policy", "monitoring",
                   generation_kwargs={"model": "gpt-4o"})
    assert allowed.exit_code == 0, allowed.stderr
    [out] = json_lines(allowed.stdout)
    assert out["policy"]["override"]["weakened"] == ["models"]
    [(override,)] = ledger_rows("SELECT policy_override FROM runs WHERE run_id = ?", [out["run_id"]])
    assert json.loads(override)["policy"] == "monitoring"
    assert cli("compliance", "verify").exit_code == 0  # the override is covered by the run's audit entry


def test_each_run_keeps_the_policy_it_was_admitted_under(tmp_path, openai_server):
    _config(tmp_path, MODELS)
    assert _run(tmp_path, "--classification", "confidential").exit_code == 0
    _config(tmp_path, MODELS.replace('"gpt-4o-mini*"', '"gpt-4o-mini*", "claude-*"'))
    assert _run(tmp_path, "--classification", "confidential").exit_code == 0
    assert _run(tmp_path, "--classification", "confidential").exit_code == 0
    hashes = [r[0] for r in ledger_rows("SELECT policy_hash FROM runs ORDER BY started_at")]
    assert len(set(hashes)) == 2 and hashes[1] == hashes[2] and all(hashes)
    bodies = dict(ledger_rows("SELECT policy_hash, body FROM policy_snapshots"))
    assert set(bodies) == set(hashes)
    assert json.loads(bodies[hashes[0]])["rules"]["allowed_models"] == ["gpt-4o-mini*"]
    assert cli("compliance", "verify").exit_code == 0


REGION = """
compliance:
  mode: enforcing
  classifications:
    restricted: {allowed_regions: [eu]}
"""


def test_region_comes_from_the_endpoint_called(tmp_path, openai_server):
    _config(tmp_path, REGION)
    local = _run(tmp_path, "--classification", "restricted")
    assert local.exit_code == 3 and "region local" in local.stderr + local.stdout  # a loopback endpoint
    _config(tmp_path, REGION + "providers:\n  openai: {region: eu-central-1}\n")  # the static override
    assert _run(tmp_path, "--classification", "restricted").exit_code == 0


def test_region_of_known_endpoints():
    from genops_cli.policy.residency import region_allowed, region_of

    assert region_of("openai", "https://eu.api.openai.com/v1").name == "eu"
    assert region_of("openai", None).name == "us"
    assert region_of("aws", "https://bedrock-runtime.eu-central-1.amazonaws.com").name == "eu-central-1"
    assert region_of("azure", "https://swedencentral.api.cognitive.microsoft.com").name == "swedencentral"
    assert region_of("google", "https://europe-west4-aiplatform.googleapis.com").name == "europe-west4"
    assert region_of("openai", "http://127.0.0.1:8080/v1").name == "local"
    assert region_of("openai", "https://llm.example.net/v1").name is None
    assert region_of("openai", "https://llm.example.net/v1", {"openai": "eu"}).basis == "config"
    assert region_allowed("eu-central-1", ["eu"]) and region_allowed("swedencentral", ["eu"])
    assert not region_allowed("us-east-1", ["eu"]) and not region_allowed(None, ["eu"])


def test_customers_bound_to_regions(tmp_path, openai_server):
    _config(tmp_path, "compliance:\n  mode: enforcing\n  customer_regions:\n    acme-corp: [eu]\n"
                      "providers:\n  openai: {region: us}\n")
    blocked = _run(tmp_path, "--customer", "acme-corp")
    assert blocked.exit_code == 3 and json_lines(blocked.stdout)[0]["policy"]["reason_code"] == "POLICY_DENY_REGION"
    assert _run(tmp_path, "--customer", "globex").exit_code == 0
    assert openai_server.count("/chat/completions") == 1


@pytest.mark.parametrize("text, fragment", [
    ("compliance:\n  allowed_providers: [opneai]\n",
     ".genops.yml:2 compliance.allowed_providers: unknown provider 'opneai'; did you mean 'openai'?"),
    ("compliance:\n  allowed_models: [gpt-4o-mnii]\n", "matches no model genops can price; did you mean"),
    ("compliance:\n  allowed_models: []\n", "empty allow list denies everything"),
    ("compliance:\n  allowed_providers: [anthropic]\n  allowed_models: [\"gpt-4o*\"]\n",
     "none of which allowed_providers (anthropic) allows"),
    ("compliance:\n  allowed_regions: [europa]\n", "unknown region 'europa'"),
    ("compliance:\n  customer_regions:\n    acme: []\n", "empty region list"),
    ("compliance:\n  allow_override: [speed]\n", "compliance.allow_override: unknown rule 'speed'"),
    ("compliance:\n  allowed_models: [gpt-4o-mini]\n  allowed_models: [gpt-4o]\n",
     "duplicate key 'allowed_models' (first at line 2)"),
])
def test_strict_configuration(tmp_path, text, fragment):
    _config(tmp_path, text)
    result = cli("compliance", "report")
    assert result.exit_code == 2 and fragment in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    validated = cli("validate")  # validate reports it among its checks, with file:line, and fails
    # The table wraps at the terminal width wherever the temporary path's length puts the break: compare words.
    assert validated.exit_code == 1 and fragment in " ".join(validated.stdout.split())


def test_report_shows_the_rules_in_force_and_exports_csv(tmp_path, openai_server):
    import csv
    import io

    _config(tmp_path, MODELS)
    assert _run(tmp_path, "--classification", "confidential").exit_code == 0
    _config(tmp_path, MODELS + "  allow_override: true\n")
    assert _run(tmp_path, "--classification", "confidential", "--policy", "advisory",
                generation_kwargs={"model": "gpt-4o"}).exit_code == 0
    report = json.loads(cli("compliance", "report", "--format", "json").stdout)
    in_force = report["rules_in_force"]
    assert len(in_force) == 2 and sum(p["runs"] for p in in_force) == 2
    assert all(p["policy"]["rules"]["allowed_models"] == ["gpt-4o-mini*"] for p in in_force)
    assert {p["policy"]["policy_override"] for p in in_force} == {None, "advisory"}
    [override] = report["overrides"]
    assert "models" in override["override"]["weakened"] and override["override"]["policy"] == "advisory"
    csv_text = cli("compliance", "report", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == 2 and {r["policy_result"] for r in rows} == {"ALLOWED", "WARNING"}
    assert {r["policy_hash"] for r in rows} == {p["policy_hash"] for p in in_force}
    out = tmp_path / "ops.csv"
    assert cli("compliance", "report", "--format", "csv", "--out", str(out)).exit_code == 0
    assert out.read_text() == csv_text


def test_bedrock_region_from_the_aws_configuration(monkeypatch):
    from genops_cli.policy.residency import region_of

    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert region_of("aws", None).name == "eu-west-3"


def test_call_time_rules_hold_in_batches_and_under_auto_instrument(tmp_path, openai_server):
    _config(tmp_path, MODELS)
    lines = tmp_path / "batch.jsonl"
    base = json.loads(open(sample("rag", "inputs.json")).read())
    lines.write_text("\n".join(json.dumps({**base, "llm": {"generation_kwargs": {"model": m}}})
                               for m in ("gpt-4o-mini", "gpt-4o", "gpt-4o-mini")) + "\n")
    batch = cli("run", sample("rag"), "--inputs", str(lines), "--classification", "confidential", "--json")
    runs = sorted((o for o in json_lines(batch.stdout) if "run_id" in o), key=lambda o: o["line"])
    assert [o["status"] for o in runs] == ["ok", "blocked", "ok"]  # lines finish in any order
    assert openai_server.count("/chat/completions") == 2

    from genops.providers.haystack import auto_instrument, uninstrument
    from haystack import Pipeline

    auto_instrument(team="ml", data_classification="confidential")
    try:
        pipeline = Pipeline.loads(open(sample("rag")).read())
        with pytest.raises(Exception) as raised:
            pipeline.run({**base, "llm": {"generation_kwargs": {"model": "gpt-4o"}}})
        assert "gpt-4o" in str(raised.value)
    finally:
        uninstrument()
    assert openai_server.count("/chat/completions") == 2  # the denied call made no request
