"""Price-book overlays: YAML files that add what genai-prices lacks.

An overlay file is a YAML mapping with up to three sections (all optional):

    models:    priced models (local and self-hosted, retired, batch variants, explicit overrides)
    limits:    max_output_tokens / context_window for models (genai-prices has no output limits)
    tenants:   contracted rates and resale markup per tenant (customer id)

The format is documented at the top of every bundled file in the repository's `pricing/` folder. Files are
validated when loaded: a bad file raises `ConfigError` naming the file, the entry and the field.

Where overlay files come from, highest precedence first:

1. `extra_dirs` passed to `PriceBook` / `load_overlays`,
2. the directories in `GENOPS_PRICING_DIR` (separated by the OS path separator, ':' on POSIX),
3. the bundled files (`genops_cli.pricing_overlays`, i.e. the repository's `pricing/` folder).

A user file with the same name as a lower-precedence file replaces it entirely (e.g. your own `contracts.yml`).
Inside each directory files are read in alphabetical order; the first matching entry wins.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from genops_cli.errors import ConfigError
from genops_cli.models import UnitPrices

ENV_PRICING_DIR = "GENOPS_PRICING_DIR"
PRICE_FIELDS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "per_call", "per_second")
TOKEN_PRICE_FIELDS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")
#: Variants a model id (`gpt-4o-mini@batch`) or a provider (`openai-batch`) can name.
VARIANTS = ("batch", "flex", "priority")
ANY_PROVIDER = "*"
MATCH_KINDS = ("equals", "starts_with", "ends_with", "contains", "regex")

_TOP_KEYS = {"version", "models", "limits", "tenants"}
_MODEL_KEYS = {
    "id", "provider", "match", "exclude", "variant", "prices", "valid_from", "valid_until",
    "context_window", "max_output_tokens", "note", "report_as", "tiers",
}
_LIMIT_KEYS = {"model", "provider", "match", "exclude", "max_output_tokens", "context_window", "note"}
_TENANT_KEYS = {"description", "markup_pct", "discount_pct", "valid_from", "valid_until", "rates"}
_RATE_KEYS = {
    "provider", "model", "match", "exclude", "variant", "discount_pct", "markup_pct", "prices",
    "valid_from", "valid_until", "note",
}


# ---------------------------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class MatchRule:
    """Any-of clauses matched case-insensitively against a model id."""

    clauses: tuple[tuple[str, Any], ...]

    def matches(self, text: str) -> bool:
        text = text.lower()
        for kind, value in self.clauses:
            if kind == "equals" and text == value:
                return True
            if kind == "starts_with" and text.startswith(value):
                return True
            if kind == "ends_with" and text.endswith(value):
                return True
            if kind == "contains" and value in text:
                return True
            if kind == "regex" and value.search(text):
                return True
        return False

    def describe(self) -> str:
        parts = []
        for kind, value in self.clauses:
            shown = value.pattern if kind == "regex" else value
            parts.append(f"{kind} {shown!r}")
        return " or ".join(parts)


@dataclass(frozen=True)
class OverlaySource:
    """One overlay file, identified by name and content hash (the price snapshot id)."""

    name: str
    path: Path
    sha256: str

    @property
    def source(self) -> str:
        return f"overlay:{self.name}"

    @property
    def snapshot_id(self) -> str:
        return f"overlay:{self.name}@{self.sha256[:12]}"


def _providers_match(providers: tuple[str, ...], provider: str | None) -> bool:
    if not providers or ANY_PROVIDER in providers:
        return True
    return provider is not None and provider in providers


def _active(valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> bool:
    if valid_from is not None and at < valid_from:
        return False
    return valid_until is None or at < valid_until


@dataclass(frozen=True)
class OverlayModel:
    """A priced model from an overlay `models:` entry."""

    id: str
    providers: tuple[str, ...]
    match: MatchRule
    prices: UnitPrices
    source: OverlaySource
    index: int
    exclude: MatchRule | None = None
    variant: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    note: str | None = None
    report_as: str = "id"
    #: (above_input_tokens, prices): a call with more input tokens (cache included) pays these prices for all
    #: its tokens of each kind listed (the providers' long-context "cliff" pricing).
    tiers: tuple[tuple[int, UnitPrices], ...] = ()

    def matches(self, model: str, provider: str | None, variant: str | None) -> bool:
        if variant != self.variant or not _providers_match(self.providers, provider):
            return False
        return self.match.matches(model) and not (self.exclude is not None and self.exclude.matches(model))

    def active(self, at: datetime) -> bool:
        return _active(self.valid_from, self.valid_until, at)


@dataclass(frozen=True)
class LimitRule:
    """Output / context limits for models matched by a `limits:` entry."""

    providers: tuple[str, ...]
    match: MatchRule
    source: OverlaySource
    index: int
    exclude: MatchRule | None = None
    max_output_tokens: int | None = None
    context_window: int | None = None

    def matches(self, names: Iterable[str], provider: str | None) -> bool:
        if not _providers_match(self.providers, provider):
            return False
        return any(self.match.matches(n) and not (self.exclude is not None and self.exclude.matches(n)) for n in names)


@dataclass(frozen=True)
class ContractRate:
    """One rule of a tenant contract: a discount on list prices or an explicit contracted rate."""

    providers: tuple[str, ...]
    index: int
    match: MatchRule | None = None
    exclude: MatchRule | None = None
    variant: str | None = None
    discount_pct: Decimal | None = None
    markup_pct: Decimal | None = None
    prices: UnitPrices | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def matches(self, names: Iterable[str], provider: str | None, variant: str | None) -> bool:
        if not _providers_match(self.providers, provider):
            return False
        # Explicit rates are for one variant (standard unless `variant` is set); discounts apply to every variant.
        if (self.prices is not None or self.variant is not None) and variant != self.variant:
            return False
        if self.match is None:
            return True
        return any(self.match.matches(n) and not (self.exclude is not None and self.exclude.matches(n)) for n in names)

    def active(self, at: datetime) -> bool:
        return _active(self.valid_from, self.valid_until, at)


@dataclass(frozen=True)
class TenantContract:
    """Contracted rates and resale markup for one tenant (customer id); `*` is the default for all tenants."""

    id: str
    source: OverlaySource
    rates: tuple[ContractRate, ...] = ()
    description: str | None = None
    markup_pct: Decimal = Decimal(0)
    discount_pct: Decimal = Decimal(0)
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def active(self, at: datetime) -> bool:
        return _active(self.valid_from, self.valid_until, at)

    @property
    def label(self) -> str:
        return f"{self.source.name}:{self.id}"


@dataclass
class OverlaySet:
    """Everything loaded from the overlay files, in precedence order."""

    models: list[OverlayModel] = field(default_factory=list)
    limits: list[LimitRule] = field(default_factory=list)
    tenants: dict[str, TenantContract] = field(default_factory=dict)
    sources: list[OverlaySource] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- locations


def bundled_overlay_dir() -> Path:
    """The bundled overlay folder: package data `genops_cli.pricing_overlays`, or the checkout's `pricing/`."""
    # The folder has no __init__.py, so in a wheel it is a namespace package: importlib.resources.files() gives a
    # MultiplexedPath there (not a filesystem path), hence the spec's search locations first.
    try:
        spec = importlib.util.find_spec("genops_cli.pricing_overlays")
    except (ModuleNotFoundError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location)
        if path.is_dir() and any(path.glob("*.yml")):
            return path
    try:
        resource = importlib.resources.files("genops_cli.pricing_overlays")
        if isinstance(resource, os.PathLike):
            path = Path(resource)
            if path.is_dir() and any(path.glob("*.yml")):
                return path
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    # Editable installs cannot always map a package-dir without __init__.py: use the repository folder.
    return Path(__file__).resolve().parent.parent.parent / "pricing"


