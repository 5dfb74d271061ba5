"""Records that cross module boundaries: usage, priced calls, runs and policy decisions.

Everything that flows load -> preflight -> execute -> price -> record -> report is one of these dataclasses.
Money is always `decimal.Decimal`; timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from genops_cli.money import LEDGER_QUANTUM, money_json

SpanKind = Literal["component", "agent_llm", "tool", "embedding", "chat_generator", "agent_step"]
UsageSource = Literal["reported", "estimated", "missing", "none"]
CallStatus = Literal["ok", "error", "blocked"]
RunStatus = Literal["ok", "error", "blocked", "interrupted"]  # interrupted: SIGTERM/SIGINT mid-run
PolicyResult = Literal["ALLOWED", "WARNING", "BLOCKED", "RATE_LIMITED"]

#: Budget alert thresholds in percent of a limit, each fired once per period.
DEFAULT_ALERT_THRESHOLDS = (50, 80, 95, 100)

# Money is stored as DECIMAL(38,18): exact for any token price down to 1e-12 USD, so a call's cost is stored as
# computed and totals are sums of exact amounts (no rounding before aggregation).
MONEY_QUANTUM = LEDGER_QUANTUM


def quantize_money(value: Decimal) -> Decimal:
    """A cost at the ledger's precision (18 decimal places, half-even; exact for token prices >= 1e-12 USD)."""
    return value.quantize(MONEY_QUANTUM)


