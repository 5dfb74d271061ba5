"""Money and quantities as text: the one formatter every surface uses (JSON, tables, Markdown, HTML, FOCUS).

Rules (documented in the README, "Money"):

- JSON, CSV and FOCUS: `money_json` gives the exact amount as a plain decimal string at the ledger's precision
  (18 decimal places) with trailing zeros dropped: "0.00045", "12.5", "0". Never exponent form ("0E-10"),
  never a float. An amount that is not known (an unpriced call) is `None` (JSON null), never "0".
- Tables and documents for people: `money_text` shows USD at one display precision, `DISPLAY_PLACES` (6)
  decimals, with thousands separators: "$1,234.040020". A non-zero amount too small to show is "<$0.000001",
  never "$0.000000". Unknown amounts read "unpriced".
- Quantities (tokens, calls, runs) get thousands separators: `quantity(6000)` -> "6,000".
- Totals that leave unpriced calls out say so: `total_text(total, 3)` -> "$0.040020 + 3 unpriced calls".
"""

from __future__ import annotations

from decimal import Decimal

#: Places of every cost column in the ledger (DECIMAL(38,18)): exact for any token price down to 1e-12 USD.
LEDGER_PLACES = 18
LEDGER_QUANTUM = Decimal(1).scaleb(-LEDGER_PLACES)

#: Decimal places of money shown to people (tables, Markdown, HTML bills, messages).
DISPLAY_PLACES = 6
_DISPLAY_QUANTUM = Decimal(1).scaleb(-DISPLAY_PLACES)

#: What tables show for an amount genops could not price.
UNPRICED = "unpriced"


def money_json(value: Decimal | int | str | None) -> str | None:
    """The exact amount as a plain decimal string for machines ("0.00045", "0"); None stays None (unpriced)."""
    if value is None:
        return None
    amount = Decimal(value).quantize(LEDGER_QUANTUM).normalize()
    if amount == 0:
        return "0"
    return format(amount, "f")


def money_text(value: Decimal | int | str | None, places: int = DISPLAY_PLACES) -> str:
    """USD for people at the display precision: "$0.040020", "-$1,250.000000", "<$0.000001"; None -> "unpriced"."""
    if value is None:
        return UNPRICED
    amount = Decimal(value)
    quantum = _DISPLAY_QUANTUM if places == DISPLAY_PLACES else Decimal(1).scaleb(-places)
    shown = abs(amount).quantize(quantum)
    sign = "-" if amount < 0 else ""
    if shown == 0 and amount != 0:
        return f"{sign}<${quantum:f}"
    return f"{sign}${shown:,.{places}f}"


def unit_price_text(value: Decimal | str | None) -> str:
    """A unit price (USD per 1M tokens, per call, per second) exactly as quoted: "$0.075", "$2.50" (rates are not
    rounded to the display precision: they are what the quantity is multiplied by)."""
    return UNPRICED if value is None else exact_money_text(value)


def exact_money_text(value: Decimal | str) -> str:
    """An amount with every digit it was given, at least cents: "$50.00", "$0.0233415" (unit prices, budget
    limits: what a user set is shown as set, never rounded to "<$0.01")."""
    amount = Decimal(value).normalize()
    text = f"{abs(amount):,f}"
    whole, _, frac = text.partition(".")
    return f"{'-' if amount < 0 else ''}${whole}.{frac.ljust(2, '0')}"


def quantity(value: int | Decimal | None) -> str:
    """A count with thousands separators: 6000 -> "6,000"; fractional quantities keep their digits."""
    if value is None:
        return "-"
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return f"{value.normalize():,f}"
    return f"{int(value):,}"


def unpriced_note(unpriced_calls: int) -> str:
    """ "" or "+ 3 unpriced calls" (what a total leaves out)."""
    if not unpriced_calls:
        return ""
    return f"+ {quantity(unpriced_calls)} unpriced call{'s' if unpriced_calls != 1 else ''}"


def total_text(total: Decimal | None, unpriced_calls: int = 0) -> str:
    """A total for people that never hides unpriced calls: "$0.040020 + 2 unpriced calls"."""
    return f"{money_text(total if total is not None else Decimal(0))} {unpriced_note(unpriced_calls)}".rstrip()