def overlay_dirs(extra_dirs: Sequence[str | os.PathLike[str]] | None = None, *, use_env: bool = True,
                 include_bundled: bool = True) -> list[Path]:
    """Overlay directories, highest precedence first."""
    dirs: list[Path] = []
    for d in extra_dirs or ():
        path = Path(d).expanduser()
        if not path.is_dir():
            raise ConfigError(f"pricing overlay directory {str(path)!r} does not exist (extra_dirs)")
        dirs.append(path)
    if use_env and os.environ.get(ENV_PRICING_DIR):
        for d in os.environ[ENV_PRICING_DIR].split(os.pathsep):
            if not d.strip():
                continue
            path = Path(d.strip()).expanduser()
            if not path.is_dir():
                raise ConfigError(f"{ENV_PRICING_DIR}: pricing overlay directory {str(path)!r} does not exist")
            dirs.append(path)
    if include_bundled:
        bundled = bundled_overlay_dir()
        if bundled.is_dir():
            dirs.append(bundled)
    return dirs


def overlay_files(dirs: Sequence[Path]) -> list[Path]:
    """The files to read, highest precedence first; a name seen in an earlier dir hides later ones."""
    seen: set[str] = set()
    files: list[Path] = []
    for d in dirs:
        for path in sorted([*d.glob("*.yml"), *d.glob("*.yaml")], key=lambda p: p.name):
            if path.name in seen:
                continue
            seen.add(path.name)
            files.append(path)
    return files


