"""auto_instrument: every Pipeline.run in the process tracked, priced and recorded (no code changes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.api.adapter import GenOpsHaystackAdapter
from genops_cli.api.settings import (
    DEFAULT_DAILY_BUDGET_LIMIT,
    DEFAULT_ENVIRONMENT,
    DEFAULT_GOVERNANCE_POLICY,
    DEFAULT_PROJECT,
    DEFAULT_TEAM,
)
from genops_cli.api.summary import RunSummary, enable_summary_logging, summary_log

# -- module functions ---------------------------------------------------------------------------------------

_auto_adapter: GenOpsHaystackAdapter | None = None


def auto_instrument(team: str = DEFAULT_TEAM, project: str = DEFAULT_PROJECT, environment: str = DEFAULT_ENVIRONMENT,
                    daily_budget_limit: Decimal | float | str | None = DEFAULT_DAILY_BUDGET_LIMIT,
                    monthly_budget_limit: Decimal | float | str | None = None,
                    governance_policy: str = DEFAULT_GOVERNANCE_POLICY, customer_id: str | None = None,
                    ledger: str | None = None, config: str | Path | None = None, cost_summary: bool = True,
                    **attributes: Any) -> bool:
    """Track every `Pipeline.run` in this process (no code changes): each root pipeline run without an explicit
    `track_pipeline` becomes a recorded run, priced per call, written by the background writer. Enforcing
    budgets raise BudgetExceededError from `pipeline.run()` before any provider call. The arguments are the
    adapter's (same defaults). After each run a one-line cost summary is logged (logger `genops.summary`, on
    stderr unless the application configured logging); `cost_summary=False` turns it off. Returns True."""
    global _auto_adapter
    from genops_cli.tracking.tracer import install_tracer

    adapter = GenOpsHaystackAdapter(team=team, project=project, environment=environment,
                                    daily_budget_limit=daily_budget_limit,
                                    monthly_budget_limit=monthly_budget_limit, governance_policy=governance_policy,
                                    customer_id=customer_id, ledger=ledger, config=config, **attributes)
    tracer = install_tracer()
    tracer.on_orphan_run = adapter._on_orphan_run
    tracer.on_orphan_run_end = _with_summary(adapter) if cost_summary else adapter._on_orphan_run_end
    _auto_adapter = adapter
    return True


def _with_summary(adapter: GenOpsHaystackAdapter) -> Callable[[Any, BaseException | None], None]:
    """The adapter's end-of-run hook, followed by the run's cost summary line."""
    enable_summary_logging()
    summary = RunSummary(adapter)

    def on_orphan_run_end(capture: Any, error: BaseException | None) -> None:
        adapter._on_orphan_run_end(capture, error)
        if error is None and summary_log.isEnabledFor(logging.INFO):
            profile = getattr(capture, "profile", None)
            cost = sum((call.cost for call in capture.sorted_calls()), Decimal(0))
            summary.log(getattr(profile, "name", None) or "pipeline", capture.run_id, cost)

    return on_orphan_run_end


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
