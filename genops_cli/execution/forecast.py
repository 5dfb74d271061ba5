"""Forecast a batch before spending: `estimate_run` per input, summed, and the budgets it would consume.

    result = forecast_batch(settings, ledger, loaded, read_inputs("batch.jsonl"), model="gpt-4o-mini")
    result.low, result.expected, result.high         # Decimal USD for all runs
    result.budgets[0].remaining, result.budgets[0].worst_share

The per-run estimate is genops_cli.execution.estimate.estimate_run (offline token counts, recorded output sizes); this
module only adds runs up and sets them against `policy.budgets.status` for the scopes the runs count toward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.execution.inputs import RunInput, prepare_run_data
from genops_cli.execution.loading import LoadedPipeline
from genops_cli.ledger.store import Ledger
from genops_cli.models import quantize_money
from genops_cli.money import money_json as _m

_PCT = Decimal("0.01")


@dataclass
class BudgetImpact:
    """One applicable budget x period, and the share of its limit the forecast would use."""

    scope: str
    period: str
    period_key: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    expected: Decimal
    high: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.limit - self.spent - self.reserved

    def _share(self, amount: Decimal) -> Decimal | None:
        return (amount * 100 / self.limit).quantize(_PCT) if self.limit else None

    @property
    def expected_share(self) -> Decimal | None:
        return self._share(self.expected)

    @property
    def worst_share(self) -> Decimal | None:
        return self._share(self.high)

    @property
    def exceeds_expected(self) -> bool:
        return self.expected > self.remaining

    @property
    def exceeds_worst(self) -> bool:
        return self.high > self.remaining

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "period": self.period, "period_key": self.period_key, "limit": _m(self.limit),
            "spent": _m(self.spent), "reserved": _m(self.reserved), "remaining": _m(self.remaining),
            "expected_share_pct": str(self.expected_share) if self.expected_share is not None else None,
            "worst_share_pct": str(self.worst_share) if self.worst_share is not None else None,
            "remaining_after_expected": _m(self.remaining - self.expected),
            "remaining_after_worst": _m(self.remaining - self.high),
            "would_exceed": self.exceeds_expected, "would_exceed_worst_case": self.exceeds_worst,
        }


@dataclass
class BatchForecast:
    pipeline: str
    model: str | None
    runs: int
    low: Decimal = Decimal(0)
    expected: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    lines: list[dict[str, Any]] = field(default_factory=list)
    per_run: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[BudgetImpact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unpriced_models: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "model": self.model,
            "runs": self.runs,
            "low": _m(self.low),
            "expected": _m(self.expected),
            "high": _m(self.high),
            "currency": "USD",
            "priced": not self.unpriced_models,
            "unpriced_models": self.unpriced_models,
            "components": [{**line, **{k: _m(line[k]) if line["priced"] else None for k in ("low", "expected", "high")}}
                           for line in self.lines],
            "budgets": [b.to_json() for b in self.budgets],
            "per_run": self.per_run,
            "notes": self.notes,
        }


def forecast_batch(settings: Settings, ledger: Ledger, loaded: LoadedPipeline, runs: list[RunInput],
                   documents: list[Any] | None = None, model: str | None = None) -> BatchForecast:
    """Estimate every input (as `genops run` would run them) and the budgets the total would consume."""
    from genops_cli.execution.estimate import estimate_run, observed_outputs

    try:  # read once for the whole batch; on failure each estimate retries and notes why
        history = observed_outputs(ledger, loaded.profile.name)
    except Exception:
        history = None
    tenant = settings.attribution.customer_id
    out = BatchForecast(pipeline=loaded.profile.name, model=model, runs=len(runs))
    by_component: dict[str, dict[str, Any]] = {}
    unpriced: set[str] = set()
    for index, run_input in enumerate(runs):
        data = prepare_run_data(loaded.pipeline, run_input, loaded.declared_inputs)
        est = estimate_run(loaded, data, settings, ledger=ledger, documents=documents if index == 0 else None,
                           tenant=tenant, history=history)
        out.low += est.low
        out.expected += est.expected
        out.high += est.high
        unpriced.update(est.unpriced_models)
        out.per_run.append({"line": run_input.line, **est.to_json()})
        for note in est.notes:
            if note not in out.notes:
                out.notes.append(note)
        for line in est.lines:
            agg = by_component.setdefault(line.component, {
                "component": line.component, "provider": line.provider, "model": line.model, "kind": line.kind,
                "calls": 0, "input_tokens": 0, "output_tokens": 0, "expected_output_tokens": 0,
                "output_basis": line.output_basis, "expected_basis": line.expected_basis,
                "low": Decimal(0), "expected": Decimal(0), "high": Decimal(0), "priced": True,
            })
            agg["priced"] = agg["priced"] and line.priced
            agg["calls"] += line.worst_calls
            agg["input_tokens"] += line.input_tokens
            agg["output_tokens"] += line.output_tokens
            agg["expected_output_tokens"] += line.expected_output_tokens
            agg["low"] += line.low
            agg["expected"] += line.expected
            agg["high"] += line.high
    out.low, out.expected, out.high = (quantize_money(v) for v in (out.low, out.expected, out.high))
    out.lines = list(by_component.values())
    out.unpriced_models = sorted(unpriced)
    out.budgets = budget_impact(settings, ledger, loaded.profile.name, out.expected, out.high)
    return out


def budget_impact(settings: Settings, ledger: Ledger, pipeline_name: str, expected: Decimal,
                  high: Decimal) -> list[BudgetImpact]:
    """The current state of every budget these runs would count toward, with the forecast set against it."""
    from genops_cli.policy.budgets import status
    from genops_cli.policy.scopes import scopes_for_run

    scopes = set(scopes_for_run(settings.attribution, pipeline_name))
    return [
        BudgetImpact(scope=s.budget.scope, period=s.period, period_key=s.window.key, limit=s.limit, spent=s.spent,
                     reserved=s.reserved, expected=expected, high=high)
        for s in status(ledger, settings)
        if s.budget.scope in scopes
    ]
