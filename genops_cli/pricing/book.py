"""The price book: genai-prices as the base database, genops overlays on top, tenant contracts last.

Resolution for (model, provider, at, tenant), first hit wins:

1. an explicit contracted rate in the tenant's contract (`tenants:` in an overlay file),
2. overlay models (local/self-hosted, retired, batch variants, user overrides), valid at `at`,
3. genai-prices, with its own matching for dated ids and its dated/conditional prices at `at`.

The list prices found in (2) or (3) are then turned into contracted prices (tenant discount) and billed
prices (contracted + resale markup). Nothing is ever guessed: a model none of these know resolves to None and is
priced with `priced=False`.

Variants: `gpt-4o-mini@batch` (suffix on the model id) or provider `openai-batch` (suffix on the provider) ask for
the batch price; `@flex` and `@priority` likewise. A variant is priced by an overlay entry with that `variant`, or
by genai-prices' own price variant for it (OpenAI/Anthropic batch tables); never at the standard rate.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp_types

from genops_cli.models import CallRecord, TokenUsage, UnitPrices, quantize_money, utcnow
from genops_cli.money import money_json
from genops_cli.pricing.overlays import (
    ANY_PROVIDER,
    TOKEN_PRICE_FIELDS,
    VARIANTS,
    ContractRate,
    OverlayModel,
    OverlaySet,
    TenantContract,
    load_overlays,
)

#: genai-prices request context for each variant (see ModelInfo.price_variants).
VARIANT_CONTEXT: dict[str, dict[str, str]] = {
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}
_MTOK = Decimal(1_000_000)
_HUNDRED = Decimal(100)


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PriceTier:
    """A token-count tier (genai-prices TieredPrices): above `start_tokens` input tokens, all tokens of that kind
    are priced at this tier's price (cliff model, as genai-prices). Contracted/billed are None when an explicit
    contracted rate replaces tiering."""

    price_key: str
    start_tokens: int
    list_price: Decimal
    contracted_price: Decimal | None
    billed_price: Decimal | None


@dataclass(frozen=True)
class ResolvedPrice:
    """The prices that apply to one (model, provider, period, tenant).

    `unit_prices` are the billed prices (after tenant contract and markup); `list_prices` the provider's list
    prices; `contracted_prices` the list prices after the tenant's discount or contracted rate (before markup).
    Token prices are USD per 1M tokens; `per_call` / `per_second` are USD.
    """

    provider: str
    model: str
    unit_prices: UnitPrices
    list_prices: UnitPrices
    contracted_prices: UnitPrices
    source: str
    snapshot_id: str
    max_output_tokens: int | None = None
    context_window: int | None = None
    tiers: tuple[PriceTier, ...] = ()
    variant: str | None = None
    tenant: str | None = None
    contract: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    note: str | None = None

    @property
    def billed_prices(self) -> UnitPrices:
        return self.unit_prices

    def effective_prices(self, input_tokens: int) -> tuple[UnitPrices, UnitPrices, UnitPrices]:
        """(list, contracted, billed) unit prices for a call with this many input tokens (tiers applied)."""
        if not self.tiers:
            return self.list_prices, self.contracted_prices, self.unit_prices
        return (
            _apply_tiers(self.list_prices, self.tiers, input_tokens, "list_price"),
            _apply_tiers(self.contracted_prices, self.tiers, input_tokens, "contracted_price"),
            _apply_tiers(self.unit_prices, self.tiers, input_tokens, "billed_price"),
        )

    def price_usage(self, usage: TokenUsage, latency_ms: float | None = None) -> PricedUsage:
        """Price one call's usage with these prices."""
        warnings: list[str] = []
        cached = usage.cache_read_tokens + usage.cache_write_tokens
        if cached > usage.input_tokens:
            warnings.append(
                f"cache tokens ({cached}) exceed input tokens ({usage.input_tokens}); usage is not normalized "
                "(input_tokens must include cache reads and writes): uncached input counted as 0"
            )
        list_p, contracted_p, billed_p = self.effective_prices(usage.input_tokens)
        if latency_ms is None and any(p.per_second for p in (list_p, billed_p)):
            return PricedUsage.unpriced(
                self.model, self.provider,
                reason=f"{self.provider}:{self.model} is priced per second and the call has no latency",
                resolved=self,
            )
        # Without a contract or markup the three price sets are equal: the cost is computed once.
        cost = quantize_money(compute_cost(usage, billed_p, latency_ms))
        list_cost = cost if list_p == billed_p else quantize_money(compute_cost(usage, list_p, latency_ms))
        contracted_cost = (cost if contracted_p == billed_p else list_cost if contracted_p == list_p
                           else quantize_money(compute_cost(usage, contracted_p, latency_ms)))
        return PricedUsage(
            priced=True,
            cost=cost,
            list_cost=list_cost,
            contracted_cost=contracted_cost,
            unit_prices=billed_p,
            list_prices=list_p,
            snapshot_id=self.snapshot_id,
            source=self.source,
            provider=self.provider,
            model=self.model,
            warnings=tuple(warnings),
            resolved=self,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "variant": self.variant,
            "source": self.source,
            "snapshot_id": self.snapshot_id,
            "unit_prices": _prices_json(self.unit_prices),
            "list_prices": _prices_json(self.list_prices),
            "contracted_prices": _prices_json(self.contracted_prices),
            "tiers": [
                {
                    "price_key": t.price_key,
                    "above_input_tokens": t.start_tokens,
                    "list_price": _dec(t.list_price),
                    "contracted_price": _dec(t.contracted_price),
                    "billed_price": _dec(t.billed_price),
                }
                for t in self.tiers
            ],
            "tenant": self.tenant,
            "contract": self.contract,
            "max_output_tokens": self.max_output_tokens,
            "context_window": self.context_window,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class PriceDisagreement:
    """One field where an overlay entry and genai-prices differ (`genops pricing check --all`)."""

    source: str
    model: str
    provider: str
    variant: str | None
    kind: str  # price | tier | genai_missing
    field: str
    overlay: Decimal | None
    genai: Decimal | None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "provider": self.provider, "model": self.model, "variant": self.variant,
                "kind": self.kind, "field": self.field, "overlay": _dec(self.overlay), "genai_prices": _dec(self.genai)}