def _money_text(value: Decimal | None) -> str | None:
    return money_json(value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class TokenUsage:
    """Usage of one call in genops' normalized shape.

    `input_tokens` includes cache reads and writes; `output_tokens` includes reasoning. `source` tells whether the
    provider reported it, genops estimated it (simulation, streaming without usage) or it is missing.
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    source: UsageSource = "missing"
    raw: dict[str, Any] | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            source=self.source if self.source == other.source else "reported",
        )


@dataclass(frozen=True)
class UnitPrices:
    """USD per one million tokens (and per call / per second for self-hosted models) used to price a call."""

    input_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    per_call: Decimal | None = None
    per_second: Decimal | None = None

    def to_json(self) -> dict[str, str]:
        return dict(self._json_items)

    @functools.cached_property
    def _json_items(self) -> tuple[tuple[str, str], ...]:
        # Built once per price set (a resolved price is shared by every call it prices; this runs for each one).
        return tuple((f.name, str(v)) for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> UnitPrices:
        data = data or {}
        values = {f.name: Decimal(str(data[f.name])) for f in dataclasses.fields(cls) if data.get(f.name) is not None}
        return cls(**values)


@dataclass
class CallRecord:
    """One captured span: a component visit, an agent LLM step, a tool call or an internal chat-generator call."""

    call_id: str
    run_id: str
    seq: int
    span_kind: SpanKind
    component_name: str
    component_type: str
    started_at: datetime
    latency_ms: float = 0.0
    status: CallStatus = "ok"
    error: str | None = None
    visit: int | None = None
    agent_step: int | None = None
    tool_name: str | None = None
    parent_call_id: str | None = None
    provider: str | None = None
    model: str | None = None
    usage: TokenUsage = field(default_factory=lambda: TokenUsage(source="missing"))
    # Filled in by pricing:
    unit_prices: UnitPrices | None = None
    cost: Decimal = Decimal(0)
    list_cost: Decimal = Decimal(0)
    # Contracted cost: list price after the tenant's discount/contracted rate, before any resale markup.
    contracted_cost: Decimal | None = None
    priced: bool = True
    price_snapshot: str | None = None
    # Documents a retriever returned (for RAG insights); no content is kept.
    documents_retrieved: int | None = None
    # The component's configured max_tokens (LLM calls), for max_tokens recommendations.
    max_tokens: int | None = None
    # Where the call happened (outer agent / tool / inner agent / generator) and which agent run it belongs to
    # (the call id of that run's container record); see genops_cli/tracking/tracer.py.
    component_path: str | None = None
    agent_instance: str | None = None
    # Agent container records only: steps taken, the max_agent_steps cap, why the run stopped (tracking/agents.py).
    agent_steps: int | None = None
    agent_max_steps: int | None = None
    exit_reason: str | None = None

    @property
    def is_billable(self) -> bool:
        """True for calls that carry (or should carry) provider usage: LLM, embedding and generator leaves."""
        return self.model is not None


@dataclass
class PolicyDecision:
    """The preflight verdict for a run (GenOps spec `genops.policy.*`)."""

    result: PolicyResult = "ALLOWED"
    reason_code: str | None = None
    message: str | None = None
    reserved_cost: Decimal = Decimal(0)
    budget_scope: str | None = None
    reservation_id: str | None = None
    #: sha256 of the policy (rules, modes, applicable budgets) the run was admitted under, and its JSON body
    policy_hash: str | None = None
    snapshot: str | None = None
    #: a governed --policy override that weakened enforcing rules for this run (JSON), if any
    override: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "reason_code": self.reason_code,
            "message": self.message,
            "reserved_cost": money_json(self.reserved_cost),
            "policy_hash": self.policy_hash,
            "override": json.loads(self.override) if self.override else None,
        }


@dataclass
class Budget:
    """Limits for one scope. A limit of None means no budget for that period; 0 means nothing may be spent."""

    scope: str
    daily: Decimal | None = None
    weekly: Decimal | None = None
    monthly: Decimal | None = None
    policy: str = "advisory"
    alert_at: tuple[int, ...] = DEFAULT_ALERT_THRESHOLDS
    timezone: str = "UTC"
    source: str = "cli"  # cli (set in the ledger) | config (.genops.yml / environment)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: where this budget's alerts are posted (instead of the configured alerts.webhook_url), and in which format
    webhook_url: str | None = None
    webhook_format: str | None = None

    def limits(self) -> list[tuple[str, Decimal]]:
        return [(p, v) for p in ("daily", "weekly", "monthly") if (v := getattr(self, p)) is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "daily": _money_text(self.daily),
            "weekly": _money_text(self.weekly),
            "monthly": _money_text(self.monthly),
            "policy": self.policy,
            "alert_at": list(self.alert_at),
            "timezone": self.timezone,
            "source": self.source,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            # The URL often carries a token: only whether one is set, its host and the format are shown.
            "webhook": _webhook_text(self.webhook_url, self.webhook_format),
        }


def _webhook_text(url: str | None, fmt: str | None) -> dict[str, str] | None:
    if not url:
        return None
    from urllib.parse import urlsplit

    return {"host": urlsplit(url).hostname or "?", "format": fmt or "generic"}


@dataclass
class PolicyEvent:
    """One evaluated rule (budget or compliance) for a run, recorded in `policy_events` whether or not enforced."""

    event_id: str
    rule: str  # e.g. "budget:team:ml:daily", "compliance:allowed_models"
    result: PolicyResult
    reason_code: str | None = None
    message: str | None = None
    enforced: bool = False


@dataclass
class CostCheck:
    """A cost limit a run is checked against once its cost is known (compliance max_cost_per_operation)."""

    rule: str
    limit: Decimal
    mode: str  # enforcing | advisory | monitoring
    classification: str


@dataclass
class Attribution:
    """Who a run is for: the GenOps attribution attributes."""

    team: str | None = None
    project: str | None = None
    environment: str | None = None
    customer_id: str | None = None
    feature: str | None = None
    cost_center: str | None = None
    user_id: str | None = None  # the end user a run is for (`--user`, `user_id=` in the API)
    tags: dict[str, str] = field(default_factory=dict)
    data_classification: str | None = None

    def merged(self, other: Attribution) -> Attribution:
        """Values from `other` win where set."""
        out = dataclasses.replace(self, tags={**self.tags, **other.tags})
        for f in dataclasses.fields(self):
            if f.name == "tags":
                continue
            value = getattr(other, f.name)
            if value is not None:
                setattr(out, f.name, value)
        return out


@dataclass
class RunRecord:
    """One pipeline run with its calls, as written to the ledger."""

    run_id: str
    pipeline_name: str
    pipeline_hash: str
    started_at: datetime
    attribution: Attribution = field(default_factory=Attribution)
    ended_at: datetime | None = None
    status: RunStatus = "ok"
    error: str | None = None
    batch_id: str | None = None
    batch_line: int | None = None
    attempt: int = 1
    session_id: str | None = None
    policy: PolicyDecision = field(default_factory=PolicyDecision)
    total_cost: Decimal = Decimal(0)
    currency: str = "USD"
    simulated: bool = False
    genops_version: str = ""
    haystack_version: str = ""
    cache_hit: bool = False
    saved_cost: Decimal = Decimal(0)
    calls: list[CallRecord] = field(default_factory=list)
    policy_events: list[PolicyEvent] = field(default_factory=list)
    # Limits checked against the recorded cost when the run is ingested; they travel with the run (spool
    # included), so a run ingested later, by any process, is checked the same way.
    cost_checks: list[CostCheck] = field(default_factory=list)
    #: who ran it (OS user@host, GENOPS_ACTOR or the API principal): its audit entry names this actor, whichever
    #: process ingests the run later
    actor: str | None = None
    outputs: Any = None

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({f"{c.provider or '?'}:{c.model}" for c in self.calls if c.model and not c.priced})

    def recompute_total(self) -> Decimal:
        self.total_cost = quantize_money(sum((c.cost for c in self.calls), Decimal(0)))
        return self.total_cost
