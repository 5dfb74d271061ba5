"""Tenant billing from the ledger: what to charge one customer for a period, line by line, exactly.

    period = parse_billing_period("2026-05")       # or parse_billing_period(None, "2026-05-01", "2026-05-15")
    with ledger.read() as tx:
        bill = tenant_bill(tx, "acme-corp", period, settings)
    bill.total_cost, bill.lines, bill.charges                   # Decimal money, invoice lines, per-day pieces
    bill.to_json()                                              # the `genops report --format json` object

What is billed: the calls of the tenant's (`runs.customer_id`) non-simulated runs that started in the period
(half-open, naive UTC; a run is charged on the day it started, so a run is never split across two bills and
`genops analyze --customer` over the same window gives the same total).

Line items: one per pipeline x provider x model x price kind (input, cached input, cache write, output,
per call, per second) x unit price, so a price change within the period gives two lines. Quantities are real
(non-cached input = input_tokens - cache_read - cache_write); unit prices come from each call's stored
`unit_prices` (the billed prices, after any tenant contract or markup).

Rounding: every call's stored cost is already quantized to 10 places. Each call's cost is split into its
per-kind components (quantity x unit price, exact) and the components are quantized with the largest-remainder
method so that they sum EXACTLY to the stored cost of that call; a line's cost is the sum of its calls'
components. Hence the lines (and the FOCUS rows, and cost_by_day) add up exactly to `total_cost` with no
rounding line. Only when a stored cost cannot be explained by its stored unit prices (edited by hand, or a
pricing bug) is the difference shown as an explicit `adjustment` line. List cost is split the same way, using
the list unit prices of the price book when they reproduce the stored billed prices, else in proportion.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.periods import Period, parse_when
from genops_cli.errors import ConfigError, UsageError
from genops_cli.ledger.store import Tx
from genops_cli.models import MONEY_QUANTUM, Budget, UnitPrices
from genops_cli.money import money_json, money_text, quantity, unit_price_text, unpriced_note
from genops_cli.pricing.book import cost_components
from genops_cli.tracking.usage import UsageSourceShare

if TYPE_CHECKING:
    from genops_cli.config import Settings
    from genops_cli.pricing.book import PriceBook

ZERO = Decimal(0)
_MTOK = Decimal(1_000_000)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

#: price kind -> (label, pricing unit, FOCUS consumed unit)
KINDS: dict[str, tuple[str, str, str]] = {
    "input": ("input tokens", "1M tokens", "Tokens"),
    "cached_input": ("cached input tokens", "1M tokens", "Tokens"),
    "cache_write": ("cache write tokens", "1M tokens", "Tokens"),
    "output": ("output tokens", "1M tokens", "Tokens"),
    "per_call": ("calls", "calls", "Calls"),
    "per_second": ("compute seconds", "seconds", "Seconds"),
    "adjustment": ("adjustment: stored cost differs from its unit prices", "USD", "USD"),
}


# ------------------------------------------------------------------------------------------------ periods


@dataclass(frozen=True)
class BillingPeriod:
    """[start, end) in naive UTC. `month` is set for a calendar month (`--period YYYY-MM`)."""

    start: datetime
    end: datetime
    label: str
    month: tuple[int, int] | None = None

    def as_period(self) -> Period:
        return Period(self.start, self.end, self.label)

    def previous(self) -> BillingPeriod:
        """The previous calendar month, or the window of the same length just before this one."""
        if self.month is not None:
            year, month = self.month
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
            return month_period(year, month)
        length = self.end - self.start
        return BillingPeriod(self.start - length, self.start, f"{(self.start - length).date()} to "
                             f"{(self.start - timedelta(days=1)).date()}")

    def days(self) -> list[date]:
        out, day = [], self.start.date()
        while datetime(day.year, day.month, day.day) < self.end:
            out.append(day)
            day += timedelta(days=1)
        return out

    def to_json(self) -> dict[str, str]:
        return {"start": _iso(self.start), "end": _iso(self.end), "label": self.label}


def _iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def month_period(year: int, month: int) -> BillingPeriod:
    start = datetime(year, month, 1)
    end = datetime(year + 1, 1, 1) if month == 12 else datetime(year, month + 1, 1)
    return BillingPeriod(start, end, f"{year:04d}-{month:02d}", (year, month))


def parse_billing_period(period: str | None = None, from_: str | None = None, to: str | None = None,
                         now: datetime | None = None) -> BillingPeriod:
    """`--period YYYY-MM`, or `--from DATE --to DATE` (to inclusive), default the current month to date's month."""
    if period and (from_ or to):
        raise UsageError("--period cannot be combined with --from/--to; use one or the other")
    if from_ or to:
        if not (from_ and to):
            raise UsageError("--from and --to go together (e.g. --from 2026-05-01 --to 2026-05-15)")
        start, end = parse_when(from_, "--from"), parse_when(to, "--to", end_of_day=True)
        if start >= end:
            raise UsageError(f"--from {from_} is not before --to {to}; swap them")
        return BillingPeriod(start, end, f"{from_} to {to}")
    if period:
        match = _MONTH.match(period.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or not 1 <= int(match.group(1)) <= 9998:
            raise UsageError(f"--period {period[:40]!r}: use a calendar month YYYY-MM between 0001-01 and 9998-12, "
                             "e.g. 2026-05")
        return month_period(int(match.group(1)), int(match.group(2)))
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    return month_period(now.year, now.month)


# ------------------------------------------------------------------------------------------------ cost split
# The split itself is the one cost formula, `pricing.book.cost_components`.


def allocate(total: Decimal, parts: list[Decimal]) -> list[Decimal] | None:
    """Quantize `parts` so they sum exactly to `total` (largest remainder), or None when `total` is not within
    rounding of sum(parts)."""
    if not parts:
        return None
    floors = [p.quantize(MONEY_QUANTUM, rounding=ROUND_FLOOR) for p in parts]
    missing = (total - sum(floors, ZERO)) / MONEY_QUANTUM
    if missing != missing.to_integral_value() or not 0 <= missing <= len(parts):
        return None
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] - floors[i]), i))
    for i in order[: int(missing)]:
        floors[i] += MONEY_QUANTUM
    return floors


