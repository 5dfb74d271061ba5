"""FOCUS 1.x CSV export of a tenant bill (FinOps Open Cost and Usage Specification).

    rows = focus_rows(bill, version="1.4")          # list of {column: value}
    write_focus_csv(bill, fh, version="1.4")

One row per charge period (UTC day) x model x price kind x unit price, built from the same per-call pieces as
the invoice lines, so BilledCost sums exactly to the bill. Perspective: the invoice issuer (the platform team
running genops) bills the tenant, so BilledCost = EffectiveCost = ContractedCost = what the tenant pays under
its contract (markup included; genops has no commitments or credits to amortize), and ListCost is the provider
list price of the same usage: ListCost - BilledCost is the tenant's discount (negative with a resale markup).
Tokens go to ConsumedQuantity/ConsumedUnit ("Tokens"); prices are per 1M tokens, so PricingQuantity is the token
count in millions and PricingUnit "1M Tokens". SkuId is `provider:model`, SkuPriceId adds the price kind and the
unit price (`openai:gpt-4o-mini:input@0.15`), so a price change gives a new SkuPriceId. Custom columns start
with `x_`. FOCUS 1.2 names the provider columns ProviderName/PublisherName; 1.3+ ServiceProviderName/
HostProviderName.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from typing import IO, Any

from genops_cli.analysis.analyze import money_str
from genops_cli.analysis.billing import KINDS, Charge, TenantBill, _plain
from genops_cli.errors import UsageError

FOCUS_VERSIONS = ("1.2", "1.3", "1.4")
DEFAULT_FOCUS_VERSION = "1.4"
SERVICE_CATEGORY = "AI and Machine Learning"

_UNITS = {"1M tokens": "1M Tokens", "calls": "Calls", "seconds": "Seconds", "USD": "USD"}

_COMMON_HEAD = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingAccountName",
    "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ServiceCategory", "ServiceName",
]
_COMMON_TAIL = [
    "InvoiceIssuerName", "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit", "SkuId", "SkuPriceId",
    "ListUnitPrice", "ContractedUnitPrice", "SubAccountId", "SubAccountName", "x_PriceKind", "x_Model", "x_Calls",
    "x_Tokens",
]


def focus_columns(version: str = DEFAULT_FOCUS_VERSION) -> list[str]:
    if version not in FOCUS_VERSIONS:
        raise UsageError(f"--focus-version {version!r}: use one of {', '.join(FOCUS_VERSIONS)}")
    providers = ["ProviderName", "PublisherName"] if version == "1.2" else ["ServiceProviderName", "HostProviderName"]
    return [*_COMMON_HEAD, *providers, *_COMMON_TAIL]


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_rows(bill: TenantBill) -> list[Charge]:
    """The bill's charges summed over pipelines: one per day x provider x model x kind x unit price."""
    grouped: dict[tuple[Any, ...], Charge] = {}
    for c in bill.charges:
        key = (c.day, c.provider, c.model, c.kind, c.unit_price, c.list_unit_price)
        row = grouped.get(key)
        if row is None:
            grouped[key] = row = Charge(c.day, "*", c.provider, c.model, c.kind, c.unit_price, c.list_unit_price)
        row.quantity += c.quantity
        row.cost += c.cost
        row.list_cost += c.list_cost
        row.calls += c.calls
    return list(grouped.values())


def focus_rows(bill: TenantBill, version: str = DEFAULT_FOCUS_VERSION,
               issuer: str = "genops") -> list[dict[str, str]]:
    """The FOCUS rows of a bill, in column order of `focus_columns(version)`."""
    columns = focus_columns(version)
    out: list[dict[str, str]] = []
    for c in _day_rows(bill):
        day_start = datetime(c.day.year, c.day.month, c.day.day)
        start = max(day_start, bill.period.start)
        end = min(day_start + timedelta(days=1), bill.period.end)
        adjustment = c.kind == "adjustment"
        unit = _UNITS[KINDS[c.kind][1]]
        tokens = c.tokens
        consumed = str(tokens) if tokens is not None else _plain(c.quantity)
        values = {
            "BilledCost": money_str(c.cost),
            "EffectiveCost": money_str(c.cost),
            "ListCost": money_str(c.list_cost),
            "ContractedCost": money_str(c.cost),
            "BillingAccountId": bill.tenant,
            "BillingAccountName": bill.tenant,
            "BillingCurrency": bill.currency,
            "BillingPeriodStart": _ts(bill.period.start),
            "BillingPeriodEnd": _ts(bill.period.end),
            "ChargePeriodStart": _ts(start),
            "ChargePeriodEnd": _ts(end),
            "ChargeCategory": "Adjustment" if adjustment else "Usage",
            "ChargeClass": "",
            "ChargeDescription": f"{c.model} {KINDS[c.kind][0]}",
            "ChargeFrequency": "Usage-Based",
            "ServiceCategory": SERVICE_CATEGORY,
            "ServiceName": c.provider,
            "ProviderName": c.provider,
            "PublisherName": c.provider,
            "ServiceProviderName": c.provider,
            "HostProviderName": c.provider,
            "InvoiceIssuerName": issuer,
            "PricingQuantity": "" if adjustment else _plain(c.quantity),
            "PricingUnit": "" if adjustment else unit,
            "ConsumedQuantity": "" if adjustment else consumed,
            "ConsumedUnit": "" if adjustment else ("Tokens" if tokens is not None else unit),
            "SkuId": f"{c.provider}:{c.model}",
            "SkuPriceId": "" if adjustment else f"{c.provider}:{c.model}:{c.kind}@{_plain(c.unit_price)}",
            "ListUnitPrice": "" if adjustment or c.list_unit_price is None else _plain(c.list_unit_price),
            "ContractedUnitPrice": "" if adjustment else _plain(c.unit_price),
            "SubAccountId": bill.tenant,
            "SubAccountName": bill.tenant,
            "x_PriceKind": c.kind,
            "x_Model": c.model,
            "x_Calls": str(c.calls),
            "x_Tokens": str(tokens) if tokens is not None else "",
        }
        out.append({col: values[col] for col in columns})
    return out


def write_focus_csv(bill: TenantBill, fh: IO[str], version: str = DEFAULT_FOCUS_VERSION,
                    issuer: str = "genops") -> int:
    """Write the FOCUS CSV (header + rows); returns the number of rows."""
    columns = focus_columns(version)
    writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    rows = focus_rows(bill, version, issuer)
    writer.writerows(rows)
    return len(rows)
