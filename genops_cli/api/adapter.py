"""GenOpsHaystackAdapter: attribution, budgets, policy and exact costs for pipelines run from Python."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.api.contexts import (
    HaystackPipelineContext,
    HaystackSessionContext,
    _active_pipeline,
    _active_session,
)
from genops_cli.api.results import HaystackPipelineResult, metric_value
from genops_cli.api.settings import (
    DEFAULT_DAILY_BUDGET_LIMIT,
    DEFAULT_ENVIRONMENT,
    DEFAULT_GOVERNANCE_POLICY,
    DEFAULT_PROJECT,
    DEFAULT_TEAM,
    adapter_budget,
    build_settings,
    money_or_none,
)
from genops_cli.config import normalize_policy
from genops_cli.errors import BudgetExceededError, PolicyViolationError
from genops_cli.models import Attribution, CallRecord, RunRecord, quantize_money, utcnow
from genops_cli.money import money_json

_log = logging.getLogger("genops")

_ATTRIBUTION_KEYS = ("team", "project", "environment", "customer_id", "feature", "cost_center", "user_id",
                     "data_classification")



# -- the adapter --------------------------------------------------------------------------------------------

class GenOpsHaystackAdapter:
    """Governance for Haystack pipelines run from Python: attribution, budgets, policy, exact costs, ledger.

    Arguments win over GENOPS_* variables, which win over `.genops.yml`. `daily_budget_limit` and
    `monthly_budget_limit` apply to the scope `team:<team>` (or `global` without a team), under
    `governance_policy` (advisory | enforcing | monitoring).
    """

    def __init__(
        self,
        team: str = DEFAULT_TEAM,
        project: str = DEFAULT_PROJECT,
        environment: str = DEFAULT_ENVIRONMENT,
        daily_budget_limit: Decimal | float | str | None = DEFAULT_DAILY_BUDGET_LIMIT,
        monthly_budget_limit: Decimal | float | str | None = None,
        governance_policy: str = DEFAULT_GOVERNANCE_POLICY,
        enable_cost_alerts: bool = True,
        enable_component_tracking: bool = True,
        enable_pipeline_caching: bool = True,
        customer_id: str | None = None,
        ledger: str | None = None,
        config: str | Path | None = None,
        capture_content: bool | None = None,
        principal: str | None = None,
        **attributes: Any,
    ) -> None:
        from genops_cli.execution.runner import Engine
        from genops_cli.ledger.store import open_ledger, resolve_ledger_location

        self.settings = build_settings(team, project, environment, daily_budget_limit, monthly_budget_limit,
                                       governance_policy, customer_id, ledger, config, **attributes)
        if capture_content is not None:
            self.settings.capture_content = capture_content
        # Who the audit trail names for this adapter's runs (a service's caller identity); default OS user@host.
        self.settings.actor = principal
        # The Budget object the engine reads on every check: the properties below change it in place.
        self._budget = adapter_budget(self.settings, DEFAULT_DAILY_BUDGET_LIMIT)  # finds the one just built
        self.enable_cost_alerts = enable_cost_alerts
        self.enable_component_tracking = enable_component_tracking
        # Set by create_rag_adapter / create_agent_adapter: False drops those cost-free records from runs.
        self.enable_retrieval_tracking = True
        self.enable_tool_tracking = True
        self.enable_pipeline_caching = enable_pipeline_caching
        self.ledger = open_ledger(resolve_ledger_location(ledger, self.settings.ledger))
        # Runs are ingested by a separate process fed by the spool: the request's thread only spools them.
        self.engine = Engine(self.settings, self.ledger, record_mode="process")
        self._writer: Any = None
        # id(pipeline) -> (weak reference, component count, profile). Keyed by id: a Haystack Pipeline defines
        # __eq__ and so is unhashable (a WeakKeyDictionary would never hit and every run would re-profile).
        self._profiles: dict[int, tuple[weakref.ref[Any], int, Any]] = {}
        self._orphans: dict[str, Any] = {}  # run id -> RunSession of an auto-instrumented run in flight

    # -- attributes -------------------------------------------------------------------------------------------
    @property
    def team(self) -> str | None:
        return self.settings.attribution.team

    @property
    def project(self) -> str | None:
        return self.settings.attribution.project

    @property
    def environment(self) -> str | None:
        return self.settings.attribution.environment

    @property
    def budget_scope(self) -> str:
        """The scope the adapter's limits apply to (`team:<team>`, or `global` from the environment/config)."""
        return self._budget.scope

    # Limits and policy are properties over the Budget the engine reads, so setting them after construction
    # (`adapter.daily_budget_limit = 200.0`, `adapter.governance_policy = "advisory"`) applies to the next run
    # and the next admitted call. Floats, as the guide computes with them; get_cost_summary() has the Decimals.
    @property
    def daily_budget_limit(self) -> float | None:
        return None if self._budget.daily is None else float(self._budget.daily)

    @daily_budget_limit.setter
    def daily_budget_limit(self, value: Decimal | float | str | None) -> None:
        self._budget.daily = money_or_none(value, "daily_budget_limit")
        self._governance_changed()

    @property
    def monthly_budget_limit(self) -> float | None:
        return None if self._budget.monthly is None else float(self._budget.monthly)

    @monthly_budget_limit.setter
    def monthly_budget_limit(self, value: Decimal | float | str | None) -> None:
        self._budget.monthly = money_or_none(value, "monthly_budget_limit")
        self._governance_changed()

    @property
    def governance_policy(self) -> str:
        return self._budget.policy

    @governance_policy.setter
    def governance_policy(self, value: str) -> None:
        """advisory | enforcing | monitoring, for this adapter's budgets (config ones; ledger budgets keep
        the policy `genops budget set` gave them)."""
        policy = normalize_policy(value, "governance_policy")
        self.settings.budgets.default_policy = policy
        for budget in self.settings.budgets.scopes:
            budget.policy = policy
        self._governance_changed()

    @property
    def enable_cost_alerts(self) -> bool:
        """Alerts (stderr line, `alerts` table, webhook) when spend crosses the budget's thresholds (default
        50/80/95/100 %); False turns them off for this adapter's budget."""
        return bool(self._budget.alert_at)

    @enable_cost_alerts.setter
    def enable_cost_alerts(self, value: bool) -> None:
        self._budget.alert_at = tuple(self.settings.budgets.alert_at) if value else ()

    def _governance_changed(self) -> None:
        """Limits or policy changed. Nothing to forget: the adapter's budgets are read at every check (the next
        run's preflight and every admitted call)."""

    @property
    def monitor(self) -> GenOpsHaystackAdapter:
        """The guide's `adapter.monitor` (what `get_rag_insights(adapter.monitor, ...)` reads: this ledger)."""
        return self

    @property
    def writer(self) -> Any:
        """The recorder this adapter's runs go through (`ledger.recorder.Recorder`)."""
        self._writer = self.engine.recorder
        return self._writer

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until every run tracked so far is in the ledger (True) or safe in the spool (False)."""
        return self.writer.flush(timeout).ok

    # -- tracking -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def track_pipeline(self, pipeline_name: str, pipeline: Any = None,
                       **governance_attrs: Any) -> Iterator[HaystackPipelineContext]:
        """Track the `pipeline.run()` calls made inside the block as one run named `pipeline_name`.

        The run goes through the engine's run session: when the first `pipeline.run()` inside the block starts,
        compliance rules and budgets are checked with its real inputs (the pipeline is found and profiled then
        if `pipeline=` was not given), and an enforcing policy raises BudgetExceededError or
        PolicyViolationError from it before any component runs; every LLM and embedding call is admitted
        against the limits before it is made, so a run stops before the call that would cross one. Keyword
        attributes (customer_id, feature, cost_center, environment, ...) attribute the run; other keywords
        become tags.
        """
        session = self._session(pipeline_name, pipeline, self._options(governance_attrs))
        ctx = HaystackPipelineContext(self, session.run, session.open_capture(preflight_on_start=True))
        token = _active_pipeline.set(ctx)
        try:
            with session.capturing():
                yield ctx
        except BaseException as exc:
            raised = self._end(session, exc)
            if raised is exc:
                raise
            raise raised from exc  # type: ignore[misc]
        finally:
            _active_pipeline.reset(token)
            self._end(session, None)
            group = _active_session.get()
            if group is not None and group.session_id == session.run.session_id:
                group.add_pipeline_result(ctx.get_metrics())

    @contextlib.contextmanager
    def track_session(self, session_name: str, **governance_attrs: Any) -> Iterator[HaystackSessionContext]:
        """Group the pipelines tracked inside the block: they share a ledger session_id."""
        from genops_cli.execution.runner import new_run_id

        session = HaystackSessionContext(session_name, new_run_id(), governance_attrs)
        token = _active_session.set(session)
        try:
            yield session
        finally:
            _active_session.reset(token)

    # -- ledger views ---------------------------------------------------------------------------------------
    def get_cost_summary(self) -> dict[str, Any]:
        """Spend of this adapter's team/project from the ledger: today, this month (calendar periods in the
        budget timezone), utilization of the daily limit in percent, cost by provider this month, runs."""
        self.flush()
        day_start, month_start = _period_starts(self.settings.budgets.timezone)
        where, params = self._scope_where()
        with self.ledger.read() as tx:
            daily = tx.scalar(f"SELECT COALESCE(SUM(total_cost), 0) FROM runs r WHERE {where} AND started_at >= ?",
                              [*params, day_start])
            monthly = tx.scalar(f"SELECT COALESCE(SUM(total_cost), 0) FROM runs r WHERE {where} "
                                "AND started_at >= ?", [*params, month_start])
            providers = tx.query(
                f"SELECT COALESCE(c.provider, 'unknown'), SUM(c.cost) FROM calls c JOIN runs r ON r.run_id = c.run_id "
                f"WHERE {where} AND r.started_at >= ? AND c.model IS NOT NULL GROUP BY 1 ORDER BY 2 DESC",
                [*params, month_start])
            total_runs = tx.scalar(f"SELECT COUNT(*) FROM runs r WHERE {where}", params)
        daily_limit, monthly_limit = self._limits()
        daily_d = quantize_money(Decimal(daily))
        monthly_d = quantize_money(Decimal(monthly))
        return {
            "team": self.team,
            "project": self.project,
            "currency": "USD",
            "daily_costs": daily_d,
            "monthly_costs": monthly_d,
            "daily_budget_limit": daily_limit,
            "monthly_budget_limit": monthly_limit,
            "daily_budget_utilization": _percent(daily_d, daily_limit),
            "monthly_budget_utilization": _percent(monthly_d, monthly_limit),
            "cost_by_provider": {p: quantize_money(Decimal(c)) for p, c in providers},
            "total_pipelines_executed": int(total_runs or 0),
        }

    def get_recent_pipeline_results(self, limit: int = 10) -> list[HaystackPipelineResult]:
        """The latest runs of this adapter's team/project, newest first, read back from the ledger."""
        from genops_cli.ledger.serialize import run_from_json

        self.flush()
        where, params = self._scope_where()
        with self.ledger.read() as tx:
            runs = tx.query_dicts(f"SELECT * FROM runs r WHERE {where} ORDER BY started_at DESC, run_id DESC "
                                  "LIMIT ?", [*params, int(limit)])
            ids = [r["run_id"] for r in runs]
            calls = tx.query_dicts(
                f"SELECT * FROM calls WHERE run_id IN ({', '.join('?' for _ in ids)}) ORDER BY seq", ids) if ids else []
        by_run: dict[str, list[dict[str, Any]]] = {}
        for c in calls:
            by_run.setdefault(c["run_id"], []).append(c)
        out = []
        for row in runs:
            run = run_from_json(_run_json_from_row(row, by_run.get(row["run_id"], [])))
            metrics = {k[len("metric."):]: metric_value(v) for k, v in run.attribution.tags.items()
                       if k.startswith("metric.")}
            estimate = run.attribution.tags.get("estimated_cost")
            out.append(HaystackPipelineResult.from_run(run, custom_metrics=metrics,
                                                       estimated_cost=Decimal(estimate) if estimate else None))
        return out

    # -- internals ------------------------------------------------------------------------------------------
    def _scope_where(self) -> tuple[str, list[Any]]:
        clauses, params = ["r.simulated = FALSE"], []
        for column, value in (("team", self.team), ("project", self.project)):
            if value:
                clauses.append(f"r.{column} = ?")
                params.append(value)
        return " AND ".join(clauses), params

    def _limits(self) -> tuple[Decimal | None, Decimal | None]:
        return self._budget.daily, self._budget.monthly

    def _options(self, attrs: dict[str, Any]) -> Any:
        from genops_cli.execution.runner import RunOptions

        attribution = Attribution()
        tags: dict[str, str] = {}
        for key, value in attrs.items():
            if value is None:
                continue
            if key in _ATTRIBUTION_KEYS:
                setattr(attribution, key, str(value))
            else:
                tags[key] = str(value)
        session = _active_session.get()
        if session is not None:
            for key, value in session.attributes.items():
                if key not in attrs and value is not None:
                    if key in _ATTRIBUTION_KEYS:
                        setattr(attribution, key, str(value))
                    else:
                        tags.setdefault(key, str(value))
            tags.setdefault("session_name", session.session_name)
        return RunOptions(attribution=attribution, session_id=session.session_id if session else None,
                          extra_tags=tags)

    def _loaded(self, name: str, pipeline: Any) -> Any:
        """A LoadedPipeline for the engine: the live pipeline's profile, or an empty profile when unknown."""
        from genops_cli.execution.loading import LoadedPipeline
        from genops_cli.tracking.capture import PipelineProfile

        profile = self._profile(pipeline, name) if pipeline is not None else PipelineProfile(
            name=name, path=f"<python:{name}>", pipeline_hash=_name_hash(name))
        return LoadedPipeline(pipeline=pipeline, profile=profile, path=Path(profile.path), data={})

    def _profile(self, pipeline: Any, name: str | None) -> Any:
        """profile_from_pipeline, cached per pipeline object while its components stay the same."""
        from genops_cli.execution.loading import profile_from_pipeline

        if not self.enable_pipeline_caching:  # pipelines changed in place between runs: read them every time
            return profile_from_pipeline(pipeline, name)
        size = len(getattr(pipeline, "graph", ()) or ())
        cached = self._profiles.get(id(pipeline))
        if (cached is not None and cached[0]() is pipeline and cached[1] == size
                and (name is None or cached[2].name == name)):
            return cached[2]
        from genops_cli.tracking.usage import request_stream_usage_live

        request_stream_usage_live(pipeline)  # streams report usage when asked: measured, not estimated
        profile = profile_from_pipeline(pipeline, name)
        key = id(pipeline)
        try:
            ref = weakref.ref(pipeline, lambda _ref: self._profiles.pop(key, None))
        except TypeError:  # not weak-referenceable: profile every time rather than keep it alive
            return profile
        self._profiles[key] = (ref, size, profile)
        return profile

    def _session(self, name: str, pipeline: Any, options: Any) -> Any:
        """The engine's run session for one tracked run, recorded through the engine's recorder."""
        from genops_cli.execution.session import RunSession

        self.engine.recorder.ensure_writable()  # nothing spends unless it can be recorded (LedgerError)
        return RunSession(self.engine, self._loaded(name, pipeline), options, recorder=self.engine.recorder.submit,
                          discover=lambda found: self._loaded(name, found))

    def _end(self, session: Any, error: BaseException | None) -> BaseException | None:
        """Finish and record the session (once); returns the exception to raise for a blocked run (the API's
        BudgetExceededError / PolicyViolationError instead of Haystack's wrapped error), else `error`."""
        session.finish(error if isinstance(error, Exception) else None)
        if not (self.enable_component_tracking and self.enable_retrieval_tracking and self.enable_tool_tracking):
            session.run.calls = tracked_calls(session.run.calls, components=self.enable_component_tracking,
                                              retrieval=self.enable_retrieval_tracking,
                                              tools=self.enable_tool_tracking)
        session.record()
        if error is not None and session.blocked and not isinstance(error, BudgetExceededError | PolicyViolationError):
            return session.blocked_error()
        return error

    def _check_estimate(self, run: RunRecord, estimate: Decimal) -> None:
        """Spent + reserved + estimate against every budget that applies to the run (no reservation: the run's
        calls are admitted one by one when they are made)."""
        from genops_cli.execution.session import blocked_error
        from genops_cli.policy.budgets import check_budget

        decision = check_budget(self.engine, run, estimate, reserve=False)
        if decision.result == "BLOCKED":
            raise blocked_error(run.pipeline_name, decision)
        if decision.result == "WARNING" and decision.message:
            _log.warning("genops: %s", decision.message)

    # -- auto_instrument hooks (called by the tracer for root pipeline runs without a capture) --------------
    def _on_orphan_run(self, probe: Any) -> Any:
        from genops_cli.execution.session import calling_pipeline
        from genops_cli.tracking.tracer import AGENT_RUN

        if probe.operation_name == AGENT_RUN:  # an Agent's run() called directly: a run of its own
            pipeline, name = None, "agent"
        else:
            pipeline = calling_pipeline()
            metadata = probe.tags.get("haystack.pipeline.metadata") if hasattr(probe, "tags") else None
            name = (metadata or {}).get("name") if isinstance(metadata, dict) else None
        session = self._session(str(name or "pipeline"), pipeline, self._options({}))
        capture = session.open_capture(preflight_on_start=True)
        session.enter_flight()
        self._orphans[session.run.run_id] = session
        return capture

    def _on_orphan_run_end(self, capture: Any, error: BaseException | None) -> None:
        session = self._orphans.pop(capture.run_id, None)
        if session is None:
            return
        session.exit_flight()
        raised = self._end(session, error)
        if raised is not error and raised is not None:
            raise raised from error

