"""Settings: `.genops.yml` + GENOPS_* + flags into one object; precedence flags > env > file > defaults; every
bad value is a ConfigError naming the file, key and line (or the variable)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from genops_cli.config import load_settings
from genops_cli.errors import ConfigError
from genops_cli.models import Attribution

GUIDE = """\
haystack:
  default_team: ai-research
  default_project: haystack-app
  daily_budget_limit: 100.0
  governance_policy: advisory

providers:
  openai:
    default_model: gpt-4o-mini
    timeout: 30

observability:
  export_to: datadog
  sampling_rate: 1.0
"""


def _write(tmp_path, text: str):
    path = tmp_path / ".genops.yml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_env():
    s = load_settings()
    assert s.config_path is None
    assert (s.attribution.team, s.attribution.project, s.attribution.environment) == (None, None, None)
    assert s.attribution.data_classification == "internal"
    assert s.budgets.scopes == [] and s.budgets.default_policy == "advisory"
    assert (s.capture_content, s.otlp_endpoint, s.log_level) == (False, None, "WARNING")


def test_guide_config_file_is_accepted(tmp_path):
    _write(tmp_path, GUIDE)
    s = load_settings()
    assert (s.attribution.team, s.attribution.project) == ("ai-research", "haystack-app")
    [glob] = s.budgets.scopes
    assert (glob.scope, glob.daily, glob.policy) == ("global", Decimal("100.0"), "advisory")


def test_precedence_flags_over_env_over_file(tmp_path, monkeypatch):
    _write(tmp_path, "ledger: file.duckdb\nhaystack:\n  default_team: file-team\n  default_project: file-proj\n"
                     "  environment: file-env\n  daily_budget_limit: 10\n  governance_policy: advisory\n")
    monkeypatch.setenv("GENOPS_TEAM", "env-team")
    monkeypatch.setenv("GENOPS_ENVIRONMENT", "env-env")
    monkeypatch.setenv("GENOPS_DAILY_BUDGET_LIMIT", "25.50")
    monkeypatch.setenv("GENOPS_GOVERNANCE_POLICY", "strict")
    monkeypatch.setenv("GENOPS_LEDGER", "env.duckdb")
    monkeypatch.setenv("GENOPS_LOG_LEVEL", "info")
    s = load_settings(ledger_flag="flag.duckdb", attribution=Attribution(team="flag-team"))
    assert s.attribution.team == "flag-team"          # flag > env > file
    assert s.attribution.environment == "env-env"     # env > file
    assert s.attribution.project == "file-proj"       # file > default
    assert s.ledger == "flag.duckdb"
    assert s.log_level == "INFO"
    [glob] = s.budgets.scopes
    assert (glob.daily, glob.policy) == (Decimal("25.50"), "enforcing")  # alias strict -> enforcing
    monkeypatch.delenv("GENOPS_LEDGER")
    assert load_settings().ledger == "file.duckdb"


def test_explicit_config_path_and_genops_config(tmp_path, monkeypatch):
    other = tmp_path / "other.yml"
    other.write_text("haystack:\n  default_team: from-other\n")
    assert load_settings(config_path=other).attribution.team == "from-other"
    monkeypatch.setenv("GENOPS_CONFIG", str(other))
    assert load_settings().attribution.team == "from-other"
    with pytest.raises(ConfigError, match="--config missing.yml: file not found"):
        load_settings(config_path="missing.yml")


@pytest.mark.parametrize(("text", "expected"), [
    ("haystack:\n  default_team: ml\n  daily_budget_limit: lots\n", r"\.genops\.yml:3 haystack\.daily_budget_limit"),
    ("haystack:\n  governance_policy: yolo\n", r"\.genops\.yml:2 haystack\.governance_policy: unknown policy"),
    ("budgets:\n  timezone: Mars/Base\n", r"\.genops\.yml:2 budgets\.timezone: unknown timezone"),
    ("ledgr: x.duckdb\n", r"\.genops\.yml:1 ledgr: unknown key"),
    ("haystack:\n  daily_budget_limt: 5\n", r"\.genops\.yml:2 haystack\.daily_budget_limt: unknown key"),
    ("observability:\n  capture_content: maybe\n", r":2 observability\.capture_content: 'maybe' is not true or false"),
    ("observability:\n  otlp_endpoint: collector:4318\n", r":2 observability\.otlp_endpoint: must be an http"),
    ("observability:\n  sampling_rate: 3\n", r":2 observability\.sampling_rate: must be between 0 and 1"),
    ("alerts:\n  timeout_seconds: soon\n", r":2 alerts\.timeout_seconds: 'soon' is not a number"),
    ("logging:\n  level: chatty\n", r":2 logging\.level: unknown log level"),
    ("budgets:\n  scopes:\n    'tribe:ml': {daily: 5}\n", r":3 budgets\.scopes\.tribe:ml: bad budget scope"),
    ("haystack: [1, 2]\n", r"\.genops\.yml:1 haystack: must be a mapping"),
    ("haystack:\n  default_team: [unclosed\n", r"\.genops\.yml:\d+: malformed YAML"),
])
def test_bad_file_values_name_the_key_and_line(tmp_path, text, expected):
    _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("GENOPS_DAILY_BUDGET_LIMIT", "ten", "GENOPS_DAILY_BUDGET_LIMIT: 'ten' is not an amount"),
    ("GENOPS_DAILY_BUDGET_LIMIT", "-5", "GENOPS_DAILY_BUDGET_LIMIT: '-5' must be a non-negative amount"),
    ("GENOPS_GOVERNANCE_POLICY", "lax", "GENOPS_GOVERNANCE_POLICY: unknown policy 'lax'"),
    ("GENOPS_LOG_LEVEL", "loud", "GENOPS_LOG_LEVEL: unknown log level 'loud'"),
])
def test_bad_environment_values_name_the_variable(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_observability_and_scopes(tmp_path):
    _write(tmp_path, "observability:\n  capture_content: 'yes'\n  otlp_endpoint: http://localhost:4318\n"
                     "  service_name: rag-api\nbudgets:\n  alert_at: 50,90\n  scopes:\n"
                     "    'team:ml': {daily: 10, monthly: '$200', policy: enforced}\n")
    s = load_settings()
    assert (s.capture_content, s.otlp_endpoint, s.service_name) == (True, "http://localhost:4318", "rag-api")
    [scope] = s.budgets.scopes
    assert (scope.scope, scope.daily, scope.monthly, scope.policy) == ("team:ml", Decimal(10), Decimal(200),
                                                                       "enforcing")
    assert scope.alert_at == (50, 90)


def test_cli_reports_config_error_as_one_line_exit_2(tmp_path):
    from conftest import cli

    _write(tmp_path, "haystack:\n  governance_policy: yolo\n")
    result = cli("ledger", "info")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert ".genops.yml:2 haystack.governance_policy" in result.stderr
