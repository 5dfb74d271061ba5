"""Price book: genai-prices base, YAML overlays, tenant contracts, and the `genops pricing` sub-app."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from typer.testing import CliRunner

from genops_cli.cli.pricing_cmd import app as pricing_app
from genops_cli.errors import ConfigError
from genops_cli.models import CallRecord, TokenUsage, quantize_money
from genops_cli.pricing import (
    ENV_PRICING_DIR,
    PriceBook,
    bundled_overlay_dir,
    compute_cost,
    get_price_book,
    reset_price_book,
)

UTC = timezone.utc
AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
GP = f"genai-prices@{genai_prices.__version__}"


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(use_env=False)


@pytest.fixture(autouse=True)
def _no_user_overlays(monkeypatch):
    monkeypatch.delenv(ENV_PRICING_DIR, raising=False)
    reset_price_book()
    yield
    reset_price_book()


def usage(inp=0, out=0, read=0, write=0) -> TokenUsage:
    return TokenUsage(input_tokens=inp, output_tokens=out, cache_read_tokens=read, cache_write_tokens=write,
                      source="reported")


def gp_total(model, provider, u: TokenUsage, at=AT, context=None) -> Decimal:
    return calc_price(
        Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_tokens,
              cache_write_tokens=u.cache_write_tokens),
        model_ref=model, provider_id=provider, genai_request_timestamp=at, price_context=context,
    ).total_price


def write_overlay(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "overlays"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


# ---------------------------------------------------------------------------------------------- list prices


def test_gpt_4o_mini_cost_is_exact(book):
    priced = book.price(usage(1000, 500), "gpt-4o-mini", "openai", AT)
    assert priced.priced is True
    assert priced.cost == Decimal("0.000450")
    assert priced.cost == quantize_money(Decimal("0.00045"))
    assert priced.cost.as_tuple().exponent == -18  # at the ledger precision (DECIMAL(38,18))
    assert priced.list_cost == priced.cost == priced.contracted_cost
    assert priced.unit_prices.input_mtok == Decimal("0.15") and priced.unit_prices.output_mtok == Decimal("0.6")
    assert priced.source == "genai-prices"
    assert priced.snapshot_id == GP
    assert priced.model == "gpt-4o-mini" and priced.provider == "openai"


def test_cached_tokens_priced_at_cache_rate_and_never_twice(book):
    # 1000 input tokens include 400 cache reads: 600 at 2.50, 400 at 1.25, 100 output at 10.00 per 1M.
    priced = book.price(usage(1000, 100, read=400), "gpt-4o", "openai", AT)
    expected = (600 * Decimal("2.50") + 400 * Decimal("1.25") + 100 * Decimal("10")) / 1_000_000
    assert priced.cost == quantize_money(expected) == Decimal("0.003")
    double_counted = (1000 * Decimal("2.50") + 400 * Decimal("1.25") + 100 * Decimal("10")) / 1_000_000
    assert priced.cost != quantize_money(double_counted)
    assert priced.unit_prices.cache_read_mtok == Decimal("1.25")


def test_claude_3_haiku_cache_read_and_write(book):
    u = usage(10_000, 500, read=3000, write=2000)
    priced = book.price(u, "claude-3-haiku-20240307", "anthropic", AT)
    expected = (5000 * Decimal("0.25") + 3000 * Decimal("0.03") + 2000 * Decimal("0.30")
                + 500 * Decimal("1.25")) / 1_000_000
    assert priced.cost == expected == Decimal("0.002565")
    assert priced.model == "claude-3-haiku"
    assert priced.cost == quantize_money(gp_total("claude-3-haiku-20240307", "anthropic", u))


def test_cache_price_falls_back_to_input_price(book):
    # text-embedding-3-small has no cache price: cached tokens are plain input tokens.
    priced = book.price(usage(1000, 0, read=500), "text-embedding-3-small", "openai", AT)
    assert priced.cost == Decimal("0.00002")


@pytest.mark.parametrize(("dated", "canonical", "provider"), [
    ("gpt-4o-2024-08-06", "gpt-4o", "openai"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "openai"),
    ("claude-3-haiku-20240307", "claude-3-haiku", "anthropic"),
    ("gpt-4.1-2025-04-14", "gpt-4.1", "openai"),
    ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest", "anthropic"),
])
def test_dated_model_ids_match_through_genai_prices(book, dated, canonical, provider):
    rp = book.resolve(dated, provider, AT)
    assert rp is not None and rp.model == canonical and rp.source == "genai-prices"
    assert rp.unit_prices == book.resolve(canonical, provider, AT).unit_prices


def test_reference_list_prices(book):
    expected = {
        ("gpt-4o", "openai"): ("2.5", "10", "1.25"),
        ("gpt-4o-mini", "openai"): ("0.15", "0.6", "0.075"),
        ("gpt-4.1", "openai"): ("2", "8", None),
        ("gpt-4.1-mini", "openai"): ("0.4", "1.6", None),
        ("claude-3-haiku", "anthropic"): ("0.25", "1.25", "0.03"),
        ("claude-sonnet-4", "anthropic"): ("3", "15", "0.3"),
        ("command-r", "cohere"): ("0.15", "0.6", None),
    }
    for (model, provider), (inp, out, cached) in expected.items():
        prices = book.resolve(model, provider, AT).unit_prices
        assert prices.input_mtok == Decimal(inp) and prices.output_mtok == Decimal(out), model
        if cached is not None:
            assert prices.cache_read_mtok == Decimal(cached), model
    assert book.resolve("text-embedding-3-small", "openai", AT).unit_prices.input_mtok == Decimal("0.02")
    assert book.resolve("claude-sonnet-4", "anthropic", AT).unit_prices.cache_write_mtok == Decimal("3.75")


# ---------------------------------------------------------------------------------------------- agreement


AGREEMENT_CASES = [
    ("gpt-4o-mini", "openai", usage(1000, 500), AT),
    ("gpt-4o", "openai", usage(1000, 100, read=400), AT),
    ("gpt-4o-2024-08-06", "openai", usage(12_345, 678, read=1024), AT),
    ("gpt-4.1-mini", "openai", usage(50_000, 2_000, read=30_000), AT),
    ("claude-3-haiku-20240307", "anthropic", usage(10_000, 500, read=3000, write=2000), AT),
    ("claude-sonnet-4", "anthropic", usage(9_000, 1_500, read=4_000, write=1_000), AT),
    ("claude-3-5-haiku-20241022", "anthropic", usage(2_000, 300, write=1_500), AT),
    ("command-r", "cohere", usage(777, 333), AT),
    ("text-embedding-3-small", "openai", usage(4_096), AT),
    ("o3", "openai", usage(5_000, 7_000, read=1_000), datetime(2025, 5, 1, tzinfo=UTC)),
    ("o3", "openai", usage(5_000, 7_000, read=1_000), datetime(2025, 7, 1, tzinfo=UTC)),
    # tiered prices (cliff above 200k input tokens)
    ("claude-sonnet-4-5", "anthropic", usage(250_000, 4_000, read=10_000, write=5_000), AT),
    ("claude-sonnet-4-5", "anthropic", usage(150_000, 4_000, read=10_000), AT),
    # per-request price (requests_kcount -> per_call)
    ("sonar-pro", "perplexity", usage(1000, 500), AT),
    # time-of-day prices (DeepSeek off-peak)
    ("deepseek-chat", "deepseek", usage(3000, 900, read=1000), datetime(2025, 9, 1, 2, 0, tzinfo=UTC)),
    ("deepseek-chat", "deepseek", usage(3000, 900, read=1000), datetime(2025, 9, 1, 20, 0, tzinfo=UTC)),
    # provider fallback (azure -> openai prices)
    ("gpt-4o-mini", "azure", usage(1000, 500), AT),
]


@pytest.mark.parametrize(("model", "provider", "u", "at"), AGREEMENT_CASES)
def test_agrees_exactly_with_genai_prices(book, model, provider, u, at):
    expected = gp_total(model, provider, u, at)
    rp = book.resolve(model, provider, at)
    list_prices, _, _ = rp.effective_prices(u.input_tokens)
    assert compute_cost(u, list_prices) == expected  # exact, before rounding
    priced = book.price(u, model, provider, at)
    assert priced.list_cost == priced.cost == quantize_money(expected)


def test_tiers_are_applied_and_recorded(book):
    rp = book.resolve("claude-sonnet-4-5", "anthropic", AT)
    assert {t.price_key for t in rp.tiers} >= {"input_mtok", "output_mtok"}
    small = book.price(usage(1000, 100), "claude-sonnet-4-5", "anthropic", AT)
    large = book.price(usage(250_000, 100), "claude-sonnet-4-5", "anthropic", AT)
    assert small.unit_prices.input_mtok == Decimal("3")
    assert large.unit_prices.input_mtok == Decimal("6")  # the unit prices stored are the ones used
    assert compute_cost(usage(250_000, 100), large.unit_prices) == large.cost


def test_dated_price_change_uses_the_call_timestamp(book):
    # genai-prices has an o3 price cut on 2025-06-10 (10/40 -> 2/8 per 1M).
    before = book.resolve("o3", "openai", datetime(2025, 6, 9, 23, 59, tzinfo=UTC))
    after = book.resolve("o3", "openai", datetime(2025, 6, 10, 0, 1, tzinfo=UTC))
    assert (before.unit_prices.input_mtok, before.unit_prices.output_mtok) == (Decimal("10"), Decimal("40"))
    assert (after.unit_prices.input_mtok, after.unit_prices.output_mtok) == (Decimal("2"), Decimal("8"))
    old = book.price(usage(1000, 1000), "o3", "openai", datetime(2025, 1, 15, tzinfo=UTC))
    assert old.cost == Decimal("0.05")
    new = book.price(usage(1000, 1000), "o3", "openai", datetime(2025, 8, 15, tzinfo=UTC))
    assert new.cost == Decimal("0.01")


# ---------------------------------------------------------------------------------------------- unknown


def test_unknown_model_is_flagged_never_guessed(book):
    priced = book.price(usage(1000, 500), "gpt-nonexistent-9", "openai", AT)
    assert priced.priced is False
    assert priced.cost == Decimal(0) and priced.unit_prices is None and priced.snapshot_id is None
    assert "gpt-nonexistent-9" in priced.reason
    assert book.resolve("gpt-nonexistent-9", "openai", AT) is None
    assert not book.is_known("gpt-nonexistent-9", "openai")
    assert book.is_known("gpt-4o-mini", "openai")
    assert book.price(usage(10, 10), "my-model", "unknown-provider", AT).priced is False
    assert book.price(usage(10, 10), None, "openai", AT).priced is False


def test_ollama_cloud_models_are_not_priced_as_local(book):
    assert book.resolve("gpt-oss:120b-cloud", "ollama", AT) is None
    assert book.resolve("some-unlisted-model", "ollama", AT) is None


# ---------------------------------------------------------------------------------------------- overlays


def test_local_model_is_zero_and_priced(book):
    priced = book.price(usage(5000, 2000), "llama3.1:8b", "ollama", AT)
    assert priced.priced is True and priced.cost == Decimal(0)
    assert priced.unit_prices.per_call == Decimal(0)
    assert priced.source == "overlay:local.yml"
    assert priced.snapshot_id.startswith("overlay:local.yml@") and len(priced.snapshot_id.split("@")[1]) == 12
    assert priced.model == "llama3.1:8b"
    hf = book.price(usage(100, 10), "google/flan-t5-large", "huggingface-local", AT)
    assert hf.priced is True and hf.cost == Decimal(0)


def test_self_hosted_per_second(book):
    priced = book.price(usage(1000, 1000), "llama-3-70b-vllm", "self-hosted", AT, latency_ms=2500)
    assert priced.priced is True
    assert priced.cost == Decimal("0.003")  # 0.0012 USD/s * 2.5 s
    assert priced.unit_prices.per_second == Decimal("0.0012")
    missing_latency = book.price(usage(1000, 1000), "llama-3-70b-vllm", "self-hosted", AT)
    assert missing_latency.priced is False and "latency" in missing_latency.reason


def test_batch_variant_is_half_price(book):
    standard = book.price(usage(1000, 500), "gpt-4o-mini", "openai", AT)
    for model, provider in [("gpt-4o-mini@batch", "openai"), ("gpt-4o-mini", "openai-batch"),
                            ("gpt-4o-mini-2024-07-18@batch", "openai")]:
        batch = book.price(usage(1000, 500), model, provider, AT)
        assert batch.priced and batch.cost == standard.cost / 2 == Decimal("0.000225"), (model, provider)
        assert batch.model == "gpt-4o-mini@batch" and batch.source == "overlay:batch.yml"
    # From 2026-10-14 genai-prices' own batch table applies, with the same result.
    late = datetime(2026, 11, 1, tzinfo=UTC)
    batch = book.price(usage(1000, 500), "gpt-4o-mini@batch", "openai", late)
    assert batch.source == "genai-prices" and batch.cost == Decimal("0.000225")
    assert batch.cost == quantize_money(gp_total("gpt-4o-mini", "openai", usage(1000, 500), late,
                                                 {"processing": "batch"}))
    for model in ("gpt-4o", "gpt-4.1", "gpt-4.1-mini"):
        std, bat = book.resolve(model, "openai", AT), book.resolve(model + "@batch", "openai", AT)
        assert bat.unit_prices.input_mtok * 2 == std.unit_prices.input_mtok
        assert bat.unit_prices.output_mtok * 2 == std.unit_prices.output_mtok


def test_anthropic_batch_from_overlay_halves_every_token_price(book):
    u = usage(10_000, 500, read=3000, write=2000)
    standard = book.price(u, "claude-3-haiku-20240307", "anthropic", AT)
    batch = book.price(u, "claude-3-haiku-20240307@batch", "anthropic", AT)
    assert batch.cost * 2 == standard.cost


def test_batch_without_a_batch_price_is_unpriced_not_standard(book):
    # genai-prices has a batch price for gpt-4o-2024-05-13 only from 2026-10-14; no overlay covers earlier calls.
    assert book.resolve("gpt-4o-2024-05-13@batch", "openai", AT) is None
    assert book.price(usage(10, 10), "gpt-4o-2024-05-13@batch", "openai", AT).priced is False
    assert book.resolve("gpt-4o-2024-05-13@batch", "openai", datetime(2026, 11, 1, tzinfo=UTC)) is not None


def test_retired_model_priced_at_historical_date(book):
    priced = book.price(usage(1000, 1000), "claude-instant-1.2", "anthropic", datetime(2024, 3, 1, tzinfo=UTC))
    assert priced.priced and priced.cost == Decimal("0.0032")  # 0.80 + 2.40 per 1M
    assert priced.source == "overlay:retired.yml"
    after = book.price(usage(1000, 1000), "claude-instant-1.2", "anthropic", datetime(2025, 1, 1, tzinfo=UTC))
    assert after.priced is False
    babbage = book.price(usage(1000, 1000), "text-babbage-001", "openai", datetime(2023, 6, 1, tzinfo=UTC))
    assert babbage.cost == Decimal("0.001")
    # still known to genai-prices, so not overlaid
    assert book.resolve("claude-2.1", "anthropic", AT).source == "genai-prices"


def test_limits_overlay(book):
    cases = {
        ("gpt-4o", "openai"): 16384,
        ("gpt-4o-2024-08-06", "openai"): 16384,
        ("gpt-4o-mini", "openai"): 16384,
        ("gpt-4.1-mini-2025-04-14", "openai"): 32768,
        ("gpt-4.1", "openai"): 32768,
        ("claude-3-haiku-20240307", "anthropic"): 4096,
        ("claude-sonnet-4-20250514", "anthropic"): 64000,
        ("claude-3-5-haiku-20241022", "anthropic"): 8192,
        ("gpt-4o-mini@batch", "openai"): 16384,
    }
    for (model, provider), max_out in cases.items():
        assert book.resolve(model, provider, AT).max_output_tokens == max_out, model
    assert book.resolve("gpt-4o", "openai", AT).context_window == 128000
    assert book.resolve("command-r", "cohere", AT).max_output_tokens is None


# ---------------------------------------------------------------------------------------------- tenants


def test_tenant_discount_and_markup_list_vs_billed(book):
    # example-tenant: 10% off OpenAI list prices, then a 20% resale markup.
    priced = book.price(usage(1000, 500), "gpt-4o", "openai", AT, tenant="example-tenant")
    assert priced.list_cost == Decimal("0.0075")
    assert priced.contracted_cost == Decimal("0.00675")
    assert priced.cost == Decimal("0.0081")
    assert priced.list_prices.input_mtok == Decimal("2.5")
    assert priced.unit_prices.input_mtok == Decimal("2.7")  # 2.5 * 0.9 * 1.2
    assert "+contract:contracts.yml@" in priced.snapshot_id
    rp = book.resolve("gpt-4o", "openai", AT, tenant="example-tenant")
    assert rp.contract == "contracts.yml:example-tenant" and rp.tenant == "example-tenant"


def test_tenant_explicit_contracted_rate(book):
    priced = book.price(usage(1000, 500), "gpt-4o-mini-2024-07-18", "openai", AT, tenant="example-tenant")
    assert priced.list_cost == Decimal("0.00045")
    assert priced.contracted_cost == Decimal("0.00036")  # 0.12 / 0.48 contracted
    assert priced.cost == Decimal("0.000432")  # + 20% markup
    assert priced.source == "overlay:contracts.yml"
    # the explicit rate is for the standard variant; batch gets the discount rule
    batch = book.price(usage(1000, 500), "gpt-4o-mini@batch", "openai", AT, tenant="example-tenant")
    assert batch.list_cost == Decimal("0.000225")
    assert batch.cost == quantize_money(Decimal("0.000225") * Decimal("0.9") * Decimal("1.2"))


def test_tenant_without_matching_rule_gets_markup_only_and_unknown_tenant_list(book):
    u = usage(1000, 500)
    haiku = book.price(u, "claude-3-haiku", "anthropic", AT, tenant="example-tenant")
    assert haiku.contracted_cost == haiku.list_cost and haiku.cost == haiku.list_cost * Decimal("1.2")
    other = book.price(u, "gpt-4o", "openai", AT, tenant="someone-else")
    assert other.cost == other.list_cost and other.snapshot_id == GP
    assert book.resolve("gpt-4o", "openai", AT, tenant="someone-else").contract is None
    before = book.price(u, "gpt-4o", "openai", datetime(2023, 6, 1, tzinfo=UTC), tenant="example-tenant")
    assert before.cost == before.list_cost  # the contract starts 2024-01-01


# ---------------------------------------------------------------------------------------------- caching


def test_resolve_is_cached_per_price_period(book):
    a = book.resolve("gpt-4o-mini", "openai", AT)
    b = book.resolve("gpt-4o-mini", "openai", AT)
    c = book.resolve("gpt-4o-mini", "openai", datetime(2025, 9, 2, tzinfo=UTC))
    assert a is b is c
    assert book.resolve("o3", "openai", datetime(2025, 1, 1, tzinfo=UTC)) is not book.resolve(
        "o3", "openai", datetime(2025, 8, 1, tzinfo=UTC))
    assert book.resolve("gpt-4o-mini", "openai", AT, tenant="example-tenant") is not a


def test_get_price_book_is_one_per_process():
    first = get_price_book()
    assert get_price_book() is first
    reset_price_book()
    assert get_price_book() is not first


def test_naive_timestamps_are_utc(book):
    naive = datetime(2025, 6, 10, 0, 30)
    assert book.resolve("o3", "openai", naive).unit_prices.input_mtok == Decimal("2")


# ---------------------------------------------------------------------------------------------- user overlays


def test_user_overlay_dir_overrides_bundled(tmp_path):
    d = write_overlay(tmp_path, "mine.yml", """