@dataclass(frozen=True)
class PricedUsage:
    """The price of one call. `cost` is what is billed (after contract/markup), quantized to the ledger's
    precision; `priced=False` means no price is known: `cost` is then 0 and must not be read as a price."""

    priced: bool
    cost: Decimal
    list_cost: Decimal
    contracted_cost: Decimal
    unit_prices: UnitPrices | None
    list_prices: UnitPrices | None
    snapshot_id: str | None
    source: str | None
    provider: str | None
    model: str | None
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    resolved: ResolvedPrice | None = field(default=None, repr=False, compare=False)

    @classmethod
    def unpriced(cls, model: str | None, provider: str | None, reason: str,
                 resolved: ResolvedPrice | None = None) -> PricedUsage:
        zero = quantize_money(Decimal(0))
        return cls(priced=False, cost=zero, list_cost=zero, contracted_cost=zero, unit_prices=None,
                   list_prices=None, snapshot_id=None, source=None, provider=provider, model=model, reason=reason,
                   resolved=resolved)

    def apply_to(self, call: CallRecord) -> None:
        """Write this price onto a captured call (cost, list and contracted cost, unit prices, priced, snapshot).
        An unpriced call keeps cost 0 in the ledger's NOT NULL column with `priced = false`: readers show it as
        unpriced, never as $0."""
        call.cost = self.cost
        call.list_cost = self.list_cost
        call.contracted_cost = self.contracted_cost if self.priced else None
        call.unit_prices = self.unit_prices
        call.priced = self.priced
        call.price_snapshot = self.snapshot_id
        if self.provider and not call.provider:
            call.provider = self.provider

    def to_json(self) -> dict[str, Any]:
        return {
            "priced": self.priced,
            "cost": money_json(self.cost) if self.priced else None,
            "list_cost": money_json(self.list_cost) if self.priced else None,
            "contracted_cost": money_json(self.contracted_cost) if self.priced else None,
            "unit_prices": _prices_json(self.unit_prices),
            "list_prices": _prices_json(self.list_prices),
            "snapshot_id": self.snapshot_id,
            "source": self.source,
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------- cost


def cost_components(input_tokens: int, cache_read: int, cache_write: int, output_tokens: int,
                    latency_ms: float | None, prices: UnitPrices) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The cost formula, split by price kind: (kind, quantity in pricing units, unit price, exact cost) for each
    kind the call used. Kinds: input (uncached, never negative), cached_input and cache_write (at the input price
    when the model has no cache price), output, per_call, per_second (of call latency). Token prices are per 1M
    tokens; cached tokens are counted once, at their cache rate. Bills show these lines; `compute_cost` sums them.
    """
    zero = Decimal(0)
    input_price = prices.input_mtok if prices.input_mtok is not None else zero
    read_price = prices.cache_read_mtok if prices.cache_read_mtok is not None else input_price
    write_price = prices.cache_write_mtok if prices.cache_write_mtok is not None else input_price
    output_price = prices.output_mtok if prices.output_mtok is not None else zero
    uncached = max(input_tokens - cache_read - cache_write, 0)
    out: list[tuple[str, Decimal, Decimal, Decimal]] = []
    for kind, tokens, price in (("input", uncached, input_price), ("cached_input", cache_read, read_price),
                                ("cache_write", cache_write, write_price), ("output", output_tokens, output_price)):
        if tokens:
            out.append((kind, Decimal(tokens) / _MTOK, price, Decimal(tokens) * price / _MTOK))
    if prices.per_call is not None:
        out.append(("per_call", Decimal(1), prices.per_call, prices.per_call))
    if prices.per_second is not None and latency_ms:
        seconds = Decimal(str(latency_ms)) / Decimal(1000)
        out.append(("per_second", seconds, prices.per_second, prices.per_second * seconds))
    return out


def compute_cost(usage: TokenUsage, prices: UnitPrices, latency_ms: float | None = None) -> Decimal:
    """Exact (unquantized) cost of `usage` at `prices`: the sum of `cost_components`."""
    return sum((c[3] for c in cost_components(usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                                              usage.output_tokens, latency_ms, prices)), Decimal(0))


def _apply_tiers(prices: UnitPrices, tiers: Sequence[PriceTier], input_tokens: int, attr: str) -> UnitPrices:
    updates: dict[str, Decimal] = {}
    for tier in sorted(tiers, key=lambda t: t.start_tokens):
        value = getattr(tier, attr)
        if value is not None and input_tokens > tier.start_tokens:
            updates[tier.price_key] = value
    return dataclasses.replace(prices, **updates) if updates else prices


def _clean(value: Decimal) -> Decimal:
    """Drop exponent noise from computed prices (9E+2 -> 900, 0.1350 -> 0.135)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _scale(prices: UnitPrices, factor: Decimal) -> UnitPrices:
    if factor == 1:
        return prices
    return UnitPrices(**{
        f.name: _clean(getattr(prices, f.name) * factor) if getattr(prices, f.name) is not None else None
        for f in dataclasses.fields(UnitPrices)
    })


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _prices_json(prices: UnitPrices | None) -> dict[str, str] | None:
    if prices is None:
        return None
    return {f.name: format(getattr(prices, f.name), "f") for f in dataclasses.fields(UnitPrices)
            if getattr(prices, f.name) is not None}


def _as_utc(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------- the book


@dataclass
class _Request:
    """A parsed (model, provider) with everything that does not depend on the timestamp."""

    model: str
    base: str  # lower-case model id without variant suffix
    provider: str | None  # lower-case, without variant suffix
    variant: str | None
    overlay_provider: str | None  # provider used to match overlays (given, or inferred by genai-prices)
    overlays: list[OverlayModel]
    genai: tuple[gp_types.Provider, gp_types.ModelInfo] | None


class PriceBook:
    """Resolves and applies prices. One per process: use `get_price_book()`."""

    def __init__(self, extra_dirs: Sequence[str | os.PathLike[str]] | None = None, *, use_env: bool = True,
                 include_bundled: bool = True, snapshot: data_snapshot.DataSnapshot | None = None) -> None:
        self.overlays: OverlaySet = load_overlays(extra_dirs, use_env=use_env, include_bundled=include_bundled)
        self.snapshot = snapshot or data_snapshot.get_snapshot()
        self.genai_snapshot_id = f"genai-prices@{genai_prices.__version__}"
        if self.snapshot.from_auto_update:
            self.genai_snapshot_id += "+" + self.snapshot.timestamp.strftime("%Y%m%dT%H%M%S")
        self._requests: dict[tuple[str, str | None], _Request] = {}
        self._resolved: dict[tuple[Any, ...], ResolvedPrice] = {}
        self._lock = threading.Lock()

    # -- public API ------------------------------------------------------------------------------------------

    def resolve(self, model: str, provider: str | None = None, at: datetime | None = None,
                tenant: str | None = None) -> ResolvedPrice | None:
        """The prices for `model` at `at` (default now), or None when no source knows the model."""
        if not model or not model.strip():
            return None
        when = _as_utc(at)
        req = self._request(model, provider)
        contract = self._contract(tenant, when)
        rate = self._rate(contract, req, when) if contract is not None else None

        base_key: tuple[Any, ...] | None = None
        entry = next((m for m in req.overlays if m.active(when)), None)
        genai_price: gp_types.ModelPrice | None = None
        if entry is not None:
            base_key = ("overlay", entry.source.name, entry.index)
        elif req.genai is not None:
            period = self._genai_period(req, when)
            if period is not None:
                base_key = ("genai", *period)
        if base_key is None and (rate is None or rate.prices is None):
            return None
        rate_key = (contract.label, rate.index if rate is not None else None) if contract is not None else None
        key = (req.base, req.provider, req.variant, tenant if contract is not None else None, base_key, rate_key)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        if base_key is not None and base_key[0] == "genai":
            assert req.genai is not None
            genai_price = req.genai[1].get_prices(when, VARIANT_CONTEXT[req.variant] if req.variant else None)
        resolved = self._build(req, entry, genai_price, contract, rate, tenant)
        if resolved is None:
            return None
        with self._lock:
            return self._resolved.setdefault(key, resolved)

    def price(self, usage: TokenUsage, model: str | None, provider: str | None = None, at: datetime | None = None,
              tenant: str | None = None, latency_ms: float | None = None) -> PricedUsage:
        """Price one call. Unknown models give `priced=False` (cost 0, not to be read as a price), never a guess."""
        if not model:
            return PricedUsage.unpriced(model, provider, reason="the call has no model id")
        resolved = self.resolve(model, provider, at, tenant)
        if resolved is None:
            when = _as_utc(at).date().isoformat()
            return PricedUsage.unpriced(model, provider, reason=f"no price for {provider or '?'}:{model} at {when}")
        return resolved.price_usage(usage, latency_ms)

    def price_call(self, call: CallRecord, tenant: str | None = None) -> PricedUsage | None:
        """Price a captured call in place (unit_prices, cost, priced, price_snapshot). None if not billable."""
        if not call.is_billable:
            return None
        result = self.price(call.usage, call.model, call.provider, call.started_at, tenant, call.latency_ms)
        result.apply_to(call)
        return result

    def disagreements(self, at: datetime | None = None) -> list[PriceDisagreement]:
        """Where an overlay entry active at `at` and genai-prices price the same (provider, model, variant)
        differently, field by field (tiers included), and overlay entries genai-prices has no price for."""
        when = _as_utc(at)
        out: list[PriceDisagreement] = []
        for entry in self.overlays.models:
            if not entry.active(when):
                continue
            for provider in entry.providers:
                if provider == ANY_PROVIDER:
                    continue
                out.extend(self._entry_disagreements(entry, provider, when))
        return out

    def _entry_disagreements(self, entry: OverlayModel, provider: str, when: datetime) -> list[PriceDisagreement]:
        req = self._request(entry.id + (f"@{entry.variant}" if entry.variant else ""), provider)
        where = {"source": entry.source.name, "model": entry.id, "provider": provider, "variant": entry.variant}
        genai_price = None
        if req.genai is not None and self._genai_period(req, when) is not None:
            genai_price = req.genai[1].get_prices(when, VARIANT_CONTEXT[entry.variant] if entry.variant else None)
        extracted = _extract_genai(genai_price) if genai_price is not None else None
        if extracted is None:
            return [PriceDisagreement(**where, kind="genai_missing", field="*", overlay=None, genai=None)]
        genai_prices, genai_tiers, _ignored = extracted
        out = [PriceDisagreement(**where, kind="price", field=f, overlay=getattr(entry.prices, f),
                                 genai=getattr(genai_prices, f))
               for f in TOKEN_PRICE_FIELDS + ("per_call",)
               if getattr(entry.prices, f) != getattr(genai_prices, f)]
        mine = {(k, start): getattr(prices, k) for start, prices in entry.tiers for k in TOKEN_PRICE_FIELDS
                if getattr(prices, k) is not None}
        theirs = {(k, start): price for k, start, price in genai_tiers}
        for key, start in sorted(set(mine) | set(theirs)):
            if mine.get((key, start)) != theirs.get((key, start)):
                out.append(PriceDisagreement(**where, kind="tier", field=f"{key} above {start} input tokens",
                                             overlay=mine.get((key, start)), genai=theirs.get((key, start))))
        return out

    def is_known(self, model: str, provider: str | None = None, at: datetime | None = None) -> bool:
        return self.resolve(model, provider, at) is not None

    def providers(self) -> list[str]:
        """Provider ids known to genai-prices and to the overlays."""
        ids = {p.id for p in self.snapshot.providers}
        for m in self.overlays.models:
            ids.update(p for p in m.providers if p != ANY_PROVIDER)
        return sorted(ids)

    def list_models(self, provider: str | None = None, at: datetime | None = None) -> list[ResolvedPrice]:
        """Current list prices of every model (overlays first, then genai-prices), optionally for one provider."""
        when = _as_utc(at)
        prov = provider.strip().lower() if provider else None
        out: list[ResolvedPrice] = []
        seen: set[tuple[str, str]] = set()
        for entry in self.overlays.models:
            if not entry.active(when):
                continue
            for p in entry.providers:
                if prov is not None and p not in (prov, ANY_PROVIDER):
                    continue
                shown = prov if p == ANY_PROVIDER and prov else p
                req = _Request(model=entry.id, base=entry.id.lower(), provider=shown, variant=entry.variant,
                               overlay_provider=shown, overlays=[entry], genai=None)
                rp = self._build(req, entry, None, None, None, None)
                if rp is not None and (rp.provider, rp.model) not in seen:
                    seen.add((rp.provider, rp.model))
                    out.append(rp)
        for gp in self.snapshot.providers:
            if prov is not None and gp.id != prov:
                continue
            for info in gp.models:
                req = _Request(model=info.id, base=info.id, provider=gp.id, variant=None, overlay_provider=gp.id,
                               overlays=[], genai=(gp, info))
                rp = self._build(req, None, info.get_prices(when), None, None, None)
                if rp is not None and (rp.provider, rp.model) not in seen:
                    seen.add((rp.provider, rp.model))
                    out.append(rp)
        return out

    def tenants(self) -> list[TenantContract]:
        return list(self.overlays.tenants.values())

    # -- internals -------------------------------------------------------------------------------------------

    def _request(self, model: str, provider: str | None) -> _Request:
        key = (model, provider)
        req = self._requests.get(key)
        if req is not None:
            return req
        name = model.strip()
        variant: str | None = None
        head, sep, tail = name.rpartition("@")
        if sep and tail.lower() in VARIANTS and head:
            name, variant = head, tail.lower()
        prov = provider.strip().lower() if provider and provider.strip() else None
        if prov is not None:
            for v in VARIANTS:
                if prov.endswith("-" + v) and len(prov) > len(v) + 1:
                    prov = prov[: -(len(v) + 1)]
                    variant = variant or v
        base = name.lower()
        genai: tuple[gp_types.Provider, gp_types.ModelInfo] | None
        try:
            genai = self.snapshot.find_provider_model(base, None, prov, None)
        except LookupError:
            genai = None
        overlay_provider = prov
        if overlay_provider is None:
            # genai-prices' own provider rules (e.g. "claude" -> anthropic); never a guess of ours.
            if genai is not None:
                overlay_provider = genai[0].id
            else:
                try:
                    overlay_provider = self.snapshot.find_provider(base, None, None).id
                except LookupError:
                    overlay_provider = None
        overlays = [m for m in self.overlays.models if m.matches(base, overlay_provider, variant)]
        req = _Request(model=model, base=base, provider=prov, variant=variant, overlay_provider=overlay_provider,
                       overlays=overlays, genai=genai)
        with self._lock:
            return self._requests.setdefault(key, req)

    def _genai_period(self, req: _Request, when: datetime) -> tuple[Any, ...] | None:
        """Which genai-prices price applies at `when`: (conditional price index, active variant indexes)."""
        assert req.genai is not None
        gp, info = req.genai
        if isinstance(info.prices, gp_types.ModelPrice):
            index = -1
        else:
            index = 0
            for i in range(len(info.prices) - 1, -1, -1):
                constraint = info.prices[i].constraint
                if constraint is None or constraint.active(when):
                    index = i
                    break
        if req.variant is None:
            return (index, ())
        # A variant needs genai-prices' own variant price; models reached through a provider fallback
        # (e.g. azure -> openai) do not get the fallback provider's variants, as in genai-prices.
        if not any(info is m for m in gp.models):
            return None
        context = VARIANT_CONTEXT[req.variant]
        active = tuple(
            i for i, v in enumerate(info.price_variants or ())
            if (v.constraint is None or v.constraint.active(when))
            and all(context.get(k) == x for k, x in v.when.items())
        )
        return (index, active) if active else None

    def _contract(self, tenant: str | None, when: datetime) -> TenantContract | None:
        if not tenant:
            return None
        contract = self.overlays.tenants.get(tenant) or self.overlays.tenants.get("*")
        if contract is None or not contract.active(when):
            return None
        return contract

    def _rate(self, contract: TenantContract, req: _Request, when: datetime) -> ContractRate | None:
        names = [req.base]
        if req.genai is not None:
            names.append(req.genai[1].id)
        names.extend(m.id.lower() for m in req.overlays)
        provider = req.provider or req.overlay_provider
        for rate in contract.rates:
            if rate.active(when) and rate.matches(names, provider, req.variant):
                return rate
        return None

    def _limits(self, names: list[str], provider: str | None) -> tuple[int | None, int | None]:
        max_out: int | None = None
        context: int | None = None
        for rule in self.overlays.limits:
            if rule.matches(names, provider):
                if max_out is None:
                    max_out = rule.max_output_tokens
                if context is None:
                    context = rule.context_window
            if max_out is not None and context is not None:
                break
        return max_out, context

    def _build(self, req: _Request, entry: OverlayModel | None, genai_price: gp_types.ModelPrice | None,
               contract: TenantContract | None, rate: ContractRate | None, tenant: str | None) -> ResolvedPrice | None:
        base = self._base(req, entry, genai_price, contract, rate)
        if base is None:
            return None
        lim_out, lim_ctx = self._limits([base.canonical.lower(), req.base], base.provider)
        terms = _Terms.of(base, contract, rate)
        price_tiers = tuple(
            PriceTier(
                price_key=key,
                start_tokens=start,
                list_price=price,
                contracted_price=None if terms.explicit else _clean(price * (_HUNDRED - terms.discount) / _HUNDRED),
                billed_price=None if terms.explicit else _clean(
                    price * (_HUNDRED - terms.discount) / _HUNDRED * (_HUNDRED + terms.markup) / _HUNDRED),
            )
            for key, start, price in base.tiers
        )
        return ResolvedPrice(
            provider=base.provider,
            model=f"{base.canonical}@{req.variant}" if req.variant else base.canonical,
            unit_prices=terms.billed,
            list_prices=base.list_prices,
            contracted_prices=terms.contracted,
            source=terms.source,
            snapshot_id=terms.snapshot_id,
            max_output_tokens=base.max_out if base.max_out is not None else lim_out,
            context_window=base.context_window if base.context_window is not None else lim_ctx,
            tiers=price_tiers,
            variant=req.variant,
            tenant=tenant if contract is not None else None,
            contract=terms.label,
            valid_from=base.valid_from,
            valid_until=base.valid_until,
            note=base.note,
        )

    def _base(self, req: _Request, entry: OverlayModel | None, genai_price: gp_types.ModelPrice | None,
              contract: TenantContract | None, rate: ContractRate | None) -> _Base | None:
        """The list price and where it comes from: an overlay entry, genai-prices, or only the tenant's contract."""
        if entry is not None:
            context_window = entry.context_window
            if context_window is None and req.genai is not None:
                context_window = req.genai[1].context_window
            return _Base(
                list_prices=entry.prices, provider=req.provider or req.overlay_provider or entry.providers[0],
                canonical=entry.id if entry.report_as == "id" else _requested_id(req),
                source=entry.source.source, snapshot_id=entry.source.snapshot_id, valid_from=entry.valid_from,
                valid_until=entry.valid_until, context_window=context_window, max_out=entry.max_output_tokens,
                note=entry.note, tiers=[(key, start, getattr(prices, key)) for start, prices in entry.tiers
                                        for key in TOKEN_PRICE_FIELDS if getattr(prices, key) is not None])
        if genai_price is not None and req.genai is not None:
            gp, info = req.genai
            extracted = _extract_genai(genai_price)
            if extracted is None:
                return None
            list_prices, tiers, ignored = extracted
            return _Base(list_prices=list_prices, provider=gp.id, canonical=info.id, source="genai-prices",
                         snapshot_id=self.genai_snapshot_id, context_window=info.context_window, tiers=tiers,
                         note="not applied (usage has no such units): " + ", ".join(ignored) if ignored else None)
        if rate is not None and rate.prices is not None and contract is not None:
            # Known only through the tenant's contract: the contracted rate is also its list price.
            return _Base(list_prices=rate.prices, provider=req.provider or req.overlay_provider or "?",
                         canonical=_requested_id(req), source=contract.source.source,
                         snapshot_id=contract.source.snapshot_id)
        return None


@dataclass
class _Base:
    """A model's list price before any tenant contract."""

    list_prices: UnitPrices
    provider: str
    canonical: str
    source: str
    snapshot_id: str | None
    valid_from: Any = None
    valid_until: Any = None
    context_window: int | None = None
    max_out: int | None = None
    note: str | None = None
    tiers: list[tuple[str, int, Decimal]] = field(default_factory=list)


@dataclass
class _Terms:
    """A tenant contract applied to a list price: contracted = explicit rate or list - discount; billed =
    contracted + markup."""

    contracted: UnitPrices
    billed: UnitPrices
    source: str
    snapshot_id: str | None
    label: str | None = None
    discount: Decimal = Decimal(0)
    markup: Decimal = Decimal(0)
    explicit: bool = False

    @classmethod
    def of(cls, base: _Base, contract: TenantContract | None, rate: ContractRate | None) -> _Terms:
        terms = cls(base.list_prices, base.list_prices, base.source, base.snapshot_id)
        if contract is None:
            return terms
        terms.label = contract.label
        terms.markup = rate.markup_pct if rate is not None and rate.markup_pct is not None else contract.markup_pct
        if rate is not None and rate.prices is not None:
            terms.contracted, terms.explicit = rate.prices, True
            terms.source = contract.source.source
        else:
            terms.discount = rate.discount_pct if rate is not None and rate.discount_pct is not None \
                else contract.discount_pct
            terms.contracted = _scale(base.list_prices, (_HUNDRED - terms.discount) / _HUNDRED)
        terms.billed = _scale(terms.contracted, (_HUNDRED + terms.markup) / _HUNDRED)
        if base.snapshot_id != contract.source.snapshot_id:
            terms.snapshot_id = (f"{base.snapshot_id}+contract:{contract.source.name}@"
                                 f"{contract.source.sha256[:12]}")
        return terms


def _requested_id(req: _Request) -> str:
    name = req.model.strip()
    return name.rsplit("@", 1)[0] if req.variant and name.lower().endswith("@" + req.variant) else name


_Extracted = tuple[UnitPrices, list[tuple[str, int, Decimal]], list[str]]


#: genai-prices stores some prices as floats turned into Decimal (1.0399999999999998 for 1.04): prices are taken
#: to 1e-9 USD per 1M tokens (1e-15 per token), far below any real price step, before they reach a ledger.
PRICE_QUANTUM = Decimal("1E-9")


def quantize_price(value: Decimal) -> Decimal:
    """A genai-prices unit price without float artefacts: 1.0399999999999998 -> 1.04, 0.18000000000000002 -> 0.18."""
    return _clean(value.quantize(PRICE_QUANTUM))


def _extract_genai(model_price: gp_types.ModelPrice) -> _Extracted | None:
    """Unit prices, tiers and ignored price keys of a genai-prices ModelPrice; None if it has no token prices."""
    values: dict[str, Decimal] = {}
    tiers: list[tuple[str, int, Decimal]] = []
    ignored: list[str] = []
    for key, value in model_price.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        if key in TOKEN_PRICE_FIELDS:
            if isinstance(value, gp_types.TieredPrices):
                values[key] = quantize_price(value.base)
                tiers.extend((key, tier.start, quantize_price(tier.price)) for tier in value.tiers)
            else:
                values[key] = quantize_price(value)
        elif key == "requests_kcount" and not isinstance(value, gp_types.TieredPrices):
            values["per_call"] = quantize_price(value / Decimal(1000))
        else:
            ignored.append(key)
    if not any(k in values for k in ("input_mtok", "output_mtok", "per_call")):
        return None
    return UnitPrices(**values), tiers, ignored


# ---------------------------------------------------------------------------------------------- singleton

_BOOK: PriceBook | None = None
_BOOK_LOCK = threading.Lock()


def get_price_book() -> PriceBook:
    """The process-wide price book (bundled overlays + GENOPS_PRICING_DIR), built on first use."""
    global _BOOK
    if _BOOK is None:
        with _BOOK_LOCK:
            if _BOOK is None:
                _BOOK = PriceBook()
    return _BOOK


def reset_price_book() -> None:
    """Forget the process-wide price book (tests, or after changing GENOPS_PRICING_DIR)."""
    global _BOOK
    with _BOOK_LOCK:
        _BOOK = None