def tracked_calls(calls: list[CallRecord], *, components: bool = True, retrieval: bool = True,
                  tools: bool = True) -> list[CallRecord]:
    """The calls a run keeps when some tracking is off. Calls that reach a provider (they carry the run's cost
    and usage) and failed calls are always kept. `components=False` drops visits of components that call no
    provider (builders, retrievers, custom code); `retrieval=False` drops retriever visits; `tools=False` drops
    tool calls. A kept call whose parent was dropped hangs from the nearest kept ancestor."""
    def dropped(c: CallRecord) -> bool:
        if c.model is not None or c.status != "ok":
            return False
        if c.span_kind == "tool":
            return not tools
        retriever = c.span_kind == "component" and c.documents_retrieved is not None
        return (not retrieval and retriever) or (not components and c.span_kind == "component")

    by_id = {c.call_id: c for c in calls}
    kept = [c for c in calls if not dropped(c)]
    kept_ids = {c.call_id for c in kept}
    for call in kept:
        parent = call.parent_call_id
        while parent is not None and parent not in kept_ids:
            parent = by_id[parent].parent_call_id if parent in by_id else None
        call.parent_call_id = parent
    return kept


def _name_hash(name: str) -> str:
    import hashlib

    return hashlib.sha256(f"python:{name}".encode()).hexdigest()[:16]