models:
  - id: gpt-4o-mini
    provider: openai
    match: [{equals: gpt-4o-mini}, {equals: gpt-4o-mini-2024-07-18}]
    prices: {input_mtok: "0.10", output_mtok: "0.40"}
    valid_from: 2025-01-01
""")
    (d / "contracts.yml").write_text(
        "tenants:\n  acme-corp:\n    rates:\n      - {provider: openai, discount_pct: 50}\n")
    book = PriceBook(extra_dirs=[d], use_env=False)
    priced = book.price(usage(1000, 500), "gpt-4o-mini", "openai", AT)
    assert priced.cost == Decimal("0.0003") and priced.source == "overlay:mine.yml"
    # before valid_from, genai-prices applies: history is not repriced
    assert book.price(usage(1000, 500), "gpt-4o-mini", "openai", datetime(2024, 6, 1, tzinfo=UTC)).cost == Decimal(
        "0.00045")
    # the user's contracts.yml replaces the bundled one
    assert book.resolve("gpt-4o", "openai", AT, tenant="example-tenant").contract is None
    acme = book.price(usage(1000, 500), "gpt-4o", "openai", AT, tenant="acme-corp")
    assert acme.cost == acme.list_cost / 2


def test_env_pricing_dir(tmp_path, monkeypatch):
    d = write_overlay(tmp_path, "team.yml", """
