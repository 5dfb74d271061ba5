"""One money formatter for every surface, and unpriced as a state (never $0) in analyze, report and FOCUS."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from conftest import cli
from ledger_factory import at, make_run, record

from genops_cli.money import money_json, money_text, quantity, total_text, unit_price_text


def test_json_money_is_exact_plain_decimal_text():
    assert money_json(Decimal("0E-18")) == "0"
    assert money_json(Decimal("0.000450000000000000")) == "0.00045"
    assert money_json(Decimal("1E+3")) == "1000"
    assert money_json(Decimal("0.000000000000000001")) == "0.000000000000000001"
    assert money_json(Decimal("-0.0075")) == "-0.0075"
    assert money_json(None) is None


def test_display_money_has_one_precision_and_separators():
    assert money_text(Decimal("0.04002")) == "$0.040020"
    assert money_text(Decimal("1234.5")) == "$1,234.500000"
    assert money_text(Decimal("-0.00075")) == "-$0.000750"
    assert money_text(Decimal("0.0000004")) == "<$0.000001"  # dust is not shown as $0.000000
    assert money_text(Decimal(0)) == "$0.000000"
    assert money_text(None) == "unpriced"
    assert unit_price_text(Decimal("0.075")) == "$0.075" and unit_price_text(Decimal("2.5")) == "$2.50"
    assert quantity(6000) == "6,000" and quantity(Decimal("0.0018")) == "0.0018"
    assert total_text(Decimal("0.04002"), 3) == "$0.040020 + 3 unpriced calls"
    assert total_text(Decimal("0.04002"), 1) == "$0.040020 + 1 unpriced call"


def _seed() -> None:
    record(make_run("acme", at("2026-05-03"), [{"model": "gpt-4o-mini", "input": 6000, "output": 100},
                                               {"model": "gpt-9-ultra", "input": 10, "output": 5}]))


def test_unpriced_calls_are_null_not_zero_in_analyze():
    _seed()
    result = cli("analyze", "--from", "2026-05-01", "--to", "2026-05-31", "--by", "model", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    groups = {g["key"]: g for g in out["groups"]}
    assert (groups["gpt-9-ultra"]["cost"], groups["gpt-9-ultra"]["priced"]) == (None, False)
    assert groups["gpt-9-ultra"]["unpriced_calls"] == 1
    assert (groups["gpt-4o-mini"]["cost"], groups["gpt-4o-mini"]["priced"]) == ("0.00096", True)
    assert (out["total_cost"], out["priced"], out["unpriced_calls"]) == ("0.00096", False, 1)
    table = cli("analyze", "--from", "2026-05-01", "--to", "2026-05-31", "--by", "model")
    assert "unpriced" in table.stdout and "+ 1 unpriced call" in table.stdout and "6,000" in table.stdout


def test_unpriced_calls_are_listed_not_billed_in_report_and_flagged_in_focus():
    _seed()
    bill = json.loads(cli("report", "--tenant", "acme", "--period", "2026-05", "--format", "json").stdout)
    assert (bill["total_cost"], bill["priced"], bill["unpriced_call_count"]) == ("0.00096", False, 1)
    assert bill["unpriced_calls"] == [{"provider": "openai", "model": "gpt-9-ultra", "calls": 1}]
    assert all(line["model"] != "gpt-9-ultra" for line in bill["line_items"])
    table = cli("report", "--tenant", "acme", "--period", "2026-05")
    assert "$0.000960 + 1 unpriced call" in table.stdout and "6,000 tokens" in table.stdout
    focus = cli("report", "--tenant", "acme", "--period", "2026-05", "--format", "focus")
    rows = list(csv.DictReader(io.StringIO(focus.stdout)))
    flagged = [r for r in rows if r["x_Unpriced"] == "true"]
    assert [(r["x_Model"], r["BilledCost"], r["ListUnitPrice"], r["ConsumedQuantity"]) for r in flagged] == [
        ("gpt-9-ultra", "0", "", "15")]
    assert {r["x_Unpriced"] for r in rows if r["x_Model"] == "gpt-4o-mini"} == {"false"}
    assert "no price" in focus.stderr


def test_budget_limits_are_shown_as_set_never_rounded_to_cents(ledger_path):
    """A limit of $0.0233415 confirmed as "$0.02" (or "<$0.01") would hide what was set."""
    done = cli("budget", "set", "team:ml", "--daily", "0.0233415", "--monthly", "50")
    assert done.exit_code == 0, done.stderr
    assert "daily $0.0233415, monthly $50.00" in done.stderr
    for command in (("budget", "list"), ("budget", "status")):
        shown = cli(*command)
        assert "$0.0233415" in shown.stdout and "$50.00" in shown.stdout
