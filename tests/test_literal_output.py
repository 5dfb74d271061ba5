"""User strings (tenant, team, scope, pipeline, component names) are printed literally everywhere: no rich markup
and no emoji codes taken from them, in tables, trees and messages."""

from __future__ import annotations

import pytest
from conftest import cli, sample

TEAM = "[bold]ops[/bold]:smile:"
CUSTOMER = "acme:a:[red]x"


@pytest.fixture
def recorded(openai_server):
    result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--team", TEAM,
                 "--customer", CUSTOMER)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("args, expected", [
    (["analyze", "--by", "team"], TEAM),
    (["analyze", "--by", "customer"], CUSTOMER),
    (["runs"], TEAM),
    (["report", "--tenant", CUSTOMER], CUSTOMER),
])
def test_tables_print_user_strings_as_typed(recorded, args, expected):
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert expected in result.stdout.replace("\n", "")


def test_budget_scopes_print_as_typed(recorded):
    scope = "team:a:b"
    assert cli("budget", "set", scope, "--daily", "5").exit_code == 0
    listed = cli("budget", "list")
    assert scope in listed.stdout and "🅰" not in listed.stdout
    status = cli("budget", "status")
    assert scope in status.stdout


def test_run_tree_prints_names_as_typed(recorded):
    import json

    run_id = json.loads(cli("runs", "--json").stdout)
    run_id = (run_id["runs"] if isinstance(run_id, dict) else run_id)[0]["run_id"]
    shown = cli("runs", "show", run_id[:8])
    assert shown.exit_code == 0, shown.stderr
    assert TEAM in shown.stdout and "\\[" not in shown.stdout
