"""Command-line conventions every command follows: global options after the subcommand, one output option
(--format with --json as its alias), help with examples for every command and text for every option, exit codes
and environment variables in the top-level help, shell completion, `config show`, and safer defaults (a missing
ledger, report formats from --out, grouping by any attribute)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, json_lines, sample

CHAIN = ("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")


def _commands():
    import typer

    from genops_cli.cli.app import app

    root = typer.main.get_command(app)

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs is None or getattr(command, "invoke_without_command", False):
            yield " ".join(path), command
        for name, sub in (subs or {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(root, []))


def test_every_command_has_examples_help_text_and_the_common_options():
    commands = _commands()
    assert len(commands) > 20
    for path, command in commands:
        assert command.epilog and "Examples" in command.epilog or "Examples" in (command.help or ""), path
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{path}: option {param.opts} has no help"
        flags = {flag for p in command.params for flag in getattr(p, "opts", ())}
        assert {"--ledger", "--config"} <= flags, path
        if path != "serve":  # the server prints no results
            assert {"--format", "--json"} <= flags, path


def test_top_level_help_lists_exit_codes_environment_and_completion():
    result = cli("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for needle in ("Exit codes", "3 blocked by a budget", "GENOPS_LEDGER", "GENOPS_USER", "NO_COLOR",
                   "--install-completion", "Examples", "runs", "config"):
        assert needle in text, needle


def test_global_options_after_the_subcommand(tmp_path: Path):
    other = tmp_path / "other.duckdb"
    run = cli(*CHAIN[:-1], "--ledger", str(other), "--json")
    assert run.exit_code == 0, run.stderr
    run_id = json_lines(run.stdout)[0]["run_id"]
    assert other.exists()
    assert not (tmp_path / "ledger.duckdb").exists()  # GENOPS_LEDGER of the test was not used
    verify = cli("compliance", "verify", "--ledger", str(other), "--json")
    assert verify.exit_code == 0, verify.stderr
    shown = cli("runs", "show", run_id[:20], "--ledger", str(other), "--json")
    assert json.loads(shown.stdout)["run_id"] == run_id
    listed = cli("runs", "--ledger", str(other), "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    config = tmp_path / "team.yml"
    config.write_text("attribution:\n  team: from-file\n")
    shown = cli("config", "show", "--config", str(config), "--json")
    assert json.loads(shown.stdout)["attribution.team"] == {"value": "from-file", "source": "file"}


def test_json_is_an_alias_of_format_json_everywhere():
    assert cli(*CHAIN).exit_code == 0
    as_json, as_format = (json.loads(cli("analyze", "--include-simulated", *flags).stdout)
                          for flags in (("--json",), ("--format", "json")))
    as_json.pop("period"), as_format.pop("period")  # "now" moved between the two invocations
    assert as_json == as_format and as_json["groups"]
    assert isinstance(json.loads(cli("budget", "list", "--format", "json").stdout), list)
    assert "backend" in json.loads(cli("ledger", "info", "--format", "json").stdout)
    assert json.loads(cli("pricing", "show", "gpt-4o-mini", "--format", "json").stdout)["model"]
    bad = cli("budget", "list", "--format", "yaml")
    assert bad.exit_code == 2 and "--format" in bad.stderr
    clash = cli("analyze", "--json", "--format", "csv")
    assert clash.exit_code == 2 and "--json" in clash.stderr


def test_read_commands_refuse_a_missing_ledger_and_writers_announce_a_new_one(tmp_path: Path):
    missing = tmp_path / "typo" / "ledgr.duckdb"
    for args in (("runs",), ("analyze",), ("recommend",), ("report", "--tenant", "acme"), ("compliance", "report"),
                 ("budget", "status"), ("runs", "show", "abc")):
        result = cli(*args, "--ledger", str(missing))
        assert result.exit_code == 2, args
        assert f"no ledger at {missing}" in result.stderr, args
    assert not missing.exists() and not missing.parent.exists()

    created = cli(*CHAIN[:-1], "--ledger", str(missing), "--json")
    assert created.exit_code == 0, created.stderr
    assert f"created a new ledger at {missing}" in created.stderr
    json_lines(created.stdout)  # stdout is still JSON only
    again = cli(*CHAIN[:-1], "--ledger", str(missing), "--json")
    assert "created a new ledger" not in again.stderr
    bad = cli("budget", "set", "team:ml", "--daily", "ten", "--ledger", str(tmp_path / "fresh.duckdb"))
    assert bad.exit_code == 2 and len(bad.stderr.splitlines()) == 1  # the one-line error only


def test_config_show_names_each_source_and_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".genops.yml").write_text(
        "attribution:\n  team: file-team\n  project: file-project\n"
        "alerts:\n  webhook_url: https://hooks.slack.com/services/T000/B000/s3cr3tT0ken\n  webhook_format: slack\n")
    monkeypatch.setenv("GENOPS_PROJECT", "env-project")
    monkeypatch.setenv("GENOPS_USER", "env-user")
    result = cli("config", "show", "--ledger", str(tmp_path / "flag.duckdb"), "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["ledger"] == {"value": str(tmp_path / "flag.duckdb"), "source": "flag"}
    assert shown["attribution.team"] == {"value": "file-team", "source": "file"}
    assert shown["attribution.project"] == {"value": "env-project", "source": "env"}
    assert shown["attribution.user_id"] == {"value": "env-user", "source": "env"}
    assert shown["alerts.webhook_format"] == {"value": "slack", "source": "file"}
    assert shown["budgets.timezone"] == {"value": "UTC", "source": "default"}
    assert shown["alerts.webhook_url"]["value"] == "https://hooks.slack.com/***"
    assert "s3cr3tT0ken" not in result.stdout
    table = cli("config", "show")
    assert table.exit_code == 0 and "s3cr3tT0ken" not in table.stdout and "file-team" in table.stdout
    pg = cli("config", "show", "--ledger", "postgresql://genops:hunter2@db.internal:5432/genops", "--json")
    assert json.loads(pg.stdout)["ledger"]["value"] == "postgresql://genops:***@db.internal:5432/genops"
    assert "hunter2" not in pg.stdout


def test_analyze_groups_by_tag_feature_cost_center_and_user():
    a = json_lines(cli(*CHAIN, "--tag", "env=prod", "--feature", "search", "--cost-center", "cc1",
                       "--user", "alice").stdout)[0]
    b = json_lines(cli(*CHAIN, "--tag", "env=dev", "--feature", "chat", "--user", "bob").stdout)[0]
    c = json_lines(cli(*CHAIN, "--tag", "env=prod", "--feature", "search", "--user", "alice").stdout)[0]
    cost = {r["run_id"]: Decimal(r["total_cost"]) for r in (a, b, c)}

    def groups(by: str, *flags: str) -> dict[str | None, Decimal]:
        result = cli("analyze", "--by", by, "--include-simulated", *flags, "--json")
        assert result.exit_code == 0, result.stderr
        return {g["key"]: Decimal(g["cost"]) for g in json.loads(result.stdout)["groups"]}

    assert groups("tag:env") == {"prod": cost[a["run_id"]] + cost[c["run_id"]], "dev": cost[b["run_id"]]}
    assert groups("feature") == {"search": cost[a["run_id"]] + cost[c["run_id"]], "chat": cost[b["run_id"]]}
    assert groups("cost_center") == {"cc1": cost[a["run_id"]], None: cost[b["run_id"]] + cost[c["run_id"]]}
    assert groups("user") == {"alice": cost[a["run_id"]] + cost[c["run_id"]], "bob": cost[b["run_id"]]}
    assert groups("user", "--tag", "env=prod") == {"alice": cost[a["run_id"]] + cost[c["run_id"]]}
    assert groups("tag:env", "--user", "bob") == {"dev": cost[b["run_id"]]}
    bad = cli("analyze", "--by", "tag:bad key")
    assert bad.exit_code == 2 and "tag key" in bad.stderr


def test_report_format_follows_out_extension_and_groups_by_feature(openai_server, tmp_path: Path):
    args = ("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--customer", "acme", "--json")
    one = json_lines(cli(*args, "--feature", "search").stdout)[0]
    two = json_lines(cli(*args, "--feature", "chat").stdout)[0]
    for name, check in (("bill.html", lambda t: t.lstrip().lower().startswith("<!doctype html")),
                        ("bill.md", lambda t: t.lstrip().startswith("#")),
                        ("bill.json", lambda t: json.loads(t)["tenant"] == "acme"),
                        ("bill.csv", lambda t: t.splitlines()[0].count(",") > 3)):
        result = cli("report", "--tenant", "acme", "--since", "1d", "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.stderr
        assert check((tmp_path / name).read_text()), name
    breakdown = cli("report", "--tenant", "acme", "--since", "1d", "--by", "feature", "--json")
    assert breakdown.exit_code == 0, breakdown.stderr
    data = json.loads(breakdown.stdout)
    by_feature = {g["key"]: Decimal(g["cost"]) for g in data["breakdown"]["groups"]}
    assert by_feature == {"search": Decimal(one["total_cost"]), "chat": Decimal(two["total_cost"])}
    assert sum(by_feature.values()) == Decimal(data["total_cost"])
    refused = cli("report", "--tenant", "acme", "--by", "feature", "--format", "html")
    assert refused.exit_code == 2


def test_compliance_report_takes_the_common_time_window():
    assert cli(*CHAIN).exit_code == 0
    since = cli("compliance", "report", "--since", "7d", "--json")
    days = cli("compliance", "report", "--days", "7", "--json")
    assert since.exit_code == days.exit_code == 0, since.stderr
    assert json.loads(since.stdout)["period"]["label"] == "last 7d"
    both = cli("compliance", "report", "--since", "7d", "--days", "7")
    assert both.exit_code == 2


def test_pricing_show_unknown_model_suggests_real_names_not_a_catch_all_provider():
    result = cli("pricing", "show", "gpt-4o-mnii")
    assert result.exit_code == 2
    assert "gpt-4o-mini" in result.stderr
    assert "--provider" not in result.stderr
    unknown = cli("pricing", "show", "no-such-model")
    assert unknown.exit_code == 2 and "hf-local" not in unknown.stderr


def test_rerun_attempt_and_attempts_agree(openai_server, tmp_path: Path):
    batch = tmp_path / "batch.jsonl"
    line = json.loads(Path(sample("chain", "inputs.json")).read_text())
    batch.write_text(json.dumps(line) + "\n")
    args = ("run", sample("chain"), "--inputs", str(batch), "--json")
    first = [o for o in json_lines(cli(*args).stdout) if "run_id" in o][0]
    again = [o for o in json_lines(cli(*args).stdout) if "run_id" in o][0]
    assert (first["attempt"], first["attempts"]) == (1, 1)
    assert again["attempt"] == again["attempts"] == 2
    assert again["retries"] == 0


@pytest.mark.parametrize("args, flag", [
    (["run", "pipeline.yml", "--concurrency", "0"], "--concurrency"),
    (["analyze", "--bogus"], "--bogus"),
    (["run"], "pipeline"),
    (["budget", "set"], "scope"),
])
def test_clicks_own_usage_errors_are_one_line_exit_2(args, flag):
    from conftest import genops_subprocess

    result = genops_subprocess(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and flag.lower() in lines[0].lower(), result.stderr
    assert "╭" not in result.stderr and "Traceback" not in result.stderr