# ------------------------------------------------------------------------------------------------ the bill


@dataclass
class Charge:
    """One aggregated piece: day x pipeline x provider x model x price kind x unit price."""

    day: date
    pipeline: str
    provider: str
    model: str
    kind: str
    unit_price: Decimal
    list_unit_price: Decimal | None
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    list_cost: Decimal = ZERO
    calls: int = 0
    contracted_unit_price: Decimal | None = None
    contracted_cost: Decimal = ZERO
    estimated_cost: Decimal = ZERO  # the part of `cost` resting on usage genops estimated, not measured

    @property
    def unit(self) -> str:
        return KINDS[self.kind][1]

    @property
    def tokens(self) -> int | None:
        return int(self.quantity * _MTOK) if self.unit == "1M tokens" else None


@dataclass(frozen=True)
class UnpricedUsage:
    """Calls of one day x model that have no price: listed (and flagged in FOCUS), never billed as $0."""

    day: date
    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int


@dataclass
class LineItem:
    description: str
    pipeline: str
    provider: str
    model: str
    kind: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    list_unit_price: Decimal | None
    cost: Decimal
    list_cost: Decimal
    calls: int
    tokens: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "pipeline": self.pipeline,
            "provider": self.provider,
            "model": self.model,
            "price_kind": self.kind,
            "quantity": _plain(self.quantity),
            "unit": self.unit,
            "tokens": self.tokens,
            "unit_price": _plain(self.unit_price),
            "list_unit_price": _plain(self.list_unit_price) if self.list_unit_price is not None else None,
            "cost": money_json(self.cost),
            "list_cost": money_json(self.list_cost),
            "calls": self.calls,
        }


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (0.001, 12, 0.15)."""
    return format(value.normalize(), "f")


@dataclass
class TenantBill:
    tenant: str
    period: BillingPeriod
    currency: str
    total_cost: Decimal
    list_cost: Decimal
    runs: int
    runs_by_status: dict[str, int]
    charges: list[Charge]
    previous_period: BillingPeriod
    previous_period_cost: Decimal
    budget: dict[str, Any] | None
    contract: dict[str, Any] | None
    unpriced: list[dict[str, Any]] = field(default_factory=list)
    unpriced_usage: list[UnpricedUsage] = field(default_factory=list)
    previous_period_runs: int = 0
    usage_sources: UsageSourceShare = field(default_factory=UsageSourceShare)
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None))

    @property
    def unpriced_calls(self) -> int:
        """Calls of this period that have no price: not in any total (they are listed, never billed as $0)."""
        return sum(int(u["calls"]) for u in self.unpriced)

    def subtotals(self, by: str) -> list[tuple[str, Decimal]]:
        """(name, amount) per `pipeline` or `model` (provider:model), largest first; they sum to the total."""
        out: dict[str, Decimal] = {}
        for line in self.lines:
            name = line.pipeline if by == "pipeline" else f"{line.provider}:{line.model}"
            out[name] = out.get(name, ZERO) + line.cost
        return sorted(out.items(), key=lambda t: (-t[1], t[0]))

    @property
    def lines(self) -> list[LineItem]:
        """Invoice lines: the charges summed over days, in a stable order."""
        grouped: dict[tuple[Any, ...], LineItem] = {}
        for c in self.charges:
            key = (c.pipeline, c.provider, c.model, list(KINDS).index(c.kind), c.unit_price, c.list_unit_price)
            line = grouped.get(key)
            if line is None:
                grouped[key] = line = LineItem(
                    description=f"{c.model} {KINDS[c.kind][0]} ({c.pipeline})", pipeline=c.pipeline,
                    provider=c.provider, model=c.model, kind=c.kind, quantity=ZERO, unit=c.unit,
                    unit_price=c.unit_price, list_unit_price=c.list_unit_price, cost=ZERO, list_cost=ZERO, calls=0,
                    tokens=0 if c.tokens is not None else None)
            line.quantity += c.quantity
            line.cost += c.cost
            line.list_cost += c.list_cost
            line.calls += c.calls
            if line.tokens is not None and c.tokens is not None:
                line.tokens += c.tokens
        return [grouped[k] for k in sorted(grouped, key=lambda k: (k[0], k[1], k[2], k[3], k[4]))]

    def cost_by_provider(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for c in self.charges:
            out[c.provider] = out.get(c.provider, ZERO) + c.cost
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def cost_by_model(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for c in self.charges:
            key = f"{c.provider}:{c.model}"
            out[key] = out.get(key, ZERO) + c.cost
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def cost_by_day(self) -> list[tuple[date, Decimal]]:
        """Every day of the period (zero days included, so the chart has a gap where nothing ran)."""
        totals: dict[date, Decimal] = {}
        for c in self.charges:
            totals[c.day] = totals.get(c.day, ZERO) + c.cost
        days = self.period.days() if (self.period.end - self.period.start).days <= 400 else sorted(totals)
        return [(d, totals.get(d, ZERO)) for d in days]

    def peak_day(self) -> tuple[date, Decimal] | None:
        days = [d for d in self.cost_by_day() if d[1] > 0]
        return max(days, key=lambda d: (d[1], -d[0].toordinal())) if days else None

    def trend(self) -> dict[str, Any]:
        """Change against the previous period; direction "none" (no change figures) when the tenant had no runs
        then: a first bill shows no trend rather than an invented rise from $0."""
        if not self.previous_period_runs:
            return {"direction": "none", "change": None, "change_pct": None}
        change = self.total_cost - self.previous_period_cost
        direction = "up" if change > 0 else "down" if change < 0 else "flat"
        pct = None
        if self.previous_period_cost:
            pct = format((change / self.previous_period_cost * 100).quantize(Decimal("0.1")), "f")
        return {"direction": direction, "change": money_json(change), "change_pct": pct}

    def to_json(self) -> dict[str, Any]:
        peak = self.peak_day()
        return {
            "tenant": self.tenant,
            "period": self.period.to_json(),
            "currency": self.currency,
            "total_cost": money_json(self.total_cost),
            "priced": self.unpriced_calls == 0,
            "unpriced_call_count": self.unpriced_calls,
            "list_cost": money_json(self.list_cost),
            "billed_minus_list": money_json(self.total_cost - self.list_cost),
            "runs": self.runs,
            "runs_by_status": self.runs_by_status,
            "line_items": [line.to_json() for line in self.lines],
            "cost_by_provider": {k: money_json(v) for k, v in self.cost_by_provider().items()},
            "cost_by_model": {k: money_json(v) for k, v in self.cost_by_model().items()},
            "cost_by_day": [{"date": d.isoformat(), "cost": money_json(v)} for d, v in self.cost_by_day()],
            "peak_day": {"date": peak[0].isoformat(), "cost": money_json(peak[1])} if peak else None,
            "previous_period": self.previous_period.to_json(),
            "previous_period_cost": money_json(self.previous_period_cost) if self.previous_period_runs else None,
            "previous_period_runs": self.previous_period_runs,
            "subtotals_by_pipeline": [{"pipeline": n, "cost": money_json(c)} for n, c in self.subtotals("pipeline")],
            "subtotals_by_model": [{"model": n, "cost": money_json(c)} for n, c in self.subtotals("model")],
            "trend": self.trend(),
            "budget": self.budget,
            "contract": self.contract,
            "unpriced_calls": self.unpriced,
            # How much of the bill rests on usage genops estimated (streams without usage), not measured.
            "usage_sources": self.usage_sources.to_json(),
            "generated_at": _iso(self.generated_at),
        }


# One row per (tenant, day, pipeline, provider, model, stored unit prices, priced, usage source: 1 estimated,
# 2 missing, 0 measured): the bill is built from these aggregates, as a provider's invoice is (quantity summed,
# then x unit price), in one grouped query for one tenant or for all of them; the bill's usage-source figures are
# sums of the same rows.
_GROUPS_SQL = """
SELECT r.customer_id, CAST(r.started_at AS DATE), r.pipeline_name, c.provider, c.model, c.unit_prices, c.priced,
       CASE c.usage_source WHEN 'estimated' THEN 1 WHEN 'missing' THEN 2 ELSE 0 END,
       COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens),
       SUM(CASE WHEN c.input_tokens > c.cache_read_tokens + c.cache_write_tokens
                THEN c.input_tokens - c.cache_read_tokens - c.cache_write_tokens ELSE 0 END),
       SUM(c.cache_read_tokens), SUM(c.cache_write_tokens), SUM(c.latency_ms),
       SUM(c.cost), SUM(c.list_cost), SUM(c.contracted_cost), COUNT(c.contracted_cost),
       MIN(c.started_at), MAX(c.input_tokens),
       SUM(CASE WHEN c.input_tokens > c.cache_read_tokens + c.cache_write_tokens THEN 1 ELSE 0 END),
       SUM(CASE WHEN c.cache_read_tokens > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN c.cache_write_tokens > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN c.output_tokens > 0 THEN 1 ELSE 0 END)
