"""`genops report`: a tenant's bill from the ledger, exact to the last digit, with real quantities and unit
prices, contracts shown as list vs billed, price changes as separate lines, and a cron mode."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, json_lines, ledger_rows, sample
from ledger_factory import at, make_run, record

from genops_cli.analysis import billing
from genops_cli.ledger.store import open_ledger
from genops_cli.pricing import reset_price_book

CONTRACTS = """
tenants:
  odd-corp:
    description: 7% resale markup (prices with more than 10 decimals per token)
    valid_from: 2026-01-01
    markup_pct: 7
  switch-corp:
    description: contracted gpt-4o-mini rate that changes mid-month
    valid_from: 2026-01-01
    rates:
      - provider: openai
        model: gpt-4o-mini
        valid_until: 2026-05-15
        prices: {input_mtok: "0.10", output_mtok: "0.40", cache_read_mtok: "0.05"}
      - provider: openai
        model: gpt-4o-mini
        valid_from: 2026-05-15
        prices: {input_mtok: "0.12", output_mtok: "0.48", cache_read_mtok: "0.06"}
"""


@pytest.fixture
def contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "pricing"
    directory.mkdir()
    (directory / "contracts.yml").write_text(CONTRACTS)
    monkeypatch.setenv("GENOPS_PRICING_DIR", str(directory))
    reset_price_book()
    return directory


def _bill(tenant: str, period: str = "2026-05") -> billing.TenantBill:
    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        return billing.tenant_bill(tx, tenant, billing.parse_billing_period(period))


def _report_json(*args: str) -> dict:
    result = cli("report", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_line_items_have_real_quantities_and_unit_prices_and_sum_to_total():
    record(make_run("acme", at("2026-05-03"), [
        {"model": "gpt-4o-mini", "input": 1500, "cache_read": 500, "output": 300},
        {"model": "gpt-4o", "input": 2000, "output": 100}]))
    out = _report_json("--tenant", "acme", "--period", "2026-05")
    assert out["tenant"] == "acme" and out["currency"] == "USD" and out["runs"] == 1
    assert out["period"] == {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z", "label": "2026-05"}
    lines = {(li["model"], li["price_kind"]): li for li in out["line_items"]}
    mini_in = lines[("gpt-4o-mini", "input")]
    assert (mini_in["tokens"], mini_in["quantity"], mini_in["unit"]) == (1000, "0.001", "1M tokens")  # 1500 - 500
    assert (mini_in["unit_price"], mini_in["cost"]) == ("0.15", "0.00015")
    cached = lines[("gpt-4o-mini", "cached_input")]
    assert (cached["tokens"], cached["unit_price"], cached["cost"]) == (500, "0.075", "0.0000375")
    assert lines[("gpt-4o-mini", "output")]["cost"] == "0.00018"
    assert lines[("gpt-4o", "input")]["cost"] == "0.005"
    assert lines[("gpt-4o", "output")]["cost"] == "0.001"
    assert all(li["pipeline"] == "rag" and li["provider"] == "openai" for li in out["line_items"])
    total = Decimal(out["total_cost"])
    assert total == Decimal("0.0063675")
    assert sum(Decimal(li["cost"]) for li in out["line_items"]) == total
    [(stored,)] = ledger_rows("SELECT SUM(total_cost) FROM runs")
    assert total == stored
    for key in ("cost_by_provider", "cost_by_day", "peak_day", "previous_period_cost", "trend", "budget"):
        assert key in out
    assert out["cost_by_provider"] == {"openai": "0.0063675"}
    assert out["peak_day"] == {"date": "2026-05-03", "cost": "0.0063675"}
    assert len(out["cost_by_day"]) == 31


def test_awkward_prices_are_stored_exactly_and_lines_are_quantity_times_unit_price(contracts):
    # 7% markup: cached input 0.08025 USD/1M = 8.025e-8 per token, 11 decimals: stored exactly, never rounded.
    runs = [make_run("odd-corp", at("2026-05-0" + str(d)), [
        {"model": "gpt-4o-mini", "input": 1000 + i, "cache_read": 3 + 2 * i, "output": 7 + i}])
        for i, d in enumerate((2, 2, 3, 4, 4, 5))]
    record(*runs)
    bill = _bill("odd-corp")
    exact = sum((c[3] for r in runs for c in billing.cost_components(
        r.calls[0].usage.input_tokens, r.calls[0].usage.cache_read_tokens, 0, r.calls[0].usage.output_tokens,
        None, r.calls[0].unit_prices)), Decimal(0))
    stored = sum((r.total_cost for r in runs), Decimal(0))
    assert exact == stored  # no per-call rounding...
    assert bill.total_cost == stored  # ...and the bill is the stored money
    assert sum((line.cost for line in bill.lines), Decimal(0)) == stored
    assert sum((v for _, v in bill.cost_by_day()), Decimal(0)) == stored
    assert not [line for line in bill.lines if line.kind == "adjustment"]
    assert all(line.cost == line.quantity * line.unit_price for line in bill.lines)  # as a provider's invoice
    cached = next(line for line in bill.lines if line.kind == "cached_input")
    assert cached.unit_price == Decimal("0.08025") and cached.list_unit_price == Decimal("0.075")


def test_each_call_splits_exactly_into_its_components():
    prices = billing.UnitPrices(input_mtok=Decimal("0.1605"), cache_read_mtok=Decimal("0.08025"),
                                output_mtok=Decimal("0.642"))
    parts = billing.cost_components(1003, 9, 0, 11, None, prices)
    from genops_cli.models import TokenUsage, quantize_money
    from genops_cli.pricing.book import compute_cost

    exact = compute_cost(TokenUsage(input_tokens=1003, cache_read_tokens=9, output_tokens=11), prices)
    assert sum((p[3] for p in parts), Decimal(0)) == exact
    pieces = billing.allocate(quantize_money(exact), [p[3] for p in parts])
    assert pieces is not None and sum(pieces, Decimal(0)) == quantize_money(exact)
    assert billing.allocate(Decimal("1"), [p[3] for p in parts]) is None  # not explainable by the prices


def test_price_change_within_the_period_gives_two_lines(contracts):
    record(make_run("switch-corp", at("2026-05-10"), [{"model": "gpt-4o-mini", "input": 1000, "output": 100}]),
           make_run("switch-corp", at("2026-05-20"), [{"model": "gpt-4o-mini", "input": 1000, "output": 100}]))
    out = _report_json("--tenant", "switch-corp", "--period", "2026-05")
    inputs = [li for li in out["line_items"] if li["price_kind"] == "input"]
    assert [(li["unit_price"], li["list_unit_price"], li["cost"]) for li in inputs] == [
        ("0.1", "0.15", "0.0001"), ("0.12", "0.15", "0.00012")]
    # Contracted rates show as list vs billed.
    assert Decimal(out["list_cost"]) == 2 * (Decimal("0.00015") + Decimal("0.00006"))
    assert Decimal(out["total_cost"]) == Decimal("0.0001") + Decimal("0.00004") + Decimal("0.00012") + \
        Decimal("0.000048")
    assert Decimal(out["billed_minus_list"]) == Decimal(out["total_cost"]) - Decimal(out["list_cost"])
    assert out["contract"]["id"] == "switch-corp"


def test_bill_excludes_simulated_runs_other_tenants_and_other_months_and_trends():
    mini = [{"model": "gpt-4o-mini", "input": 1000, "output": 1000}]  # 0.00075 each
    record(make_run("acme", at("2026-05-01", 0), mini), make_run("acme", at("2026-05-31", 23), mini),
           make_run("acme", at("2026-05-10"), mini, simulated=True), make_run("globex", at("2026-05-10"), mini),
           make_run("acme", at("2026-06-01", 0), mini), make_run("acme", at("2026-04-15"), mini + mini + mini))
    out = _report_json("--tenant", "acme", "--period", "2026-05")
    assert (out["runs"], out["total_cost"]) == (2, "0.0015")
    assert out["previous_period_cost"] == "0.00225"
    assert out["trend"] == {"direction": "down", "change": "-0.00075", "change_pct": "-33.3"}
    days = {d["date"]: d["cost"] for d in out["cost_by_day"]}
    assert days["2026-05-01"] == days["2026-05-31"] == "0.00075" and days["2026-05-10"] == "0"
    ranged = _report_json("--tenant", "acme", "--from", "2026-05-31", "--to", "2026-06-01")
    assert (ranged["runs"], ranged["total_cost"]) == (2, "0.0015")
    assert ranged["previous_period"]["start"] == "2026-05-29T00:00:00Z"
    # No earlier usage: no invented "up from $0" trend.
    assert (ranged["previous_period_cost"], ranged["trend"]["direction"]) == (None, "none")


def test_budget_of_the_tenant_is_reported(tmp_path):
    (tmp_path / ".genops.yml").write_text('budgets:\n  scopes:\n    "customer:acme": {monthly: 0.01}\n')
    record(make_run("acme", at("2026-05-05"), [{"model": "gpt-4o-mini", "input": 10000, "output": 1000}]))
    out = _report_json("--tenant", "acme", "--period", "2026-05")
    assert out["budget"] == {"scope": "customer:acme", "period": "monthly", "limit": "0.01",
                             "policy": "advisory", "source": "config", "spent": "0.0021",
                             "remaining": "0.0079", "used_pct": "21.0"}


def test_csv_and_table_formats():
    record(make_run("acme", at("2026-05-05"), [{"model": "gpt-4o-mini", "input": 1000, "output": 10}]))
    result = cli("report", "--tenant", "acme", "--period", "2026-05", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["price_kind"], r["tokens"], r["unit_price"], r["cost"]) for r in rows] == [
        ("input", "1000", "0.15", "0.00015"), ("output", "10", "0.6", "0.000006")]
    table = cli("report", "--tenant", "acme", "--period", "2026-05")
    assert table.exit_code == 0
    assert "gpt-4o-mini input tokens (rag)" in table.stdout and "$0.000156" in table.stdout


def test_all_tenants_writes_one_file_per_tenant(tmp_path):
    mini = [{"model": "gpt-4o-mini", "input": 1000, "output": 0}]
    record(make_run("acme", at("2026-05-05"), mini), make_run("globex/eu", at("2026-05-06"), mini),
           make_run("initech", at("2026-04-06"), mini))
    result = cli("report", "--all-tenants", "--period", "2026-05", "--out-dir", str(tmp_path / "bills"))
    assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "bills").iterdir())
    # a tenant id that is not a safe file name gets a readable slug plus a short hash of the id
    globex = "globex_eu-" + hashlib.sha256(b"globex/eu").hexdigest()[:8]
    assert files == ["acme-2026-05.json", f"{globex}-2026-05.json"]
    data = json.loads((tmp_path / "bills" / f"{globex}-2026-05.json").read_text())
    assert (data["tenant"], data["total_cost"]) == ("globex/eu", "0.00015")
    cli("report", "--all-tenants", "--period", "2026-05", "--out-dir", str(tmp_path / "f"), "--format", "focus")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["acme-2026-05.focus.csv",
                                                                  f"{globex}-2026-05.focus.csv"]


@pytest.mark.parametrize("args, fragment", [
    (["--tenant", "acme", "--period", "2026-13"], "--period '2026-13'"),
    (["--tenant", "acme", "--period", "2026-05", "--from", "2026-05-01"], "--period cannot be combined"),
    (["--tenant", "acme", "--from", "2026-05-01"], "--from and --to go together"),
    (["--tenant", "acme", "--format", "pdf"], "--format 'pdf'"),
    (["--all-tenants", "--period", "2026-05"], "--out-dir"),
    (["--tenant", "acme", "--all-tenants", "--out-dir", "x"], "either --tenant"),
    (["--tenant", "acme", "--format", "focus", "--focus-version", "2.0"], "--focus-version '2.0'"),
])
def test_bad_flags_exit_2_with_one_line(args, fragment):
    result = cli("report", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_edited_call_cost_shows_as_an_explicit_adjustment_line():
    run = make_run("acme", at("2026-05-05"), [{"model": "gpt-4o-mini", "input": 1000, "output": 0}])
    record(run)
    import duckdb

    conn = duckdb.connect(os.environ["GENOPS_LEDGER"])
    conn.execute("UPDATE calls SET cost = 0.0002 WHERE run_id = ?", [run.run_id])
    conn.close()
    bill = _bill("acme")
    adjustment = [line for line in bill.lines if line.kind == "adjustment"]
    assert [a.cost for a in adjustment] == [Decimal("0.00005")]
    assert sum((line.cost for line in bill.lines), Decimal(0)) == bill.total_cost == Decimal("0.0002")


def test_report_after_real_genops_runs(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    for _ in range(2):
        result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--customer", "acme-corp",
                     "--json")
        assert result.exit_code == 0, result.stderr
    cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--customer", "acme-corp", "--simulate")
    [run] = json_lines(result.stdout)
    period = run["run_id"] and ledger_rows("SELECT MIN(started_at) FROM runs")[0][0].strftime("%Y-%m")
    out = _report_json("--tenant", "acme-corp", "--period", period)
    assert out["runs"] == 2
    assert Decimal(out["total_cost"]) == 2 * Decimal("0.000450")
    assert {(li["price_kind"], li["tokens"], li["cost"]) for li in out["line_items"]} == {
        ("input", 2000, "0.0003"), ("output", 1000, "0.0006")}
