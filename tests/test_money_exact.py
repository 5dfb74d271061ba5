"""Exact to the token: no call is rounded before totals are summed, at awkward prices and at 10^6 calls."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli
from ledger_factory import at, make_run, record

from genops_cli.ledger.store import open_ledger
from genops_cli.models import TokenUsage
from genops_cli.pricing import compute_cost, get_price_book, reset_price_book

# A 7% resale markup turns list prices into prices with 11-13 decimals per token.
CONTRACTS = """
tenants:
  odd-corp:
    markup_pct: 7
"""
MTOK = Decimal(1_000_000)
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-3-haiku-20240307"), ("google", "gemini-1.5-flash")]


@pytest.fixture
def contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "pricing"
    directory.mkdir()
    (directory / "contracts.yml").write_text(CONTRACTS)
    monkeypatch.setenv("GENOPS_PRICING_DIR", str(directory))
    reset_price_book()


def _json(*args: str) -> dict:
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_thousand_cached_gemini_calls_sum_to_the_exact_amount():
    # 1000 calls of 1001 cached input + 1 output token: 1000 x (1001 x 0.01875 + 0.3) / 1M = 0.01906875 exactly
    # (at 10 places each call rounded to 0.0000190688 and the total drifted to 0.0190688).
    call = {"provider": "google", "model": "gemini-1.5-flash", "input": 1001, "cache_read": 1001, "output": 1}
    record(*(make_run("acme", at("2026-05-04"), [call] * 100) for _ in range(10)))
    bill = _json("report", "--tenant", "acme", "--period", "2026-05")
    assert bill["total_cost"] == "0.01906875"
    analysis = _json("analyze", "--from", "2026-05-01", "--to", "2026-05-31", "--by", "model")
    assert analysis["total_cost"] == "0.01906875"
    lines = {line["price_kind"]: line for line in bill["line_items"]}
    assert (lines["cached_input"]["tokens"], lines["cached_input"]["cost"]) == (1_001_000, "0.01876875")
    assert (lines["output"]["tokens"], lines["output"]["cost"]) == (1000, "0.0003")


def _shapes() -> list[tuple[int, str, str, int, int, int, int]]:
    """(shape id, provider, model, input, cache_read, cache_write, output): 3 models x 7 x 11 x 13 usage shapes."""
    shapes = []
    for m, (provider, model) in enumerate(MODELS):
        for a in range(7):
            for b in range(11):
                for c in range(13):
                    inp = 997 + 131 * a + 17 * b
                    cached = (b % 4) * 97
                    write = 13 * c if provider == "anthropic" else 0
                    shapes.append((len(shapes), provider, model, inp + cached + write, cached, write, 3 + 29 * c + m))
    return shapes


def _generate(n_calls: int, calls_per_run: int) -> dict[int, tuple[Decimal, int]]:
    """Write `n_calls` priced calls of odd-corp in SQL; each shape's cost comes from genops' own price book.
    Returns shape id -> (exact cost of one call, number of calls)."""
    book = get_price_book()
    shapes = _shapes()
    priced: dict[int, tuple[Decimal, str]] = {}
    for sid, provider, model, inp, cached, write, out in shapes:
        result = book.price(TokenUsage(inp, cached, write, out, source="reported"), model, provider,
                            at=at("2026-05-05"), tenant="odd-corp")
        assert result.priced and result.unit_prices is not None
        exact = compute_cost(TokenUsage(inp, cached, write, out), result.unit_prices)
        assert result.cost == exact  # stored as computed: no rounding per call
        priced[sid] = (exact, json.dumps(result.unit_prices.to_json(), sort_keys=True))
    n = len(shapes)
    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    with ledger.write() as tx:
        tx.execute("CREATE TEMP TABLE shapes (sid INTEGER, provider VARCHAR, model VARCHAR, inp BIGINT, cr BIGINT, "
                   "cw BIGINT, outp BIGINT, cost DECIMAL(38,18), prices VARCHAR)")
        tx.executemany("INSERT INTO shapes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(*s, priced[s[0]][0], priced[s[0]][1]) for s in shapes])
        tx.execute(f"""
            INSERT INTO calls (call_id, run_id, seq, span_kind, component_name, component_type, provider, model,
                               input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, usage_source,
                               unit_prices, cost, list_cost, priced, started_at, latency_ms, status)
            SELECT 'c' || i, 'r' || (i // {calls_per_run}), i % {calls_per_run}, 'component', 'llm', 'Generator',
                   s.provider, s.model, s.inp, s.cr, s.cw, s.outp, 'reported', s.prices, s.cost, s.cost, TRUE,
                   TIMESTAMP '2026-05-05 12:00:00', 10, 'ok'
            FROM range({n_calls}) t(i) JOIN shapes s ON s.sid = i % {n}""")
        tx.execute("""
            INSERT INTO runs (run_id, pipeline_name, pipeline_hash, started_at, status, customer_id, total_cost)
            SELECT run_id, 'bulk', 'h', TIMESTAMP '2026-05-05 12:00:00', 'ok', 'odd-corp', SUM(cost)
            FROM calls GROUP BY run_id""")
    counts = {sid: n_calls // n + (1 if sid < n_calls % n else 0) for sid in priced}
    return {sid: (priced[sid][0], counts[sid]) for sid in priced}


def test_a_million_calls_at_awkward_prices_total_exactly(contracts):
    n_calls = 1_000_000
    shapes = _generate(n_calls, calls_per_run=250)
    exact_total = sum((cost * count for cost, count in shapes.values()), Decimal(0))
    assert exact_total != exact_total.quantize(Decimal("1E-10"))  # the prices really are awkward
    analysis = _json("analyze", "--from", "2026-05-01", "--to", "2026-05-31", "--by", "model",
                     "--customer", "odd-corp")
    assert (analysis["calls"], Decimal(analysis["total_cost"])) == (n_calls, exact_total)
    # Invoice arithmetic: per model and price kind, (all tokens of that kind) x unit price, summed, is the same.
    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        rows = tx.query("""SELECT unit_prices, SUM(input_tokens - cache_read_tokens - cache_write_tokens),
                                  SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(output_tokens)
                           FROM calls GROUP BY unit_prices""")
    invoice = Decimal(0)
    for prices_json, uncached, cached, written, out in rows:
        prices = json.loads(prices_json)
        unit = {k: Decimal(v) for k, v in prices.items()}
        invoice += (uncached * unit["input_mtok"] + cached * unit.get("cache_read_mtok", unit["input_mtok"])
                    + written * unit.get("cache_write_mtok", unit["input_mtok"]) + out * unit["output_mtok"]) / MTOK
    assert invoice == exact_total