FROM calls c JOIN runs r ON r.run_id = c.run_id
WHERE {where} AND (c.model IS NOT NULL OR c.cost <> 0 OR c.list_cost <> 0)
GROUP BY r.customer_id, CAST(r.started_at AS DATE), r.pipeline_name, c.provider, c.model, c.unit_prices, c.priced,
         CASE c.usage_source WHEN 'estimated' THEN 1 WHEN 'missing' THEN 2 ELSE 0 END
"""

#: Calls recorded before schema v5 were rounded to 10 places each: a group's stored total may differ from its
#: exact aggregate by up to half a unit of the 10th place per call. That much is rounding, folded into the group's
#: largest line; anything more is shown as an explicit adjustment line, never hidden.
_LEGACY_ROUNDING = Decimal("0.00000000005")


def _tenant_where(tenant: str | None, period: BillingPeriod) -> tuple[str, list[Any]]:
    where, params = build_where(Filters(customer=tenant), period.as_period(), alias="r", simulated=False)
    return (where if tenant is not None else f"{where} AND r.customer_id IS NOT NULL"), params


class _ListPrices:
    """List and contracted unit prices from the price book, used only when they reproduce the stored billed
    prices (so a bill never mixes today's price sheet into yesterday's calls)."""

    def __init__(self, book: PriceBook | None, tenant: str) -> None:
        self.book = book
        self.tenant = tenant

    def for_call(self, model: str | None, provider: str | None, at: datetime, input_tokens: int,
                 billed: UnitPrices, which: int = 0) -> UnitPrices | None:
        """List (which=0) or contracted (which=1) unit prices, when the book's billed prices are the stored ones."""
        if self.book is None or not model:
            return None
        resolved = self.book.resolve(model, provider, at, self.tenant)
        if resolved is None:
            return None
        prices = resolved.effective_prices(input_tokens)
        return prices[which] if prices[2] == billed else None


