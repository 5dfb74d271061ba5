"""FOCUS 1.x CSV export of a tenant bill (FinOps Open Cost and Usage Specification).

    rows = focus_rows(bill, version="1.4")          # list of {column: value}
    write_focus_csv(bill, fh, version="1.4")

One row per charge period (UTC day) x model x price kind x unit price, built from the same per-call pieces as
the invoice lines, so BilledCost sums exactly to the bill.

Who is who (checked with the FOCUS validator's 1.2 rules):
- resale (default, `genops report --tenant`): the platform team running genops resells model usage to a tenant.
  The invoice issuer (`--issuer` / `billing.issuer.name`) is also the service provider the tenant buys from, so
  ProviderName/ServiceProviderName = InvoiceIssuerName = the issuer (a row whose provider differs from its issuer
  reads as a marketplace charge, which FOCUS requires to bill 0). The model's maker (openai, anthropic, ...) is the
  PublisherName (1.2) / HostProviderName (1.3+), and ServiceName.
- own (`--focus-perspective own`): your own spend as the model providers bill it: provider, publisher and invoice
  issuer are all the model provider.
BilledCost = EffectiveCost = what the tenant pays (markup included; no commitments to amortize); ListCost = the
provider's list price of the same usage; ContractedCost = ContractedUnitPrice x PricingQuantity, the tenant's
contracted rate before resale markup (the ledger's calls.contracted_cost). Tokens go to ConsumedQuantity/
ConsumedUnit ("Tokens"); prices are per 1M tokens, so PricingQuantity is the token count in millions and
PricingUnit "1000000 Tokens" (FOCUS unit format "<quantity> <plural unit>"). SkuId is `provider:model`,
SkuPriceId adds the price kind and the unit price (`openai:gpt-4o-mini:input@0.15`). InvoiceId is one id per
tenant and billing period. Calls without a price get a row with zero cost, no unit prices and `x_Unpriced` =
"true" (their cost is unknown, not zero: the export's summary warns). Custom columns start with `x_`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import IO, Any

from genops_cli.analysis.billing import KINDS, Charge, TenantBill, _plain
from genops_cli.errors import UsageError
from genops_cli.money import money_json
from genops_cli.safe_output import CsvDictWriter

FOCUS_VERSIONS = ("1.2", "1.3", "1.4")
DEFAULT_FOCUS_VERSION = "1.4"
SERVICE_CATEGORY = "AI and Machine Learning"

_UNITS = {"1M tokens": "1000000 Tokens", "calls": "Calls", "seconds": "Seconds", "USD": "USD"}
SERVICE_SUBCATEGORY = "Generative AI"
PERSPECTIVES = ("resale", "own")

_COMMON_HEAD = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingAccountName",
    "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ServiceCategory", "ServiceSubcategory",
    "ServiceName", "InvoiceId",
]
_COMMON_TAIL = [
    "InvoiceIssuerName", "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit", "SkuId", "SkuPriceId",
    "ListUnitPrice", "ContractedUnitPrice", "SubAccountId", "SubAccountName", "x_PriceKind", "x_Model", "x_Calls",
    "x_Tokens", "x_Unpriced", "x_EstimatedCost",
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
        key = (c.day, c.provider, c.model, c.kind, c.unit_price, c.list_unit_price, c.contracted_unit_price)
        row = grouped.get(key)
        if row is None:
            grouped[key] = row = Charge(c.day, "*", c.provider, c.model, c.kind, c.unit_price, c.list_unit_price,
                                        contracted_unit_price=c.contracted_unit_price)
        row.quantity += c.quantity
        row.cost += c.cost
        row.list_cost += c.list_cost
        row.contracted_cost += c.contracted_cost
        row.estimated_cost += c.estimated_cost
        row.calls += c.calls
    return list(grouped.values())


def invoice_id(bill: TenantBill) -> str:
    """One stable id per tenant and billing period (the same bill re-exported keeps its id)."""
    return f"{bill.tenant}-{bill.period.start:%Y%m%d}-{bill.period.end:%Y%m%d}"


def _parties(provider: str, issuer: str, perspective: str) -> dict[str, str]:
    seller = issuer if perspective == "resale" else provider
    return {"ProviderName": seller, "PublisherName": provider, "ServiceProviderName": seller,
            "HostProviderName": provider, "InvoiceIssuerName": seller}


def _row_base(bill: TenantBill, day: date, provider: str, issuer: str, perspective: str) -> dict[str, str]:
    day_start = datetime(day.year, day.month, day.day)
    return {
        "BillingAccountId": bill.tenant,
        "BillingAccountName": bill.tenant,
        "BillingCurrency": bill.currency,
        "BillingPeriodStart": _ts(bill.period.start),
        "BillingPeriodEnd": _ts(bill.period.end),
        "ChargePeriodStart": _ts(max(day_start, bill.period.start)),
        "ChargePeriodEnd": _ts(min(day_start + timedelta(days=1), bill.period.end)),
        "ChargeClass": "",
        "ChargeFrequency": "Usage-Based",
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceSubcategory": SERVICE_SUBCATEGORY,
        "ServiceName": provider,
        "InvoiceId": invoice_id(bill),
        "SubAccountId": bill.tenant,
        "SubAccountName": bill.tenant,
        **_parties(provider, issuer, perspective),
    }


def focus_rows(bill: TenantBill, version: str = DEFAULT_FOCUS_VERSION, issuer: str = "genops",
               perspective: str = "resale") -> list[dict[str, str]]:
    """The FOCUS rows of a bill, in column order of `focus_columns(version)`."""
    columns = focus_columns(version)
    if perspective not in PERSPECTIVES:
        raise UsageError(f"--focus-perspective {perspective!r}: use one of {', '.join(PERSPECTIVES)}")
    out: list[dict[str, str]] = []
    for c in _day_rows(bill):
        adjustment = c.kind == "adjustment"
        unit = _UNITS[KINDS[c.kind][1]]
        tokens = c.tokens
        contracted_unit = c.contracted_unit_price if c.contracted_unit_price is not None else c.unit_price
        values = {
            **_row_base(bill, c.day, c.provider, issuer, perspective),
            "BilledCost": money_json(c.cost),
            "EffectiveCost": money_json(c.cost),
            "ListCost": money_json(c.list_cost),
            "ContractedCost": money_json(c.contracted_cost),
            "ChargeCategory": "Adjustment" if adjustment else "Usage",
            "ChargeDescription": f"{c.model} {KINDS[c.kind][0]}",
            "PricingQuantity": "" if adjustment else _plain(c.quantity),
            "PricingUnit": "" if adjustment else unit,
            "ConsumedQuantity": "" if adjustment else (str(tokens) if tokens is not None else _plain(c.quantity)),
            "ConsumedUnit": "" if adjustment else ("Tokens" if tokens is not None else unit),
            "SkuId": f"{c.provider}:{c.model}",
            "SkuPriceId": "" if adjustment else f"{c.provider}:{c.model}:{c.kind}@{_plain(c.unit_price)}",
            "ListUnitPrice": "" if adjustment or c.list_unit_price is None else _plain(c.list_unit_price),
            "ContractedUnitPrice": "" if adjustment else _plain(contracted_unit),
            "x_PriceKind": c.kind,
            "x_Model": c.model,
            "x_Calls": str(c.calls),
            "x_Tokens": str(tokens) if tokens is not None else "",
            "x_Unpriced": "false",
            # The part of BilledCost resting on usage genops estimated (a stream without usage), not measured.
            "x_EstimatedCost": money_json(c.estimated_cost),
        }
        out.append({col: values[col] for col in columns})
    out.extend(_unpriced_rows(bill, columns, issuer, perspective))
    return out


def _unpriced_rows(bill: TenantBill, columns: list[str], issuer: str, perspective: str) -> list[dict[str, str]]:
    """Usage of calls without a price: zero cost, no unit prices, flagged `x_Unpriced` (unknown, not free)."""
    out = []
    for u in bill.unpriced_usage:
        tokens = u.input_tokens + u.output_tokens
        values = {
            **_row_base(bill, u.day, u.provider, issuer, perspective),
            "BilledCost": "0", "EffectiveCost": "0", "ListCost": "0", "ContractedCost": "0",
            "ChargeCategory": "Usage",
            "ChargeDescription": f"{u.model} usage without a known price (unpriced; not included in costs)",
            "PricingQuantity": "", "PricingUnit": "", "ConsumedQuantity": str(tokens), "ConsumedUnit": "Tokens",
            "SkuId": f"{u.provider}:{u.model}", "SkuPriceId": "", "ListUnitPrice": "", "ContractedUnitPrice": "",
            "x_PriceKind": "unpriced", "x_Model": u.model, "x_Calls": str(u.calls), "x_Tokens": str(tokens),
            "x_Unpriced": "true", "x_EstimatedCost": "",
        }
        out.append({col: values[col] for col in columns})
    return out


def write_focus_csv(bill: TenantBill, fh: IO[str], version: str = DEFAULT_FOCUS_VERSION,
                    issuer: str = "genops", perspective: str = "resale") -> int:
    """Write the FOCUS CSV (header + rows); returns the number of rows."""
    columns = focus_columns(version)
    writer = CsvDictWriter(fh, fieldnames=columns)
    writer.writeheader()
    rows = focus_rows(bill, version, issuer, perspective)
    writer.writerows(rows)
    return len(rows)
