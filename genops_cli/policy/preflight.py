"""Preflight: decide ALLOWED | WARNING | BLOCKED before any provider call (GenOps spec `genops.policy.*`).

Order: compliance rules (model/provider/region/classification/attribution) first, then budgets (check and
reservation of the estimated worst-case cost, atomically in the ledger). Every evaluated rule becomes a
`PolicyEvent` on the run, so violations are recorded whether or not they were enforced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

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
    """The run's policy verdict and the run cost cap per-call admission enforces (the lowest of `--max-cost`
    and an enforcing compliance `max_cost_per_operation`)."""

    decision: PolicyDecision
    max_cost: Decimal | None


def preflight(ctx: Governed, profile: PipelineProfile, run: RunRecord, estimate: Callable[[], Decimal], *,
              policy_mode: str | None = None, max_cost: Decimal | None = None) -> Preflight:
    """Compliance rules, then the budget check and reservation of `estimate()` (called only when a budget
    applies), atomically in the ledger."""
    from genops_cli.policy import budgets, compliance

    ruled, compliance_cap = compliance.evaluate(ctx.settings, profile, run, policy_mode)
    if compliance_cap is not None and (max_cost is None or compliance_cap < max_cost):
        max_cost = compliance_cap
    decision = worst(PolicyDecision(result="ALLOWED"), ruled)
    if decision.result == "BLOCKED":
        return Preflight(decision, max_cost)  # blocked by a rule: nothing is estimated or reserved
    return Preflight(worst(decision, budgets.check_and_reserve(ctx, run, estimate, policy_mode)), max_cost)