@dataclass
class _Group:
    """One aggregated row of `_GROUPS_SQL`."""

    tenant: str
    day: date
    pipeline: str
    provider: str
    model: str
    prices: UnitPrices
    priced: bool
    estimated: bool
    calls: int
    input_tokens: int
    output_tokens: int
    uncached: int
    cache_read: int
    cache_write: int
    latency_ms: float
    cost: Decimal
    list_cost: Decimal
    contracted_cost: Decimal | None  # None when some calls predate calls.contracted_cost
    first_at: datetime
    max_input: int
    calls_by_kind: dict[str, int]

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> _Group:
        (tenant, day, pipeline, provider, model, prices_json, priced, est, n, inp, out, uncached, cr, cw, latency,
         cost, list_cost, contracted, n_contracted, first_at, max_input, n_in, n_cr, n_cw, n_out) = row
        if isinstance(day, datetime):
            day = day.date()
        prices = UnitPrices.from_json(json.loads(prices_json)) if prices_json else UnitPrices()
        return cls(str(tenant), day, pipeline, provider or "unknown", model or "unknown", prices, bool(priced),
                   est == 1, int(n), int(inp or 0), int(out or 0), int(uncached or 0), int(cr or 0), int(cw or 0),
                   float(latency or 0), Decimal(cost or 0), Decimal(list_cost or 0),
                   Decimal(contracted) if n_contracted == n and contracted is not None else None, first_at,
                   int(max_input or 0), {"input": int(n_in or 0), "cached_input": int(n_cr or 0),
                                         "cache_write": int(n_cw or 0), "output": int(n_out or 0)})

    def components(self, prices: UnitPrices) -> list[tuple[str, Decimal, Decimal, Decimal]]:
        """(kind, quantity, unit price, exact cost) of the aggregated usage at `prices`: the one cost formula on
        summed quantities (per-call prices count every call)."""
        out = []
        for kind, qty, unit, cost in cost_components(self.uncached + self.cache_read + self.cache_write,
                                                     self.cache_read, self.cache_write, self.output_tokens,
                                                     self.latency_ms, prices):
            if kind == "per_call":
                qty, cost = Decimal(self.calls), unit * self.calls
            out.append((kind, qty, unit, cost))
        return out

    def calls_of(self, kind: str) -> int:
        return self.calls_by_kind.get(kind, self.calls)


