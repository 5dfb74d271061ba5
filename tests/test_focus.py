"""`genops report --format focus`: FOCUS 1.2/1.3/1.4 CSV with every mandatory column, one row per day x model x
price kind, BilledCost summing exactly to the bill, list vs billed for contracted tenants."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from conftest import cli
from ledger_factory import at, make_run, record

MANDATORY = ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingAccountName",
             "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
             "ChargeCategory", "ChargeClass", "ChargeDescription", "ServiceCategory", "ServiceName",
             "InvoiceIssuerName", "PricingQuantity", "PricingUnit"]
ALSO = ["ConsumedQuantity", "ConsumedUnit", "SkuId", "SkuPriceId", "ListUnitPrice", "SubAccountId", "SubAccountName"]
FOCUS_NAMES = set(MANDATORY + ALSO + ["ServiceProviderName", "HostProviderName", "ProviderName", "PublisherName",
                                      "ChargeFrequency", "ContractedUnitPrice", "InvoiceId", "ServiceSubcategory"])


def _focus(tenant: str, *extra: str) -> tuple[list[str], list[dict[str, str]]]:
    result = cli("report", "--tenant", tenant, "--period", "2026-05", "--format", "focus", *extra)
    assert result.exit_code == 0, result.stderr
    reader = csv.DictReader(io.StringIO(result.stdout))
    return list(reader.fieldnames or []), list(reader)


def _seed() -> None:
    record(
        make_run("acme", at("2026-05-03", 9), [{"model": "gpt-4o-mini", "input": 1200, "cache_read": 200,
                                                 "output": 300}, {"model": "gpt-4o", "input": 500, "output": 50}]),
        make_run("acme", at("2026-05-03", 15), [{"model": "gpt-4o-mini", "input": 800, "output": 100}],
                 pipeline="chain"),
        make_run("acme", at("2026-05-04"), [{"model": "claude-3-haiku-20240307", "provider": "anthropic",
                                             "input": 999, "output": 77}]),
        make_run("acme", at("2026-05-04"), [{"model": "gpt-4o", "input": 10, "output": 10}], simulated=True),
    )


@pytest.mark.parametrize("version", ["1.3", "1.4"])
def test_mandatory_columns_and_exact_billed_cost(version):
    _seed()
    columns, rows = _focus("acme", "--focus-version", version)
    assert set(MANDATORY + ALSO + ["ServiceProviderName", "HostProviderName"]) <= set(columns)
    assert "ProviderName" not in columns
    assert all(c in FOCUS_NAMES or c.startswith("x_") for c in columns)
    bill = json.loads(cli("report", "--tenant", "acme", "--period", "2026-05", "--format", "json").stdout)
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal(bill["total_cost"])
    # One row per day x model x price kind (the two gpt-4o-mini runs of May 3 share their rows).
    keys = [(r["ChargePeriodStart"], r["x_Model"], r["x_PriceKind"]) for r in rows]
    assert len(keys) == len(set(keys))
    mini_in = next(r for r in rows if r["x_Model"] == "gpt-4o-mini" and r["x_PriceKind"] == "input")
    assert (mini_in["ConsumedQuantity"], mini_in["ConsumedUnit"]) == ("1800", "Tokens")  # 1000 + 800
    assert (mini_in["PricingQuantity"], mini_in["PricingUnit"], mini_in["ListUnitPrice"]) == (
        "0.0018", "1000000 Tokens",
                                                                                            "0.15")
    assert Decimal(mini_in["PricingQuantity"]) * Decimal(mini_in["ListUnitPrice"]) == Decimal(mini_in["ListCost"])
    assert (mini_in["ChargePeriodStart"], mini_in["ChargePeriodEnd"]) == ("2026-05-03T00:00:00Z",
                                                                          "2026-05-04T00:00:00Z")
    assert (mini_in["BillingPeriodStart"], mini_in["BillingPeriodEnd"]) == ("2026-05-01T00:00:00Z",
                                                                            "2026-06-01T00:00:00Z")
    assert (mini_in["SkuId"], mini_in["SkuPriceId"]) == ("openai:gpt-4o-mini", "openai:gpt-4o-mini:input@0.15")
    assert mini_in["x_Calls"] == "2"
    for r in rows:
        assert (r["SubAccountId"], r["BillingAccountId"], r["BillingCurrency"]) == ("acme", "acme", "USD")
        assert (r["ChargeCategory"], r["ServiceCategory"]) == ("Usage", "AI and Machine Learning")
        assert r["EffectiveCost"] == r["BilledCost"] == r["ContractedCost"]  # no contract: contracted = billed
    claude = [r for r in rows if r["x_Model"].startswith("claude")]
    # Resale: the issuer sells the service; the model's maker hosts it.
    assert {r["ServiceProviderName"] for r in claude} == {r["InvoiceIssuerName"] for r in claude} == {"genops"}
    assert {r["HostProviderName"] for r in claude} == {"anthropic"}
    assert {r["InvoiceId"] for r in rows} == {"acme-20260501-20260601"}
    assert {r["ServiceSubcategory"] for r in rows} == {"Generative AI"}
    assert {r["PricingUnit"] for r in rows} == {"1000000 Tokens"}
    assert {r["ChargePeriodStart"] for r in claude} == {"2026-05-04T00:00:00Z"}


def test_focus_1_2_uses_provider_and_publisher_columns():
    _seed()
    columns, rows = _focus("acme", "--focus-version", "1.2")
    assert {"ProviderName", "PublisherName"} <= set(columns)
    assert not {"ServiceProviderName", "HostProviderName"} & set(columns)
    assert {r["ProviderName"] for r in rows} == {"genops"}  # the issuer resells: not a marketplace charge
    assert {r["PublisherName"] for r in rows} == {"openai", "anthropic"}


def test_own_spend_perspective_names_the_model_provider_as_issuer():
    _seed()
    _, rows = _focus("acme", "--focus-version", "1.2", "--focus-perspective", "own")
    assert {(r["ProviderName"], r["InvoiceIssuerName"]) for r in rows} == {("openai", "openai"),
                                                                         ("anthropic", "anthropic")}


def test_default_version_is_1_4_and_issuer_is_configurable():
    _seed()
    columns, rows = _focus("acme", "--issuer", "Platform Team")
    assert "ServiceProviderName" in columns
    assert {r["InvoiceIssuerName"] for r in rows} == {"Platform Team"}


def test_contracted_tenant_shows_list_cost_above_billed_cost():
    # The bundled example contract: gpt-4o-mini at a contracted 0.12/0.48 (list 0.15/0.60), 20% resale markup.
    record(make_run("example-tenant", at("2026-05-07"), [{"model": "gpt-4o-mini", "input": 1000, "output": 1000}]))
    _, rows = _focus("example-tenant")
    by_kind = {r["x_PriceKind"]: r for r in rows}
    # ContractedCost is the contracted rate before the resale markup (calls.contracted_cost), = unit x quantity.
    assert (by_kind["input"]["ContractedUnitPrice"], by_kind["input"]["ListUnitPrice"]) == ("0.12", "0.15")
    assert by_kind["input"]["ContractedCost"] == "0.00012"
    assert (by_kind["input"]["BilledCost"], by_kind["input"]["ListCost"]) == ("0.000144", "0.00015")
    assert (by_kind["output"]["BilledCost"], by_kind["output"]["ListCost"]) == ("0.000576", "0.0006")


def test_empty_period_gives_a_header_only_csv():
    _seed()
    columns, rows = _focus("nobody")
    assert "BilledCost" in columns and rows == []
