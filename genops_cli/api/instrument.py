"""auto_instrument: every Pipeline.run in the process tracked, priced and recorded (no code changes)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.api.adapter import GenOpsHaystackAdapter

# -- module functions ---------------------------------------------------------------------------------------

_auto_adapter: GenOpsHaystackAdapter | None = None


def auto_instrument(team: str | None = None, project: str | None = None, environment: str | None = None,
                    daily_budget_limit: Decimal | float | str | None = None,
                    monthly_budget_limit: Decimal | float | str | None = None,
                    governance_policy: str | None = None, customer_id: str | None = None,
                    ledger: str | None = None, config: str | Path | None = None, **attributes: Any) -> bool:
    """Track every `Pipeline.run` in this process (no code changes): each root pipeline run without an explicit
    `track_pipeline` becomes a recorded run, priced per call, written by the background writer. Enforcing
    budgets raise BudgetExceededError from `pipeline.run()` before any provider call. Returns True."""
    global _auto_adapter
    from genops_cli.tracking.tracer import install_tracer

    adapter = GenOpsHaystackAdapter(team=team, project=project, environment=environment,
                                    daily_budget_limit=daily_budget_limit,
                                    monthly_budget_limit=monthly_budget_limit, governance_policy=governance_policy,
                                    customer_id=customer_id, ledger=ledger, config=config, **attributes)
    tracer = install_tracer()
    tracer.on_orphan_run = adapter._on_orphan_run
    tracer.on_orphan_run_end = adapter._on_orphan_run_end
    _auto_adapter = adapter
    return True


def uninstrument() -> None:
    """Stop auto-instrumentation (runs already tracked are still flushed)."""
    global _auto_adapter
    from genops_cli.tracking.tracer import install_tracer

    tracer = install_tracer()
    tracer.on_orphan_run = None
    tracer.on_orphan_run_end = None
    if _auto_adapter is not None:
        _auto_adapter.flush()
    _auto_adapter = None


def get_auto_adapter() -> GenOpsHaystackAdapter | None:
    """The adapter installed by `auto_instrument`, if any."""
    return _auto_adapter


def flush(timeout: float | None = 60.0) -> bool:
    """Wait until every run tracked in this process is in its ledger (True) or safe in the spool (False)."""
    from genops_cli.ledger import recorder

    return recorder.flush_all(timeout)