def _fit(total: Decimal, exact: list[Decimal], calls: int) -> tuple[list[Decimal], Decimal]:
    """Pieces for `exact` that sum to `total`: exact when they do; a legacy rounding difference folded into the
    largest piece; else the exact pieces and the difference as an adjustment."""
    pieces = list(exact)
    diff = total - sum(exact, ZERO)
    if diff == 0 or not pieces:
        return pieces, diff
    if abs(diff) <= _LEGACY_ROUNDING * calls:
        largest = max(range(len(pieces)), key=lambda i: (pieces[i], -i))
        pieces[largest] += diff
        return pieces, ZERO
    return pieces, diff


def _split_group(g: _Group, list_prices: _ListPrices) -> list[tuple[Any, ...]]:
    """One group -> [(kind, quantity, unit price, list unit price, cost, list cost, contracted unit price,
    contracted cost, calls)] summing exactly to the group's stored cost and list cost."""
    comps = g.components(g.prices)
    pieces, adjustment = _fit(g.cost, [c[3] for c in comps], g.calls)
    kinds = [c[0] for c in comps]

    def other(which: int) -> list[tuple[str, Decimal, Decimal, Decimal]] | None:
        found = list_prices.for_call(g.model, g.provider, g.first_at, g.max_input, g.prices, which)
        if found is None:
            return None
        alt = g.components(found)
        return alt if [c[0] for c in alt] == kinds else None

    if g.list_cost == g.cost and adjustment == 0:
        list_units: list[Decimal | None] = [c[2] for c in comps]
        list_pieces, list_rest = list(pieces), ZERO
    elif (lcomps := other(0)) is not None:
        list_units = [c[2] for c in lcomps]
        list_pieces, list_rest = _fit(g.list_cost, [c[3] for c in lcomps], g.calls)
    else:  # no list price sheet reproduces the stored prices: list cost in proportion to the billed pieces
        weight = sum(pieces, ZERO)
        list_pieces = [g.list_cost * p / weight for p in pieces] if weight else [ZERO for _ in pieces]
        list_rest = g.list_cost - sum(list_pieces, ZERO)
        list_units = [(c[2] * g.list_cost / g.cost).normalize() if g.cost else None for c in comps]
    ccomps = other(1)
    if ccomps is not None:
        c_units = [c[2] for c in ccomps]
        c_pieces = [c[3] for c in ccomps] if g.contracted_cost is None else \
            _fit(g.contracted_cost, [c[3] for c in ccomps], g.calls)[0]
    else:
        c_units, c_pieces = [c[2] for c in comps], list(pieces)
    out = [(c[0], c[1], c[2], list_units[i], pieces[i], list_pieces[i], c_units[i], c_pieces[i], g.calls_of(c[0]))
           for i, c in enumerate(comps)]
    if adjustment or list_rest or (not comps and (g.cost or g.list_cost)):
        out.append(("adjustment", Decimal(1), adjustment, list_rest, adjustment, list_rest, adjustment, adjustment,
                    g.calls))
    return out


@dataclass
class _Accumulator:
    """A tenant's bill while the grouped rows are read."""

    charges: dict[tuple[Any, ...], Charge] = field(default_factory=dict)
    unpriced: dict[tuple[str, str], int] = field(default_factory=dict)
    unpriced_usage: dict[tuple[date, str, str], list[int]] = field(default_factory=dict)

    def add(self, g: _Group, list_prices: _ListPrices) -> None:
        if not g.priced:
            key = (g.provider, g.model)
            self.unpriced[key] = self.unpriced.get(key, 0) + g.calls
            usage = self.unpriced_usage.setdefault((g.day, g.provider, g.model), [0, 0, 0])
            usage[0] += g.calls
            usage[1] += g.input_tokens
            usage[2] += g.output_tokens
            return
        for kind, qty, unit, list_unit, piece, list_piece, c_unit, c_piece, calls in _split_group(g, list_prices):
            key = (g.day, g.pipeline, g.provider, g.model, kind, unit, list_unit, c_unit)
            charge = self.charges.get(key)
            if charge is None:
                self.charges[key] = charge = Charge(g.day, g.pipeline, g.provider, g.model, kind, unit, list_unit,
                                                    contracted_unit_price=c_unit)
            charge.quantity += qty
            charge.cost += piece
            charge.list_cost += list_piece
            charge.contracted_cost += c_piece
            if g.estimated:
                charge.estimated_cost += piece
            charge.calls += calls