def _percent(spent: Decimal, limit: Decimal | None) -> Decimal | None:
    if not limit:
        return None
    return (spent * 100 / limit).quantize(Decimal("0.0001"))


def _period_starts(tz_name: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start of today and of this month in `tz_name`, as naive UTC: the budget windows' own starts."""
    from genops_cli.policy.periods import window

    now = now or utcnow()
    return window("daily", now, tz_name).start_naive, window("monthly", now, tz_name).start_naive


def _run_json_from_row(row: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Ledger rows -> the JSON shape of `ledger.serialize.run_from_json`."""
    import json

    def ts(value: Any) -> str | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc).isoformat() if value.tzinfo is None else value.isoformat()

    return {
        "run_id": row["run_id"], "pipeline_name": row["pipeline_name"], "pipeline_hash": row["pipeline_hash"],
        "started_at": ts(row["started_at"]), "ended_at": ts(row["ended_at"]), "status": row["status"],
        "error": row["error"], "batch_id": row["batch_id"], "session_id": row["session_id"],
        "attribution": {"team": row["team"], "project": row["project"], "environment": row["environment"],
                        "customer_id": row["customer_id"], "feature": row["feature"],
                        "cost_center": row["cost_center"], "tags": json.loads(row["tags"] or "{}"),
                        "data_classification": row["data_classification"]},
        "policy": {"result": row["policy_result"] or "ALLOWED", "reason_code": row["policy_reason_code"],
                   "reserved_cost": money_json(row["reserved_cost"])},
        "total_cost": money_json(row["total_cost"]), "currency": row["currency"], "simulated": row["simulated"],
        "calls": [{
            "call_id": c["call_id"], "run_id": c["run_id"], "seq": c["seq"], "span_kind": c["span_kind"],
            "component_name": c["component_name"], "component_type": c["component_type"],
            "started_at": ts(c["started_at"]), "latency_ms": c["latency_ms"], "status": c["status"],
            "error": c["error"], "provider": c["provider"], "model": c["model"],
            "usage": {"input_tokens": c["input_tokens"], "output_tokens": c["output_tokens"],
                      "cache_read_tokens": c["cache_read_tokens"], "cache_write_tokens": c["cache_write_tokens"],
                      "reasoning_tokens": c["reasoning_tokens"], "source": c["usage_source"]},
            "cost": money_json(c["cost"]) if c["priced"] else None, "priced": c["priced"], "tool_name": c["tool_name"],
            **{k: c.get(k) for k in ("visit", "agent_step", "parent_call_id", "component_path", "agent_instance",
                                     "agent_steps", "agent_max_steps", "exit_reason")},
        } for c in calls],
    }