def load_overlays(extra_dirs: Sequence[str | os.PathLike[str]] | None = None, *, use_env: bool = True,
                  include_bundled: bool = True) -> OverlaySet:
    """Load and validate every overlay file (see the module docstring for the precedence)."""
    out = OverlaySet()
    for path in overlay_files(overlay_dirs(extra_dirs, use_env=use_env, include_bundled=include_bundled)):
        load_overlay_file(path, into=out)
    return out


# ---------------------------------------------------------------------------------------------- parsing


class _Ctx:
    def __init__(self, path: Path, section: str, index: int, ident: str | None) -> None:
        self.path, self.section, self.index, self.ident = path, section, index, ident

    def fail(self, fld: str, problem: str) -> ConfigError:
        entry = f"{self.section}[{self.index}]" if self.index >= 0 else self.section
        if self.ident:
            entry += f" ({self.ident!r})"
        return ConfigError(f"{self.path}: {entry}: field {fld!r}: {problem}")


def load_overlay_file(path: Path, *, into: OverlaySet | None = None) -> OverlaySet:
    """Parse and validate one overlay file; entries are appended to `into` (or a new set)."""
    out = into if into is not None else OverlaySet()
    from genops_cli.safe_load import decode, parse_yaml, read_bytes

    # Size, alias expansion and depth bounded; a key repeated in one entry is an error naming its line.
    raw_bytes = read_bytes(path, "overlay", ConfigError)
    data = parse_yaml(decode(raw_bytes, str(path), ConfigError), str(path), "overlay", ConfigError, strict_keys=True)
    source = OverlaySource(name=path.name, path=path, sha256=hashlib.sha256(raw_bytes).hexdigest())
    out.sources.append(source)
    if data is None:
        return out
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a pricing overlay must be a mapping with 'models', 'limits' or 'tenants'")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(map(str, unknown))}; "
                          f"expected {sorted(_TOP_KEYS)}")

    for i, entry in enumerate(_as_list(data.get("models"), path, "models")):
        out.models.append(_parse_model(entry, _Ctx(path, "models", i, _ident(entry, "id")), source, i))
    for i, entry in enumerate(_as_list(data.get("limits"), path, "limits")):
        out.limits.append(_parse_limit(entry, _Ctx(path, "limits", i, _ident(entry, "model")), source, i))
    tenants = data.get("tenants")
    if tenants is not None:
        if not isinstance(tenants, Mapping):
            raise ConfigError(f"{path}: 'tenants' must be a mapping of tenant id to contract")
        for tenant_id, entry in tenants.items():
            contract = _parse_tenant(str(tenant_id), entry, path, source)
            out.tenants.setdefault(contract.id, contract)  # earlier (higher-precedence) files win
    return out