def tenant_bill(tx: Tx, tenant: str, period: BillingPeriod, settings: Settings | None = None,
                book: PriceBook | None = None) -> TenantBill:
    """The bill of `tenant` for `period`, from the ledger only (the price book only splits list cost)."""
    return _bills(tx, period, settings, book, tenant)[0]


def tenant_bills(tx: Tx, period: BillingPeriod, settings: Settings | None = None,
                 book: PriceBook | None = None) -> list[TenantBill]:
    """The bill of every tenant with a non-simulated run in `period` (`report --all-tenants`): one grouped query
    for all of them, not one per tenant."""
    return _bills(tx, period, settings, book, None)


def _bills(tx: Tx, period: BillingPeriod, settings: Settings | None, book: PriceBook | None,
           tenant: str | None) -> list[TenantBill]:
    if book is None:
        from genops_cli.pricing import get_price_book

        book = get_price_book()
    where, params = _tenant_where(tenant, period)
    acc: dict[str, _Accumulator] = {}
    prices: dict[str, _ListPrices] = {}
    sources: dict[str, UsageSourceShare] = {}
    for row in tx.query(_GROUPS_SQL.format(where=where), params):
        g = _Group.from_row(row)
        acc.setdefault(g.tenant, _Accumulator()).add(g, prices.setdefault(g.tenant, _ListPrices(book, g.tenant)))
        if row[4] is not None:  # model calls: the usage-source share (measured / estimated / missing)
            share = sources.setdefault(g.tenant, UsageSourceShare())
            share.calls += g.calls
            share.cost += g.cost
            if row[7] == 1:
                share.estimated_calls += g.calls
                share.estimated_cost += g.cost
            elif row[7] == 2:
                share.missing_calls += g.calls
    # This period's runs per status and the previous period's totals, in one statement over the runs.
    prev_where, prev_params = _tenant_where(tenant, period.previous())
    runs: dict[str, list[tuple[Any, ...]]] = {}
    previous: dict[str, tuple[Decimal, int]] = {}
    for which, name, status, n, cost, low, high in tx.query(
            f"""SELECT 0, r.customer_id, r.status, COUNT(*), NULL, MIN(r.currency), MAX(r.currency) FROM runs r
                WHERE {where} GROUP BY r.customer_id, r.status
                UNION ALL
                SELECT 1, r.customer_id, NULL, COUNT(*), SUM(r.total_cost), NULL, NULL FROM runs r
                WHERE {prev_where} GROUP BY r.customer_id""", [*params, *prev_params]):
        if which == 0:
            runs.setdefault(str(name), []).append((status, n, low, high))
        else:
            previous[str(name)] = (Decimal(cost or 0), int(n or 0))
    from genops_cli.policy.budgets import effective_budgets

    budgets = {b.scope: b for b in effective_budgets(tx, settings) if b.scope.startswith("customer:")}
    names = [tenant] if tenant is not None else sorted(set(runs) | set(acc))
    return [_assemble(name, period, acc.get(name, _Accumulator()), runs.get(name, []),
                      previous.get(name, (ZERO, 0)), budgets, sources.get(name, UsageSourceShare()), settings, book)
            for name in names]


def _assemble(tenant: str, period: BillingPeriod, acc: _Accumulator, run_rows: list[tuple[Any, ...]],
              previous: tuple[Decimal, int], budgets: dict[str, Budget], sources: UsageSourceShare,
              settings: Settings | None, book: PriceBook) -> TenantBill:
    currencies = {c for row in run_rows for c in row[2:] if c}
    if len(currencies) > 1:
        raise UsageError(f"tenant {tenant}: runs in {', '.join(sorted(currencies))}; bill one currency at a time")
    ordered = sorted(acc.charges.values(), key=lambda c: (c.day, c.pipeline, c.provider, c.model,
                                                          list(KINDS).index(c.kind), c.unit_price))
    total = sum((c.cost for c in ordered), ZERO)
    return TenantBill(
        tenant=tenant,
        period=period,
        currency=next(iter(currencies), "USD"),
        total_cost=total,
        list_cost=sum((c.list_cost for c in ordered), ZERO),
        runs=sum(int(r[1]) for r in run_rows),
        runs_by_status={str(r[0]): int(r[1]) for r in sorted(run_rows)},
        charges=ordered,
        previous_period=period.previous(),
        previous_period_cost=previous[0],
        previous_period_runs=previous[1],
        budget=_budget(budgets.get(f"customer:{tenant}"), period, total),
        contract=_contract(book, tenant, period),
        unpriced=[{"provider": p, "model": m, "calls": n} for (p, m), n in sorted(acc.unpriced.items())],
        unpriced_usage=[UnpricedUsage(d, p, m, *v) for (d, p, m), v in sorted(acc.unpriced_usage.items())],
        usage_sources=sources,
    )


