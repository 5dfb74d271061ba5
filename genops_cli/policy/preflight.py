"""Preflight: decide ALLOWED | WARNING | BLOCKED before any provider call (GenOps spec `genops.policy.*`).

Order: compliance rules (model/provider/region/classification/attribution) first, then budgets (check and
reservation of the estimated worst-case cost, atomically in the ledger). Every evaluated rule becomes a
`PolicyEvent` on the run, so violations are recorded whether or not they were enforced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.models import PolicyDecision, RunRecord

if TYPE_CHECKING:
    from genops_cli.policy.budgets import Governed
    from genops_cli.tracking.capture import PipelineProfile

_RANK = {"ALLOWED": 0, "WARNING": 1, "RATE_LIMITED": 2, "BLOCKED": 3}


def worst(a: PolicyDecision, b: PolicyDecision) -> PolicyDecision:
    """The stricter of two decisions (BLOCKED > RATE_LIMITED > WARNING > ALLOWED); reservations carry over."""
    chosen = b if _RANK[b.result] > _RANK[a.result] else a
    other = a if chosen is b else b
    if not chosen.reservation_id and other.reservation_id:
        chosen.reservation_id = other.reservation_id
        chosen.reserved_cost = other.reserved_cost
    return chosen


@dataclass
class Preflight:
    """The run's policy verdict and its cost cap (`--max-cost`) for per-call admission. Compliance rules that
    apply to calls (provider, model, region, `max_cost_per_operation`) are checked per call by
    `compliance.call_checks`, registered on the run's admission."""

    decision: PolicyDecision
    max_cost: Decimal | None


def preflight(ctx: Governed, profile: PipelineProfile, run: RunRecord, estimate: Callable[[], Decimal], *,
              policy_mode: str | None = None, max_cost: Decimal | None = None, hold: Any = None) -> Preflight:
    """Compliance rules, then the budget check and reservation of `estimate()` (called only when a budget
    applies), atomically in the ledger (or drawn from the process's lease: `hold`)."""
    from genops_cli.policy import budgets, compliance

    decision = worst(PolicyDecision(result="ALLOWED"), compliance.evaluate(ctx.settings, profile, run, policy_mode))
    if decision.result != "BLOCKED":  # blocked by a rule: nothing is estimated or reserved
        decision = worst(decision, budgets.check_and_reserve(ctx, run, estimate, policy_mode, hold))
    note_policy(ctx, run, decision, policy_mode)
    return Preflight(decision, max_cost)


def note_policy(ctx: Governed, run: RunRecord, decision: PolicyDecision, policy_mode: str | None) -> None:
    """Put on the run's decision the hash and body of the policy it was admitted under (the compliance rules and
    modes of its classification, the override, the budgets applicable to it) and any governed override."""
    from genops_cli.errors import LedgerError
    from genops_cli.policy import budgets, compliance
    from genops_cli.policy.scopes import scopes_for_run

    try:
        stored = budgets.cached_ledger_budgets(ctx.ledger)
    except LedgerError:
        stored = []
    applicable = budgets.applicable(budgets.effective_budgets(None, ctx.settings, stored),
                                    scopes_for_run(run.attribution, run.pipeline_name))
    decision.policy_hash, decision.snapshot = compliance.policy_snapshot(ctx.settings, run, policy_mode, applicable)
    decision.override = run.policy.override
