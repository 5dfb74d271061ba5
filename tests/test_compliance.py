"""Compliance rules in preflight (providers, models, regions per classification, max cost per operation,
required attribution; enforcing / advisory / monitoring), their validation, and `genops compliance report`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from conftest import cli, json_lines, ledger_rows, sample

REGIONS = """
providers:
  openai: {region: us}
  anthropic: {region: eu}
compliance:
  mode: %s
  classifications:
    restricted:
      allowed_regions: [eu]
    confidential:
      allowed_models: ["claude-*", "gpt-4o"]
"""


def _config(tmp_path, text: str) -> None:
    (tmp_path / ".genops.yml").write_text(text)


def _run(*args: str):
    return cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json", *args)


def test_enforcing_region_rule_blocks_before_any_provider_call(tmp_path, openai_server):
    _config(tmp_path, REGIONS % "enforcing")
    result = _run("--classification", "restricted", "--team", "ml")
    assert result.exit_code == 3
    [out] = json_lines(result.stdout)
    assert out["status"] == "blocked"
    assert (out["policy"]["result"], out["policy"]["reason_code"]) == ("BLOCKED", "POLICY_DENY_REGION")
    assert openai_server.count("/chat/completions") == 0
    [(rule, result_, code, enforced, message)] = ledger_rows(
        "SELECT rule, result, reason_code, enforced, message FROM policy_events")
    assert (rule, result_, code, enforced) == ("compliance:regions", "BLOCKED", "POLICY_DENY_REGION", True)
    assert "region us" in message and "allows regions eu" in message
    [(status, classification)] = ledger_rows("SELECT status, data_classification FROM runs")
    assert (status, classification) == ("blocked", "restricted")


def test_advisory_records_the_violation_and_runs(tmp_path, openai_server):
    _config(tmp_path, REGIONS % "advisory")
    result = _run("--classification", "confidential")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert (out["status"], out["policy"]["result"], out["policy"]["reason_code"]) == ("ok", "WARNING",
                                                                                    "POLICY_DENY_MODEL")
    assert openai_server.count("/chat/completions") == 1
    [(rule, result_, enforced)] = ledger_rows("SELECT rule, result, enforced FROM policy_events")
    assert (rule, result_, enforced) == ("compliance:models", "WARNING", False)


def test_monitoring_records_silently(tmp_path, openai_server):
    _config(tmp_path, REGIONS % "monitoring")
    result = _run("--classification", "restricted")
    assert result.exit_code == 0
    [out] = json_lines(result.stdout)
    assert out["policy"]["result"] == "ALLOWED"
    [(rule, enforced, message)] = ledger_rows("SELECT rule, enforced, message FROM policy_events")
    assert (rule, enforced) == ("compliance:regions", False) and message.endswith("[monitoring]")


def test_per_rule_override_and_policy_flag(tmp_path, openai_server):
    _config(tmp_path, (REGIONS % "advisory") + "  rule_modes: {models: enforcing}\n")
    result = _run("--classification", "confidential")
    assert result.exit_code == 3
    assert json_lines(result.stdout)[0]["policy"]["reason_code"] == "POLICY_DENY_MODEL"
    # --policy replaces the section-wide mode for one run: the region rule now blocks too.
    blocked = _run("--classification", "restricted", "--policy", "enforcing")
    assert blocked.exit_code == 3
    # Public data has no rules: allowed.
    assert _run("--classification", "public").exit_code == 0
    assert openai_server.count("/chat/completions") == 1


def test_allowed_providers_and_required_attribution(tmp_path, openai_server):
    _config(tmp_path, "compliance:\n  mode: enforcing\n  required_attribution: [team, project]\n"
                      "  rule_modes: {attribution: advisory}\n"
                      "  classifications:\n    internal: {allowed_providers: [openai]}\n"
                      "    restricted: {allowed_providers: [anthropic]}\n")
    ok = _run("--team", "ml")
    assert ok.exit_code == 0
    [out] = json_lines(ok.stdout)
    assert (out["policy"]["result"], out["policy"]["reason_code"]) == ("WARNING", "x_ATTRIBUTION_MISSING")
    blocked = _run("--team", "ml", "--project", "search", "--classification", "restricted")
    assert blocked.exit_code == 3
    assert json_lines(blocked.stdout)[0]["policy"]["reason_code"] == "POLICY_DENY_MODEL"
    events = ledger_rows("SELECT rule, reason_code, enforced FROM policy_events ORDER BY rule")
    assert events == [("compliance:attribution", "x_ATTRIBUTION_MISSING", False),
                      ("compliance:providers", "POLICY_DENY_MODEL", True)]
    [(message,)] = ledger_rows("SELECT message FROM policy_events WHERE rule = 'compliance:attribution'")
    assert "project" in message and "--project" in message


def test_max_cost_per_operation_checked_after_the_run(tmp_path, openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}  # $0.000450 on gpt-4o-mini
    _config(tmp_path, "compliance:\n  mode: advisory\n  max_cost_per_operation: 0.0001\n")
    result = _run()
    assert result.exit_code == 0
    [out] = json_lines(result.stdout)
    [(rule, code, result_, enforced, message, run_id)] = ledger_rows(
        "SELECT rule, reason_code, result, enforced, message, run_id FROM policy_events")
    assert (rule, code, result_, enforced, run_id) == ("compliance:max_cost", "POLICY_MAX_COST", "WARNING",
                                                       False, out["run_id"])
    assert "$0.000450 exceeds max_cost_per_operation $0.000100" in message
    assert cli("compliance", "verify").exit_code == 0  # the late event is in the audit chain
    _config(tmp_path, "compliance:\n  mode: advisory\n  max_cost_per_operation: 1\n")
    assert _run().exit_code == 0
    assert len(ledger_rows("SELECT * FROM policy_events")) == 1


@pytest.mark.parametrize("text, fragment", [
    ("compliance:\n  mode: strictest\n", ".genops.yml:2 compliance.mode: unknown policy"),
    ("compliance:\n  classifications:\n    secret: {}\n", ".genops.yml:3 compliance.classifications.secret: unknown "
                                                         "classification"),
    ("compliance:\n  classifications:\n    restricted:\n      allowed_region: [eu]\n",
     ".genops.yml:4 compliance.classifications.restricted.allowed_region: unknown rule"),
    ("compliance:\n  rule_modes: {speed: enforcing}\n", "compliance.rule_modes.speed: unknown rule"),
    ("compliance:\n  required_attribution: [team, owner]\n", ".genops.yml:2 compliance.required_attribution: "
                                                             "unknown attribution field 'owner'"),
    ("compliance:\n  max_cost_per_operation: lots\n", ".genops.yml:2 compliance.max_cost_per_operation"),
    ("providers:\n  openai: us\n", ".genops.yml:2 providers.openai: must be a mapping"),
])
def test_config_errors_name_key_and_line(tmp_path, text, fragment):
    _config(tmp_path, text)
    result = cli("compliance", "report")
    assert result.exit_code == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_valid_config_is_parsed_into_rules(tmp_path):
    from genops_cli.config import load_settings

    _config(tmp_path, REGIONS % "enforced" + "  allowed_providers: [openai, anthropic]\n"
                                             "  required_attribution: customer, team\n")
    cfg = load_settings().compliance
    assert cfg.mode == "enforcing" and cfg.provider_regions == {"openai": "us", "anthropic": "eu"}
    assert cfg.required_attribution == ("customer_id", "team")
    restricted = cfg.rules_for("restricted")
    assert restricted.allowed_regions == ("eu",) and restricted.allowed_providers == ("openai", "anthropic")
    assert cfg.rules_for("public").allowed_regions is None


def test_compliance_report_counts_violations_classifications_and_spec_conformance(tmp_path, openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    _config(tmp_path, REGIONS % "enforcing")
    assert _run("--team", "ml", "--project", "search", "--environment", "prod").exit_code == 0  # internal
    assert _run("--team", "ml", "--classification", "restricted").exit_code == 3
    assert _run("--classification", "public").exit_code == 0
    cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--simulate")  # never counted
    result = cli("compliance", "report", "--days", "7", "--format", "json")
    assert result.exit_code == 0, result.stderr
    r = json.loads(result.stdout)
    assert (r["total_operations"], r["compliant_operations"], r["blocked_operations"]) == (3, 2, 1)
    assert r["violations"]["by_reason_code"] == [{"reason_code": "POLICY_DENY_REGION", "count": 1, "enforced": 1,
                                                  "runs": 1, "rules": ["compliance:regions"]}]
    assert Decimal(r["cost_summary"]["total_cost"]) == 2 * Decimal("0.000450")
    assert r["cost_summary"]["by_team"] == {"ml": "0.00045", "unattributed": "0.00045"}
    assert [(p["provider"], p["region"], p["calls"]) for p in r["provider_usage"]] == [("openai", "us", 2)]
    breakdown = {c["classification"]: (c["runs"], c["compliant"], c["blocked"]) for c in
                 r["data_classification_breakdown"]}
    assert breakdown == {"internal": (1, 1, 0), "public": (1, 1, 0), "restricted": (1, 0, 1)}
    spec = r["spec_conformance"]
    attrs = {a["attribute"]: a["present"] for a in spec["attributes"]}
    assert (spec["runs_checked"], spec["conforming_runs"]) == (3, 1)  # only the first run has team/project/env
    assert (attrs["genops.team"], attrs["genops.project"], attrs["genops.environment"]) == (2, 1, 1)
    assert attrs["genops.policy.result"] == attrs["genops.policy.reason_code"] == 3
    # 4 runs + 1 policy event + the 3 distinct policies the runs were admitted under (one per classification)
    assert r["audit"]["intact"] is True and r["audit"]["entries"] == 8
    md = cli("compliance", "report", "--format", "md")
    assert "| POLICY_DENY_REGION | 1 | 1 | 1 | compliance:regions |" in md.stdout
    table = cli("compliance", "report")
    assert "compliant 2 (66.7%)" in table.stdout