def _budget(budget: Budget | None, period: BillingPeriod, total: Decimal) -> dict[str, Any] | None:
    """The tenant's monthly budget (its `customer:ID` scope's budget, by the one rule of
    `policy.budgets.effective_budgets`: the ledger's over the config's) against this bill."""
    if budget is None or budget.monthly is None:
        return None
    limit = budget.monthly
    out: dict[str, Any] = {"scope": budget.scope, "period": "monthly", "limit": money_json(limit),
                           "policy": budget.policy, "source": "config" if budget.source == "config" else "ledger"}
    if period.month is not None:
        out["spent"] = money_json(total)
        out["remaining"] = money_json(limit - total)
        out["used_pct"] = format((total / limit * 100).quantize(Decimal("0.1")), "f") if limit else None
    return out


def _contract(book: PriceBook, tenant: str, period: BillingPeriod) -> dict[str, Any] | None:
    """The tenant's contract from the pricing overlays (contracted rates / resale markup), if any."""
    contracts = {c.id: c for c in book.tenants()}
    contract = contracts.get(tenant) or contracts.get("*")
    if contract is None:
        return None
    return {
        "id": contract.id,
        "label": contract.label,
        "description": contract.description,
        "markup_pct": format(contract.markup_pct, "f"),
        "discount_pct": format(contract.discount_pct, "f"),
        "active_in_period": contract.active(period.start.replace(tzinfo=timezone.utc))
        or contract.active((period.end - timedelta(microseconds=1)).replace(tzinfo=timezone.utc)),
    }


def billed_tenants(tx: Tx, period: BillingPeriod) -> list[str]:
    """Every tenant with a non-simulated run in the period (for `--all-tenants`)."""
    where, params = build_where(Filters(), period.as_period(), alias="r", simulated=False)
    rows = tx.query(f"SELECT DISTINCT r.customer_id FROM runs r WHERE {where} AND r.customer_id IS NOT NULL "
                    "ORDER BY r.customer_id", params)
    return [str(r[0]) for r in rows]


