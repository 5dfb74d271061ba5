"""Budgets: scopes, calendar periods in a timezone, policies (enforcing/advisory/monitoring), reservations,
config vs CLI budgets, the run cost cap and the library hook the Python API uses."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from conftest import cli, json_lines, ledger_rows, sample

from genops_cli.policy.periods import elapsed_fraction, window

UTC = timezone.utc
RAG = ("run", sample("rag"), "--inputs", sample("rag", "inputs.json"))
# gpt-4o-mini at 0.15 / 0.60 USD per 1M tokens: 1000 in + 500 out = $0.00045 per RAG run
RUN_COST = Decimal("0.00045")


@pytest.fixture
def priced_server(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    return openai_server


def _settings():
    from genops_cli.config import load_settings

    return load_settings()


def _ledger():
    from genops_cli.ledger.store import open_ledger

    return open_ledger(os.environ["GENOPS_LEDGER"])


# -- calendar periods -------------------------------------------------------------------------------------------


def test_daily_window_resets_at_berlin_midnight_not_utc():
    before = window("daily", datetime(2026, 1, 15, 22, 59, 59, tzinfo=UTC), "Europe/Berlin")  # 23:59:59 CET
    after = window("daily", datetime(2026, 1, 15, 23, 0, 0, tzinfo=UTC), "Europe/Berlin")  # 00:00 CET
    assert (before.key, after.key) == ("2026-01-15", "2026-01-16")
    assert before.end == after.start == datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    assert window("daily", datetime(2026, 1, 15, 23, 30, tzinfo=UTC), "UTC").key == "2026-01-15"


def test_daily_window_on_dst_days_has_23_and_25_hours():
    spring = window("daily", datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "Europe/Berlin")
    assert spring.start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET
    assert spring.end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # 00:00 CEST
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = window("daily", datetime(2026, 10, 25, 12, 0, tzinfo=UTC), "Europe/Berlin")
    assert autumn.end - autumn.start == timedelta(hours=25)
    # 00:30 local right after the spring-forward night belongs to the next day
    assert window("daily", datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "Europe/Berlin").key == "2026-03-30"
    # elapsed share uses real hours: 11.5 of 23
    assert elapsed_fraction(spring, datetime(2026, 3, 29, 10, 30, tzinfo=UTC)) == 11.5 / 23


def test_weekly_window_is_the_iso_week_from_monday_local():
    sunday_late = window("weekly", datetime(2026, 3, 29, 21, 59, tzinfo=UTC), "Europe/Berlin")  # Sun 23:59 CEST
    monday = window("weekly", datetime(2026, 3, 29, 22, 0, tzinfo=UTC), "Europe/Berlin")  # Mon 00:00 CEST
    assert sunday_late.key == "2026-W13" and monday.key == "2026-W14"
    assert sunday_late.start == datetime(2026, 3, 22, 23, 0, tzinfo=UTC)  # Mon 23 Mar 00:00 CET
    assert sunday_late.end == monday.start == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert window("weekly", datetime(2026, 12, 31, 12, tzinfo=UTC), "UTC").key == "2026-W53"


def test_monthly_window_follows_calendar_months_across_dst_and_year_end():
    march = window("monthly", datetime(2026, 3, 31, 21, 59, tzinfo=UTC), "Europe/Berlin")
    april = window("monthly", datetime(2026, 3, 31, 22, 0, tzinfo=UTC), "Europe/Berlin")
    assert (march.key, april.key) == ("2026-03", "2026-04")
    assert march.start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert march.end == april.start == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    december = window("monthly", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Berlin")
    assert december.key == "2027-01"
    assert window("monthly", datetime(2026, 12, 31, 22, 59, tzinfo=UTC), "Europe/Berlin").key == "2026-12"


def _recorded_run(cost: str, started_at: datetime, team: str | None = "ml", simulated: bool = False):
    import uuid

    from genops_cli.ledger.records import record_run
    from genops_cli.models import Attribution, RunRecord

    run = RunRecord(run_id=str(uuid.uuid4()), pipeline_name="rag", pipeline_hash="h", started_at=started_at,
                    ended_at=started_at, attribution=Attribution(team=team), total_cost=Decimal(cost),
                    simulated=simulated)
    assert record_run(_ledger(), run).ok
    return run


def _check(now: datetime, estimate: str = "0.10", team: str = "ml", policy_mode: str | None = None):
    import uuid

    from genops_cli.execution.runner import Engine
    from genops_cli.models import Attribution, RunRecord
    from genops_cli.policy.budgets import check_budget

    engine = Engine(_settings(), _ledger())
    run = RunRecord(run_id=str(uuid.uuid4()), pipeline_name="rag", pipeline_hash="h", started_at=now,
                    attribution=Attribution(team=team))
    return check_budget(engine, run, Decimal(estimate), policy_mode=policy_mode, reserve=False, now=now), run


def test_daily_budget_resets_at_local_midnight_with_injected_clock():
    from genops_cli.policy.budgets import set_budget

    set_budget(_ledger(), _settings(), "team:ml", daily=Decimal("1.00"), policy="enforcing",
               timezone="Europe/Berlin")
    _recorded_run("0.95", datetime(2026, 3, 29, 21, 0, tzinfo=UTC))  # 23:00 CEST on the 29th
    decision, run = _check(datetime(2026, 3, 29, 21, 59, tzinfo=UTC))  # 23:59 the same local day
    assert (decision.result, decision.reason_code) == ("BLOCKED", "BUDGET_EXCEEDED")
    assert "budget limit $1" in decision.message and "2026-03-29" in decision.message
    [event] = run.policy_events
    assert (event.rule, event.result, event.enforced) == ("budget:team:ml:daily", "BLOCKED", True)
    decision, _ = _check(datetime(2026, 3, 29, 22, 0, tzinfo=UTC))  # 00:00 CEST on the 30th: a new day
    assert decision.result == "ALLOWED" and decision.reason_code is None
    # another team's spend is not team:ml's
    _recorded_run("5.00", datetime(2026, 3, 30, 8, 0, tzinfo=UTC), team="search")
    assert _check(datetime(2026, 3, 30, 9, 0, tzinfo=UTC))[0].result == "ALLOWED"


def test_monthly_budget_resets_on_the_first_in_the_budget_timezone():
    from genops_cli.policy.budgets import set_budget

    set_budget(_ledger(), _settings(), "team:ml", monthly=Decimal("2"), policy="enforcing",
               timezone="Europe/Berlin")
    _recorded_run("1.95", datetime(2026, 4, 30, 12, 0, tzinfo=UTC))
    assert _check(datetime(2026, 4, 30, 21, 59, tzinfo=UTC))[0].result == "BLOCKED"  # 23:59 CEST, April
    assert _check(datetime(2026, 4, 30, 22, 0, tzinfo=UTC))[0].result == "ALLOWED"  # 00:00 CEST, May


def test_simulated_runs_never_count_toward_budgets():
    from genops_cli.policy.budgets import set_budget, status

    set_budget(_ledger(), _settings(), "team:ml", daily=Decimal("1"), policy="enforcing")
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    _recorded_run("50", now - timedelta(hours=1), simulated=True)
    assert _check(now, estimate="0.5")[0].result == "ALLOWED"
    [row] = status(_ledger(), _settings(), "team:ml", now=now)
    assert row.spent == Decimal(0)


def test_status_projects_the_burn_rate_to_period_end():
    from genops_cli.policy.budgets import set_budget, status

    set_budget(_ledger(), _settings(), "global", daily=Decimal("10"), policy="advisory")
    day = datetime(2026, 5, 4, tzinfo=UTC)
    _recorded_run("1.5", day + timedelta(hours=1))
    [row] = status(_ledger(), _settings(), now=day + timedelta(hours=6))  # a quarter of the day gone
    out = row.to_json()
    assert (out["spent"], out["limit"], out["utilization"]) == ("1.5", "10", "15.00")
    assert (out["projected"], out["projected_utilization"]) == ("6", "60.00")
    assert out["remaining"] == "8.5" and out["period_key"] == "2026-05-04"


# -- policies through `genops run` -----------------------------------------------------------------------------


def test_enforcing_budget_blocks_before_any_provider_call(priced_server):
    assert cli("budget", "set", "global", "--daily", "0.0001", "--policy", "enforcing").exit_code == 0
    result = cli(*RAG, "--json")
    assert result.exit_code == 3, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "blocked"
    assert (out["policy"]["result"], out["policy"]["reason_code"]) == ("BLOCKED", "BUDGET_EXCEEDED")
    assert "budget limit" in out["error"]
    assert Decimal(out["total_cost"]) == 0
    assert priced_server.count("/chat/completions") == 0
    [(status, total, result_, reason, reserved)] = ledger_rows(
        "SELECT status, total_cost, policy_result, policy_reason_code, reserved_cost FROM runs")
    assert (status, total, result_, reason, reserved) == ("blocked", Decimal(0), "BLOCKED", "BUDGET_EXCEEDED",
                                                          Decimal(0))
    assert ledger_rows("SELECT rule, result, enforced FROM policy_events") == [
        ("budget:global:daily", "BLOCKED", True)]
    assert ledger_rows("SELECT COUNT(*) FROM reservations") == [(0,)]


def test_advisory_budget_warns_and_runs(priced_server):
    cli("budget", "set", "team:ml", "--daily", "0.0001", "--policy", "advisory")
    result = cli(*RAG, "--team", "ml", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert (out["status"], out["policy"]["result"], out["policy"]["reason_code"]) == ("ok", "WARNING",
                                                                                      "BUDGET_EXCEEDED")
    assert Decimal(out["total_cost"]) == RUN_COST
    assert priced_server.count("/chat/completions") == 1
    assert "policy WARNING BUDGET_EXCEEDED" in result.stderr
    assert ledger_rows("SELECT policy_result, total_cost FROM runs") == [("WARNING", RUN_COST)]
    # without --team the run is outside team:ml's budget
    result = cli(*RAG, "--json")
    assert json_lines(result.stdout)[0]["policy"]["result"] == "ALLOWED"


def test_monitoring_budget_allows_and_records_the_violation(priced_server):
    cli("budget", "set", "project:search", "--daily", "0.0001", "--policy", "monitoring")
    result = cli(*RAG, "--project", "search", "--json")
    assert result.exit_code == 0
    [out] = json_lines(result.stdout)
    assert (out["status"], out["policy"]["result"]) == ("ok", "ALLOWED")
    assert priced_server.count("/chat/completions") == 1
    assert ledger_rows("SELECT rule, result, reason_code, enforced FROM policy_events") == [
        ("budget:project:search:daily", "ALLOWED", "BUDGET_EXCEEDED", False)]


def test_policy_flag_overrides_the_budget_and_accepts_aliases(priced_server):
    cli("budget", "set", "global", "--daily", "0.0001", "--policy", "enforcing")
    assert cli(*RAG, "--policy", "advisory", "--json").exit_code == 0
    assert priced_server.count("/chat/completions") == 1
    cli("budget", "set", "global", "--policy", "monitoring")
    blocked = cli(*RAG, "--policy", "strict", "--json")
    assert blocked.exit_code == 3
    assert json_lines(blocked.stdout)[0]["policy"]["result"] == "BLOCKED"
    assert priced_server.count("/chat/completions") == 1


def test_reservation_is_the_worst_case_estimate_and_is_released_with_the_actual_cost(priced_server):
    from genops_cli.execution.estimate import estimate_run
    from genops_cli.execution.inputs import prepare_run_data, read_inputs
    from genops_cli.execution.loading import load_pipeline

    cli("budget", "set", "global", "--monthly", "100", "--policy", "enforcing")
    result = cli(*RAG, "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    loaded = load_pipeline(sample("rag"))
    data = prepare_run_data(loaded.pipeline, read_inputs(sample("rag", "inputs.json"), None)[0])
    expected = estimate_run(loaded, data, _settings()).high
    assert 0 < expected < RUN_COST  # the fake bills more tokens than the prompt has: the spend exceeds the hold
    # Reconciled when the call ended: the hold was raised to the spend, so no other run could use that money
    # before this run was recorded.
    held = max(expected, RUN_COST)
    assert Decimal(out["policy"]["reserved_cost"]) == held
    [(amount, released, actual, scopes)] = ledger_rows(
        "SELECT amount, released_at, actual_cost, scopes FROM reservations WHERE run_id = ?", [out["run_id"]])
    assert amount == held and released is not None and actual == RUN_COST
    assert scopes == "|global|pipeline:rag|"
    assert ledger_rows("SELECT reserved_cost FROM runs") == [(held,)]


def test_active_and_expired_reservations(tmp_path):
    from genops_cli.policy import reservations

    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    with _ledger().write() as tx:
        reservations.insert(tx, "r1", ["global", "team:ml"], Decimal("0.25"), created_at=now, now=now,
                            ttl_minutes=60)
        reservations.insert(tx, "r2", ["global"], Decimal("0.5"), created_at=now, now=now - timedelta(hours=2),
                            ttl_minutes=60)  # a crashed run's hold, expired an hour ago
    start, end = now - timedelta(hours=12), now + timedelta(hours=12)
    with _ledger().read() as tx:
        assert reservations.active_amount(tx, "global", start, end, now) == Decimal("0.25")
        assert reservations.active_amount(tx, "team:ml", start, end, now) == Decimal("0.25")
        assert reservations.active_amount(tx, "team:m", start, end, now) == 0
        assert reservations.active_amount(tx, "global", start, end, now + timedelta(hours=2)) == 0


def test_active_reservations_count_against_the_limit():
    from genops_cli.policy import reservations
    from genops_cli.policy.budgets import set_budget

    set_budget(_ledger(), _settings(), "team:ml", daily=Decimal("1"), policy="enforcing")
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    with _ledger().write() as tx:
        reservations.insert(tx, "in-flight", ["global", "team:ml"], Decimal("0.6"), created_at=now, now=now,
                            ttl_minutes=60)
    assert _check(now, estimate="0.4")[0].result == "ALLOWED"  # 0.6 + 0.4 == 1: not over
    decision, _ = _check(now, estimate="0.41")
    assert decision.result == "BLOCKED" and "reserved $0.6" in decision.message


def test_max_cost_stops_before_the_next_llm_call(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    # The drafter's worst case (gpt-4o-mini, max_tokens 512: ~$0.0003) fits under the cap; after its call, its
    # cost plus the reviewer's worst case (gpt-4o, max_tokens 512: ~$0.005) does not.
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--max-cost", "0.001",
                 "--json")
    assert result.exit_code == 3, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "blocked" and out["policy"]["reason_code"] == "BUDGET_EXCEEDED"
    assert Decimal(out["total_cost"]) == RUN_COST  # the drafter's call, made before the cap was reached
    assert openai_server.count("/chat/completions") == 1  # the reviewer was never called
    assert ledger_rows("SELECT status, total_cost FROM runs") == [("blocked", RUN_COST)]


# -- where budgets come from -----------------------------------------------------------------------------------


def test_env_budget_and_policy_alias(priced_server, monkeypatch):
    monkeypatch.setenv("GENOPS_DAILY_BUDGET_LIMIT", "0.0001")
    monkeypatch.setenv("GENOPS_GOVERNANCE_POLICY", "enforced")
    result = cli(*RAG, "--json")
    assert result.exit_code == 3
    assert priced_server.count("/chat/completions") == 0
    listed = json_lines(cli("budget", "list", "--json").stdout)[0]
    assert listed == [{"scope": "global", "daily": "0.0001", "weekly": None, "monthly": None,
                       "policy": "enforcing", "alert_at": [50, 80, 95, 100], "timezone": "UTC",
                       "source": "config", "updated_at": None, "webhook": None}]


def test_cli_budget_wins_over_config_for_the_same_scope(priced_server, tmp_path):
    (tmp_path / ".genops.yml").write_text(
        "haystack:\n  daily_budget_limit: 0.0001\n  governance_policy: enforcing\n"
        "budgets:\n  timezone: Europe/Berlin\n  scopes:\n    'team:ml': {daily: 5, policy: advisory}\n")
    assert cli(*RAG, "--json").exit_code == 3
    assert cli("budget", "set", "global", "--daily", "10").exit_code == 0
    assert cli(*RAG, "--json").exit_code == 0
    listed = {b["scope"]: b for b in json_lines(cli("budget", "list", "--json").stdout)[0]}
    # the CLI budget started from the config one (policy kept) and is now in the ledger
    assert (listed["global"]["source"], listed["global"]["daily"], listed["global"]["policy"]) == (
        "cli", "10", "enforcing")
    assert (listed["team:ml"]["source"], listed["team:ml"]["timezone"]) == ("config", "Europe/Berlin")
    removed = cli("budget", "remove", "team:ml")
    assert removed.exit_code == 2 and ".genops.yml" in removed.stderr
    assert cli("budget", "remove", "global").exit_code == 0
    assert cli(*RAG, "--json").exit_code == 3  # the config budget applies again
    assert priced_server.count("/chat/completions") == 1


def test_budget_changes_are_audited_and_the_chain_verifies():
    from genops_cli.ledger import audit

    assert cli("budget", "set", "customer:acme", "--monthly", "20", "--alert-at", "25,75").exit_code == 0
    assert cli("budget", "set", "customer:acme", "--weekly", "6", "--timezone", "America/New_York").exit_code == 0
    assert cli("budget", "remove", "customer:acme").exit_code == 0
    assert ledger_rows("SELECT kind, subject_id FROM audit_log ORDER BY seq") == [("budget", "customer:acme")] * 3
    with _ledger().read() as tx:
        checked, problems = audit.verify(tx)
    assert checked == 3 and problems == []


def test_budget_set_updates_only_given_fields_and_status_json():
    cli("budget", "set", "environment:prod", "--daily", "3", "--monthly", "50", "--policy", "enforcing")
    cli("budget", "set", "environment:prod", "--daily", "none", "--weekly", "12.5")
    [budget] = json_lines(cli("budget", "list", "--json").stdout)[0]
    assert (budget["daily"], budget["weekly"], budget["monthly"], budget["policy"]) == (
        None, "12.5", "50", "enforcing")
    rows = json_lines(cli("budget", "status", "environment:prod", "--json").stdout)[0]
    assert [(r["period"], r["spent"], r["reserved"], r["limit"]) for r in rows] == [
        ("weekly", "0", "0", "12.5"),
        ("monthly", "0", "0", "50")]


@pytest.mark.parametrize("args, needle", [
    (("budget", "set", "teams:ml", "--daily", "1"), "bad budget scope"),
    (("budget", "set", "team:ml", "--daily", "ten"), "--daily"),
    (("budget", "set", "team:ml", "--daily", "1", "--policy", "lenient"), "--policy"),
    (("budget", "set", "team:ml", "--daily", "1", "--timezone", "Mars/Base"), "--timezone"),
    (("budget", "set", "team:ml", "--daily", "1", "--alert-at", "fifty"), "--alert-at"),
    (("budget", "set", "team:ml", "--policy", "enforcing"), "at least one limit"),
    (("budget", "remove", "team:nobody"), "no budget"),
])
def test_bad_budget_input_is_one_line_exit_2(args, needle):
    result = cli(*args)
    assert result.exit_code == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- the library hook for the Python API -----------------------------------------------------------------------


def test_check_budget_and_raise_if_blocked_for_the_python_api():
    from genops_cli.errors import BudgetExceededError
    from genops_cli.policy.budgets import raise_if_blocked, set_budget

    set_budget(_ledger(), _settings(), "team:ml", daily=Decimal("0.05"), policy="enforcing")
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    decision, _ = _check(now, estimate="0.06")
    with pytest.raises(BudgetExceededError, match="budget limit") as info:
        raise_if_blocked(decision)
    assert info.value.reason_code == "BUDGET_EXCEEDED"
    decision, _ = _check(now, estimate="0.06", policy_mode="advisory")
    raise_if_blocked(decision)  # WARNING does not raise
    assert decision.result == "WARNING"


def test_set_budget_accepts_amount_strings_and_rejects_bad_ones(ledger_path):
    from genops_cli.config import Settings
    from genops_cli.errors import ConfigError
    from genops_cli.ledger.store import DuckDBLedger
    from genops_cli.policy.budgets import set_budget

    budget = set_budget(DuckDBLedger(ledger_path), Settings(), "team:ml", daily="1.25")
    assert budget.daily == Decimal("1.25")
    with pytest.raises(ConfigError, match="--daily"):
        set_budget(DuckDBLedger(ledger_path), Settings(), "team:ml", daily="lots")