def _ident(entry: Any, key: str) -> str | None:
    if isinstance(entry, Mapping) and entry.get(key) is not None:
        return str(entry[key])
    return None


def _as_list(value: Any, path: Path, section: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: '{section}' must be a list of entries")
    return value


def _check_keys(entry: Any, allowed: set[str], ctx: _Ctx) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise ctx.fail("-", "entry must be a mapping")
    unknown = sorted(str(k) for k in set(entry) - allowed)
    if unknown:
        raise ctx.fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(allowed))}")
    return entry


def _str(entry: Mapping[str, Any], key: str, ctx: _Ctx, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise ctx.fail(key, "is required")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value).strip() == "":
        raise ctx.fail(key, f"expected a non-empty string, got {value!r}")
    return str(value).strip()


def _providers(entry: Mapping[str, Any], ctx: _Ctx, *, required: bool) -> tuple[str, ...]:
    value = entry.get("provider")
    if value is None:
        if required:
            raise ctx.fail("provider", f"is required (a provider id, a list of ids, or {ANY_PROVIDER!r})")
        return ()
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise ctx.fail("provider", f"expected a provider id or a list of ids, got {value!r}")
        out.append(v.strip().lower())
    return tuple(out)


def _match(value: Any, ctx: _Ctx, fld: str) -> MatchRule:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ctx.fail(fld, "must not be empty")
    clauses: list[tuple[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            clauses.append(("equals", item.strip().lower()))
            continue
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ctx.fail(fld, f"expected one of {{{', '.join(MATCH_KINDS)}}}: <text> (or a list of them), "
                                f"got {item!r}")
        kind, text = next(iter(item.items()))
        if kind not in MATCH_KINDS:
            raise ctx.fail(fld, f"unknown match kind {kind!r}; expected one of {', '.join(MATCH_KINDS)}")
        if not isinstance(text, str) or not text:
            raise ctx.fail(fld, f"{kind}: expected a non-empty string, got {text!r}")
        if kind == "regex":
            try:
                clauses.append((kind, re.compile(text, re.IGNORECASE)))
            except re.error as exc:
                raise ctx.fail(fld, f"invalid regex {text!r}: {exc}") from exc
        else:
            clauses.append((kind, text.lower()))
    return MatchRule(tuple(clauses))


def _decimal(value: Any, ctx: _Ctx, fld: str, *, maximum: Decimal | None = None) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ctx.fail(fld, f"expected a non-negative number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ctx.fail(fld, f"expected a non-negative number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ctx.fail(fld, f"expected a non-negative number, got {value!r}")
    if maximum is not None and number > maximum:
        raise ctx.fail(fld, f"must be at most {maximum}, got {value!r}")
    return number


def _pct(entry: Mapping[str, Any], key: str, ctx: _Ctx, *, maximum: Decimal | None) -> Decimal | None:
    if entry.get(key) is None:
        return None
    return _decimal(entry[key], ctx, key, maximum=maximum)


def _prices(value: Any, ctx: _Ctx, fld: str = "prices") -> UnitPrices:
    if not isinstance(value, Mapping) or not value:
        raise ctx.fail(fld, f"expected a mapping of {', '.join(PRICE_FIELDS)} (USD per 1M tokens / per call / "
                            f"per second)")
    parsed: dict[str, Decimal] = {}
    for key, raw in value.items():
        if key not in PRICE_FIELDS:
            raise ctx.fail(f"{fld}.{key}", f"unknown price key; expected one of {', '.join(PRICE_FIELDS)}")
        if raw is None:
            continue
        parsed[key] = _decimal(raw, ctx, f"{fld}.{key}")
    if not parsed:
        raise ctx.fail(fld, "at least one price is required")
    return UnitPrices(**parsed)


def _when(entry: Mapping[str, Any], key: str, ctx: _Ctx) -> datetime | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            return parse_when(value)
        except ValueError:
            pass
    raise ctx.fail(key, f"expected a date (YYYY-MM-DD) or an ISO timestamp, got {value!r}")


def parse_when(value: str) -> datetime:
    """Parse `YYYY-MM-DD` or an ISO timestamp into a UTC datetime (naive means UTC)."""
    text = value.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _validity(entry: Mapping[str, Any], ctx: _Ctx) -> tuple[datetime | None, datetime | None]:
    valid_from, valid_until = _when(entry, "valid_from", ctx), _when(entry, "valid_until", ctx)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ctx.fail("valid_until", "must be after valid_from")
    return valid_from, valid_until


def _int(entry: Mapping[str, Any], key: str, ctx: _Ctx) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ctx.fail(key, f"expected a positive integer, got {value!r}")
    return value


def _variant(entry: Mapping[str, Any], ctx: _Ctx) -> str | None:
    value = entry.get("variant")
    if value is None:
        return None
    if value not in VARIANTS:
        raise ctx.fail("variant", f"expected one of {', '.join(VARIANTS)}, got {value!r}")
    return str(value)


def _parse_model(entry: Any, ctx: _Ctx, source: OverlaySource, index: int) -> OverlayModel:
    entry = _check_keys(entry, _MODEL_KEYS, ctx)
    model_id = _str(entry, "id", ctx, required=True)
    assert model_id is not None
    if "@" in model_id and model_id.rsplit("@", 1)[1].lower() in VARIANTS:
        raise ctx.fail("id", f"write the base id and `variant: {model_id.rsplit('@', 1)[1]}` instead of {model_id!r}")
    match = _match(entry["match"], ctx, "match") if entry.get("match") is not None else _match(model_id, ctx, "id")
    exclude = _match(entry["exclude"], ctx, "exclude") if entry.get("exclude") is not None else None
    if "prices" not in entry:
        raise ctx.fail("prices", "is required")
    valid_from, valid_until = _validity(entry, ctx)
    return OverlayModel(
        id=model_id,
        providers=_providers(entry, ctx, required=True),
        match=match,
        exclude=exclude,
        variant=_variant(entry, ctx),
        prices=_prices(entry["prices"], ctx),
        valid_from=valid_from,
        valid_until=valid_until,
        context_window=_int(entry, "context_window", ctx),
        max_output_tokens=_int(entry, "max_output_tokens", ctx),
        note=_str(entry, "note", ctx),
        report_as=_report_as(entry, ctx),
        tiers=_tiers(entry.get("tiers"), ctx),
        source=source,
        index=index,
    )


def _tiers(value: Any, ctx: _Ctx) -> tuple[tuple[int, UnitPrices], ...]:
    """`tiers: [{above_input_tokens: 200000, prices: {input_mtok: "6", ...}}]` (token prices only)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ctx.fail("tiers", "expected a list of {above_input_tokens: N, prices: {...}}")
    out = []
    for i, tier in enumerate(value):
        where = f"tiers[{i}]"
        if not isinstance(tier, Mapping) or set(tier) != {"above_input_tokens", "prices"}:
            raise ctx.fail(where, "expected exactly above_input_tokens and prices")
        start = tier["above_input_tokens"]
        if isinstance(start, bool) or not isinstance(start, int) or start <= 0:
            raise ctx.fail(f"{where}.above_input_tokens", f"expected a positive integer, got {start!r}")
        prices = _prices(tier["prices"], ctx, f"{where}.prices")
        if prices.per_call is not None or prices.per_second is not None:
            raise ctx.fail(f"{where}.prices", "tiers hold token prices only (input/cache/output per 1M tokens)")
        out.append((start, prices))
    return tuple(sorted(out, key=lambda t: t[0]))


def _report_as(entry: Mapping[str, Any], ctx: _Ctx) -> str:
    value = entry.get("report_as", "id")
    if value not in ("id", "requested"):
        raise ctx.fail("report_as", f"expected 'id' or 'requested', got {value!r}")
    return str(value)


def _parse_limit(entry: Any, ctx: _Ctx, source: OverlaySource, index: int) -> LimitRule:
    entry = _check_keys(entry, _LIMIT_KEYS, ctx)
    if entry.get("match") is not None:
        match = _match(entry["match"], ctx, "match")
    elif entry.get("model") is not None:
        match = _match(_str(entry, "model", ctx), ctx, "model")
    else:
        raise ctx.fail("model", "a limits entry needs 'model' or 'match'")
    rule = LimitRule(
        providers=_providers(entry, ctx, required=False),
        match=match,
        exclude=_match(entry["exclude"], ctx, "exclude") if entry.get("exclude") is not None else None,
        max_output_tokens=_int(entry, "max_output_tokens", ctx),
        context_window=_int(entry, "context_window", ctx),
        source=source,
        index=index,
    )
    if rule.max_output_tokens is None and rule.context_window is None:
        raise ctx.fail("max_output_tokens", "a limits entry needs max_output_tokens or context_window")
    return rule


def _parse_tenant(tenant_id: str, entry: Any, path: Path, source: OverlaySource) -> TenantContract:
    ctx = _Ctx(path, "tenants", -1, tenant_id)
    if entry is None:
        entry = {}
    entry = _check_keys(entry, _TENANT_KEYS, ctx)
    valid_from, valid_until = _validity(entry, ctx)
    rates_raw = entry.get("rates") or []
    if not isinstance(rates_raw, list):
        raise ctx.fail("rates", "expected a list of rate rules")
    rates = []
    for i, raw in enumerate(rates_raw):
        rctx = _Ctx(path, f"tenants.{tenant_id}.rates", i, _ident(raw, "model"))
        raw = _check_keys(raw, _RATE_KEYS, rctx)
        if raw.get("match") is not None:
            match: MatchRule | None = _match(raw["match"], rctx, "match")
        elif raw.get("model") is not None:
            match = _match(_str(raw, "model", rctx), rctx, "model")
        else:
            match = None
        discount = _pct(raw, "discount_pct", rctx, maximum=Decimal(100))
        prices = _prices(raw["prices"], rctx) if raw.get("prices") is not None else None
        if discount is None and prices is None and raw.get("markup_pct") is None:
            raise rctx.fail("discount_pct", "a rate rule needs discount_pct, prices or markup_pct")
        if discount is not None and prices is not None:
            raise rctx.fail("prices", "use either discount_pct or prices in one rule, not both")
        if prices is not None and match is None:
            raise rctx.fail("model", "explicit contracted prices need 'model' or 'match'")
        r_from, r_until = _validity(raw, rctx)
        rates.append(ContractRate(
            providers=_providers(raw, rctx, required=False),
            match=match,
            exclude=_match(raw["exclude"], rctx, "exclude") if raw.get("exclude") is not None else None,
            variant=_variant(raw, rctx),
            discount_pct=discount,
            markup_pct=_pct(raw, "markup_pct", rctx, maximum=None),
            prices=prices,
            valid_from=r_from,
            valid_until=r_until,
            index=i,
        ))
    return TenantContract(
        id=tenant_id,
        source=source,
        rates=tuple(rates),
        description=_str(entry, "description", ctx),
        markup_pct=_pct(entry, "markup_pct", ctx, maximum=None) or Decimal(0),
        discount_pct=_pct(entry, "discount_pct", ctx, maximum=Decimal(100)) or Decimal(0),
        valid_from=valid_from,
        valid_until=valid_until,
    )