def safe_filename(tenant: str) -> str:
    """A file name for a tenant id (ids are free text)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tenant).strip("._") or "tenant"


# ------------------------------------------------------------------------------------------------ rendering


def usd(value: Decimal | str | None) -> str:
    """Money for people at the one display precision (genops_cli/money.py): `$12.500000`, `$0.000450`."""
    if value is None:
        return "-"
    return money_text(value)


@dataclass(frozen=True)
class Issuer:
    """Who issues the statement (`billing.issuer` in .genops.yml; `--issuer` overrides the name)."""

    name: str = "genops"
    address: tuple[str, ...] = ()
    logo: str | None = None  # a data: URI, or an http(s) URL, or a file path read into a data: URI
    email: str | None = None


def issuer_from_settings(settings: Settings | None, name: str | None = None) -> Issuer:
    """The issuer from `.genops.yml`:

        billing:
          issuer: {name: Acme AI Ltd, address: ["1 Main St", "London"], logo: logo.png, email: billing@acme.ai}
    """
    raw = (settings.raw if settings is not None else {}) or {}
    where = str(getattr(settings, "config_path", None) or ".genops.yml")
    section = raw.get("billing") or {}
    if not isinstance(section, dict) or not isinstance(section.get("issuer") or {}, dict):
        raise ConfigError(f"{where}: billing.issuer must be a mapping with name, address, logo, email")
    data = section.get("issuer") or {}
    unknown = sorted(set(data) - {"name", "address", "logo", "email"})
    if unknown:
        raise ConfigError(f"{where}: billing.issuer.{unknown[0]}: unknown key; use name, address, logo, email")
    address = data.get("address") or []
    if isinstance(address, str):
        address = tuple(line.strip() for line in address.splitlines() if line.strip())
    elif isinstance(address, list) and all(isinstance(a, str) for a in address):
        address = tuple(address)
    else:
        raise ConfigError(f"{where}: billing.issuer.address must be text or a list of lines")
    logo = data.get("logo")
    if logo is not None:
        logo = _logo_uri(str(logo), where, getattr(settings, "config_path", None))
    return Issuer(name=name or str(data.get("name") or "genops"), address=address, logo=logo,
                  email=str(data["email"]) if data.get("email") else None)


def _logo_uri(logo: str, where: str, config_path: Any) -> str:
    """A logo file becomes a data: URI so the HTML bill is one self-contained file."""
    import base64
    import mimetypes
    from pathlib import Path

    if logo.startswith(("data:", "https://", "http://")):
        return logo
    path = Path(logo)
    if not path.is_absolute() and config_path:
        path = Path(config_path).parent / path
    mime = mimetypes.guess_type(path.name)[0]
    if mime not in ("image/png", "image/jpeg", "image/svg+xml", "image/gif", "image/webp"):
        raise ConfigError(f"{where}: billing.issuer.logo {logo}: use a .png, .jpg, .svg, .gif or .webp file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: billing.issuer.logo {logo}: cannot read ({exc.strerror})") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def template_env() -> Any:
    """The jinja2 environment over the templates shipped in genops_cli/templates (autoescape for HTML)."""
    import jinja2
    from markupsafe import Markup

    from genops_cli.safe_output import markdown_text

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("genops_cli", "templates"),
        # Markdown reports escape HTML too: a tenant name or error message must not inject tags into a viewer.
        autoescape=jinja2.select_autoescape(["html.j2", "md.j2"]),
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["usd"] = usd
    env.filters["rate"] = unit_price_text
    env.filters["qty"] = quantity
    env.filters["unpriced_note"] = unpriced_note
    env.filters["plain"] = lambda v: _plain(Decimal(v))
    env.filters["md"] = lambda v: Markup(markdown_text(v))
    return env


def daily_chart_svg(days: list[tuple[date, Decimal]], width: int = 980, height: int = 240) -> str:
    """An inline SVG bar chart of daily cost (no scripts, no network), with a labelled y axis and dates."""
    from html import escape

    left, right, top, bottom = 86, 10, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, v in days), default=ZERO)
    scale_max = peak if peak > 0 else Decimal(1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="daily-chart" role="img" width="100%" '
             f'viewBox="0 0 {width} {height}" aria-label="Daily cost">']
    for i in range(5):  # grid lines and y labels at 0, 25, 50, 75, 100 % of the peak
        value = scale_max * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(usd(_round_label(value)))}'
                     '</text>')
    if days:
        slot = plot_w / len(days)
        bar = max(slot * 0.7, 1.0)
        every = max(1, round(len(days) / 10))
        for i, (day, value) in enumerate(days):
            h = float(value / scale_max) * plot_h if peak > 0 else 0.0
            x = left + i * slot + (slot - bar) / 2
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="#2563eb"><title>{day.isoformat()}: {escape(usd(value))}</title></rect>')
            if i % every == 0 or i == len(days) - 1:
                parts.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - 12}" text-anchor="middle">'
                             f'{day.strftime("%b %d")}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#616e7c"/>')
    parts.append("</svg>")
    return "".join(parts)


def _round_label(value: Decimal) -> Decimal:
    """Axis labels need 3 significant digits, not 10 decimals (labels only; amounts elsewhere stay exact)."""
    if value == 0:
        return ZERO
    exponent = value.adjusted() - 2
    return value.quantize(Decimal(1).scaleb(exponent)) if exponent < 0 else value.quantize(Decimal(1))


def render_bill(bill: TenantBill, fmt: str, issuer: Issuer | str = "genops") -> str:
    """The bill as `md` or `html` (jinja2 templates shipped in the package)."""
    if isinstance(issuer, str):
        issuer = Issuer(name=issuer)
    env = template_env()
    name = {"md": "tenant_report.md.j2", "html": "tenant_report.html.j2"}[fmt]
    last_day = (bill.period.end - timedelta(microseconds=1)).date().isoformat()
    return env.get_template(name).render(bill=bill, data=bill.to_json(), issuer=issuer, last_day=last_day,
                                         chart=daily_chart_svg(bill.cost_by_day()))


LINE_CSV_COLUMNS = ["tenant", "period_start", "period_end", "description", "pipeline", "provider", "model",
                    "price_kind", "quantity", "unit", "tokens", "unit_price", "list_unit_price", "cost", "list_cost",
                    "calls", "currency"]


def bill_csv_rows(bill: TenantBill) -> list[dict[str, Any]]:
    """The line items as CSV rows (money as exact decimal strings)."""
    period = bill.period.to_json()
    return [{"tenant": bill.tenant, "period_start": period["start"], "period_end": period["end"],
             **{k: v for k, v in line.to_json().items() if k in LINE_CSV_COLUMNS},
             "price_kind": line.kind, "currency": bill.currency} for line in bill.lines]
