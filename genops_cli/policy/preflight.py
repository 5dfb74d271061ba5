"""Preflight: decide ALLOWED | WARNING | BLOCKED before any provider call (GenOps spec `genops.policy.*`).

Order: compliance rules (model/provider/region/classification/attribution) first, then budgets (check and
reservation of the estimated worst-case cost, atomically in the ledger). Every evaluated rule becomes a
`PolicyEvent` on the run, so violations are recorded whether or not they were enforced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genops_cli.models import PolicyDecision, RunRecord

if TYPE_CHECKING:
    from genops_cli.execution.loading import LoadedPipeline
    from genops_cli.execution.runner import Engine, RunOptions

_RANK = {"ALLOWED": 0, "WARNING": 1, "RATE_LIMITED": 2, "BLOCKED": 3}


def worst(a: PolicyDecision, b: PolicyDecision) -> PolicyDecision:
    """The stricter of two decisions (BLOCKED > RATE_LIMITED > WARNING > ALLOWED); reservations carry over."""
    chosen = b if _RANK[b.result] > _RANK[a.result] else a
    other = a if chosen is b else b
    if not chosen.reservation_id and other.reservation_id:
        chosen.reservation_id = other.reservation_id
        chosen.reserved_cost = other.reserved_cost
    return chosen


def preflight(engine: Engine, loaded: LoadedPipeline, data: dict[str, Any], run: RunRecord,
              options: RunOptions) -> PolicyDecision:
    from genops_cli.policy import budgets, compliance

    decision = worst(PolicyDecision(result="ALLOWED"), compliance.evaluate(engine, loaded, run, options))
    if decision.result == "BLOCKED":
        return decision  # blocked by a rule: nothing is estimated or reserved
    return worst(decision, budgets.check_and_reserve(engine, loaded, data, run, options))