models:
  - id: internal-llm
    provider: self-hosted
    prices: {per_call: "0.002"}
""")
    monkeypatch.setenv(ENV_PRICING_DIR, str(d))
    reset_price_book()
    priced = get_price_book().price(usage(1, 1), "internal-llm", "self-hosted", AT)
    assert priced.priced and priced.cost == Decimal("0.002")
    monkeypatch.setenv(ENV_PRICING_DIR, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=ENV_PRICING_DIR):
        PriceBook()


@pytest.mark.parametrize(("text", "needles"), [
    ("models:\n  - id: bad-model\n    provider: openai\n    prices: {input_mtok: abc}\n",
     ["models[0]", "'bad-model'", "prices.input_mtok", "non-negative number"]),
    ("models:\n  - id: bad-model\n    provider: openai\n    prices: {input_mtok: -1}\n",
     ["models[0]", "prices.input_mtok"]),
    ("models:\n  - id: ok\n    provider: x\n    prices: {input_mtok: 1}\n  - id: m2\n    provider: x\n"
     "    prices: {input: 1}\n", ["models[1]", "'m2'", "prices.input", "unknown price key"]),
    ("models:\n  - id: m\n    provider: x\n    prices: {input_mtok: 1}\n    colour: red\n",
     ["models[0]", "'colour'", "unknown field"]),
    ("models:\n  - id: m\n    prices: {input_mtok: 1}\n", ["models[0]", "'provider'", "required"]),
    ("models:\n  - id: m\n    provider: x\n    match: {regex: '('}\n    prices: {input_mtok: 1}\n",
     ["models[0]", "'match'", "invalid regex"]),
    ("models:\n  - id: m\n    provider: x\n    match: {glob: 'a*'}\n    prices: {input_mtok: 1}\n",
     ["'match'", "unknown match kind"]),
    ("models:\n  - id: m\n    provider: x\n    prices: {input_mtok: 1}\n    valid_from: 2025-02-01\n"
     "    valid_until: 2025-01-01\n", ["'valid_until'", "after valid_from"]),
    ("models:\n  - id: m\n    provider: x\n    prices: {input_mtok: 1}\n    valid_from: soon\n",
     ["'valid_from'", "date"]),
    ("models:\n  - id: m\n    provider: x\n    variant: overnight\n    prices: {input_mtok: 1}\n",
     ["'variant'", "batch"]),
    ("tenants:\n  acme:\n    rates:\n      - {provider: openai, discount_pct: 120}\n",
     ["tenants.acme.rates[0]", "'discount_pct'", "at most 100"]),
    ("tenants:\n  acme:\n    rates:\n      - {provider: openai}\n", ["tenants.acme.rates[0]", "discount_pct"]),
    ("limits:\n  - {model: gpt-4o, max_output_tokens: lots}\n", ["limits[0]", "'max_output_tokens'"]),
    ("prices: []\n", ["unknown top-level key"]),
    ("models: [\n", ["broken.yml:2", "malformed YAML"]),
])
def test_bad_overlay_file_names_file_entry_and_field(tmp_path, text, needles):
    d = write_overlay(tmp_path, "broken.yml", text)
    with pytest.raises(ConfigError) as err:
        PriceBook(extra_dirs=[d], use_env=False)
    message = str(err.value)
    assert "broken.yml" in message and "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_bundled_overlays_are_found_and_valid():
    d = bundled_overlay_dir()
    names = {p.name for p in d.glob("*.yml")}
    assert {"local.yml", "retired.yml", "batch.yml", "contracts.yml", "limits.yml"} <= names
    book = PriceBook(use_env=False)
    assert {s.name for s in book.overlays.sources} >= names
    assert "example-tenant" in {t.id for t in book.tenants()}


# ---------------------------------------------------------------------------------------------- integration


def test_price_call_fills_the_record(book):
    call = CallRecord(call_id="c1", run_id="r1", seq=1, span_kind="chat_generator", component_name="llm",
                      component_type="OpenAIChatGenerator", started_at=AT, provider="openai", model="gpt-4o-mini",
                      usage=usage(1000, 500))
    book.price_call(call)
    assert call.priced and call.cost == Decimal("0.00045") and call.price_snapshot == GP
    assert call.unit_prices.input_mtok == Decimal("0.15")
    unknown = CallRecord(call_id="c2", run_id="r1", seq=2, span_kind="chat_generator", component_name="llm",
                         component_type="X", started_at=AT, provider="openai", model="nope-1", usage=usage(1, 1))
    book.price_call(unknown)
    assert unknown.priced is False and unknown.cost == 0 and unknown.price_snapshot is None


def test_unnormalized_usage_is_warned_not_crashed(book):
    priced = book.price(usage(100, 10, read=400), "gpt-4o", "openai", AT)
    assert priced.priced and priced.warnings and "not normalized" in priced.warnings[0]


def test_list_models_and_providers(book):
    ollama = book.list_models("ollama")
    assert ollama and all(rp.provider == "ollama" for rp in ollama)
    openai_models = {rp.model for rp in book.list_models("openai")}
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1"} <= openai_models
    assert {"ollama", "openai", "anthropic", "self-hosted"} <= set(book.providers())


# ---------------------------------------------------------------------------------------------- CLI


runner = CliRunner()


def test_cli_show_json_uses_decimal_strings():
    result = runner.invoke(pricing_app, ["show", "gpt-4o-mini", "--provider", "openai", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "gpt-4o-mini" and data["source"] == "genai-prices"
    assert data["unit_prices"]["input_mtok"] == "0.15" and data["unit_prices"]["output_mtok"] == "0.6"
    assert data["max_output_tokens"] == 16384


def test_cli_show_tenant_and_date():
    result = runner.invoke(pricing_app, ["show", "gpt-4o", "-p", "openai", "--tenant", "example-tenant", "--json"])
    data = json.loads(result.stdout)
    assert data["list_prices"]["input_mtok"] == "2.5" and data["unit_prices"]["input_mtok"] == "2.7"
    result = runner.invoke(pricing_app, ["show", "o3", "-p", "openai", "--at", "2025-01-01", "--json"])
    assert json.loads(result.stdout)["unit_prices"]["input_mtok"] == "10"
    result = runner.invoke(pricing_app, ["show", "claude-instant-1.2", "-p", "anthropic", "--at",
                                         "2024-05-01T10:00:00Z", "--json"])
    assert json.loads(result.stdout)["source"] == "overlay:retired.yml"


def test_cli_show_table():
    result = runner.invoke(pricing_app, ["show", "llama3.1:8b", "--provider", "ollama"])
    assert result.exit_code == 0
    assert "overlay:local.yml" in result.stdout and "ollama:llama3.1:8b" in result.stdout


def test_cli_show_unknown_model_exits_2_with_one_line():
    result = runner.invoke(pricing_app, ["show", "gpt-nonexistent-9", "--provider", "openai"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no price for openai:gpt-nonexistent-9" in result.stderr
    hint = runner.invoke(pricing_app, ["show", "llama3.1:8b"])
    assert hint.exit_code == 2 and "--provider" in hint.stderr and "ollama" in hint.stderr


def test_cli_bad_date_and_bad_provider_exit_2():
    result = runner.invoke(pricing_app, ["show", "gpt-4o", "--at", "yesterday"])
    assert result.exit_code == 2 and "--at" in result.stderr
    result = runner.invoke(pricing_app, ["list", "--provider", "no-such-provider"])
    assert result.exit_code == 2 and "unknown provider" in result.stderr


def test_cli_list():
    result = runner.invoke(pricing_app, ["list", "--provider", "openai", "--json"])
    assert result.exit_code == 0
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    assert rows["gpt-4o"]["list_prices"]["input_mtok"] == "2.5"
    table = runner.invoke(pricing_app, ["list", "-p", "self-hosted"])
    assert table.exit_code == 0 and "llama-3-70b-vllm" in table.stdout


def test_cli_bad_overlay_exits_2(tmp_path, monkeypatch):
    d = write_overlay(tmp_path, "oops.yml", "models:\n  - id: x\n    provider: y\n    prices: {input_mtok: nope}\n")
    monkeypatch.setenv(ENV_PRICING_DIR, str(d))
    reset_price_book()
    result = runner.invoke(pricing_app, ["show", "gpt-4o", "-p", "openai"])
    assert result.exit_code == 2
    assert "oops.yml" in result.stderr and "prices.input_mtok" in result.stderr


def test_cli_module_does_not_import_haystack():
    code = ("import sys, genops_cli.cli.pricing_cmd, genops_cli.pricing; "
            "bad = [m for m in sys.modules if m == 'haystack' or m.startswith('haystack.')]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- long-context tiers, float artefacts, dated overlays, overlay vs genai-prices -------------------------------

LATE = datetime(2026, 5, 1, tzinfo=UTC)


def test_claude_sonnet_4_over_200k_input_tokens_pays_the_long_context_rate(book):
    # Over 200k input tokens (cache included) every token is at $6 / $22.50 per 1M (cliff), below at $3 / $15.
    big = book.price(TokenUsage(input_tokens=250_000, output_tokens=1000), "claude-sonnet-4-20250514", "anthropic",
                     at=LATE)
    assert big.cost == Decimal("1.5225") and big.source == "overlay:long_context.yml"
    small = book.price(TokenUsage(input_tokens=200_000, output_tokens=1000), "claude-sonnet-4-20250514",
                       "anthropic", at=LATE)
    assert small.cost == Decimal("0.615")
    cached = book.price(TokenUsage(input_tokens=300_000, cache_read_tokens=250_000, output_tokens=0),
                        "claude-sonnet-4-20250514", "anthropic", at=LATE)
    assert cached.cost == Decimal("0.45")  # 50k x 6 + 250k x 0.60 per 1M
    # Before the 1M context window existed the overlay is not in force: genai-prices' price applies; the dated id
    # reports under genai-prices' canonical id either way.
    early = book.resolve("claude-sonnet-4-20250514", "anthropic", datetime(2025, 6, 1, tzinfo=UTC))
    assert early is not None and (early.source, early.model) == ("genai-prices", "claude-sonnet-4-0")
    assert book.resolve("claude-sonnet-4-20250514", "anthropic", LATE).model == "claude-sonnet-4-0"


def test_overlay_tiers_are_validated(tmp_path):
    (tmp_path / "bad.yml").write_text(
        "models:\n  - id: m\n    provider: p\n    prices: {input_mtok: '1'}\n"
        "    tiers: [{above_input_tokens: 0, prices: {input_mtok: '2'}}]\n")
    with pytest.raises(ConfigError, match=r"bad.yml.*tiers\[0\].above_input_tokens"):
        PriceBook([tmp_path], use_env=False, include_bundled=False)


def test_genai_prices_float_artefacts_are_quantised_on_the_way_in(book):
    resolved = book.resolve("meta-llama/Llama-3.3-70B-Instruct", "huggingface_together")
    assert resolved is not None
    assert (resolved.unit_prices.input_mtok, resolved.unit_prices.output_mtok) == (Decimal("1.04"), Decimal("1.04"))


def test_every_bundled_overlay_price_for_a_provider_is_dated(book):
    undated = [(m.source.name, m.id) for m in book.overlays.models
               if m.valid_from is None and m.valid_until is None
               and any(getattr(m.prices, f) for f in ("input_mtok", "output_mtok", "per_call", "per_second"))]
    assert undated == []


def test_check_all_lists_where_overlays_and_genai_prices_disagree():
    result = runner.invoke(pricing_app, ["check", "--all", "--at", "2026-05-01", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["disagreements"]
    tiers = {r["field"]: (r["overlay"], r["genai_prices"]) for r in rows
             if r["model"] == "claude-sonnet-4-0" and r["kind"] == "tier"}
    assert tiers["input_mtok above 200000 input tokens"] == ("6", None)
    assert {"model": "claude-3-haiku", "variant": "batch", "kind": "genai_missing"}.items() <= next(
        r for r in rows if r["model"] == "claude-3-haiku").items()
    table = runner.invoke(pricing_app, ["check", "--all"])
    assert table.exit_code == 0 and "genai-prices" in table.stdout
    missing = runner.invoke(pricing_app, ["check"])
    assert missing.exit_code == 2 and "--all" in missing.output
