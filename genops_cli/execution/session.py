"""The run session: one run's lifecycle, the same for every entry point.

    open      a RunRecord with the merged attribution (`Engine.new_record`)
    preflight compliance rules, then the budget check and reservation of the run's worst case (policy.preflight);
              as soon as the run's inputs are known: before execution for `genops run`, batch lines and
              compare; at the start of the first `pipeline.run()` inside the block for the Python API
              (track_pipeline, track_session, auto_instrument), from the inputs Haystack passes to the tracer
    capture   `pipeline.run()` under the tracer; before every LLM/embedding call the run's `RunAdmission`
              (policy.admission) admits the call's worst case or stops the run before it (zero requests)
    finish    calls sorted, totals, status: ok | error | blocked (preflight or a denied call: BUDGET_EXCEEDED,
              with the spend so far)
    record    through the recorder (`ledger.recorder`: spool first; ingested at once for `genops run` and
              compare, by the batch's flushes, by the ingester process for the Python API); the ledger's hooks
              (audit, compliance, alerts, OTel) run once per run there

    session = engine.session(loaded, options)             # Engine.run does exactly this
    if session.preflight(data).result == "BLOCKED":
        outcome = session.close()                         # recorded as blocked; nothing ran
    else:
        outcome = session.close(session.execute(data))    # a failure is kept on the run, not raised

Entry points: `Engine.run` (CLI run, batch lines, compare), `estimate`'s simulated pass (`simulation_capture`:
no preflight, no record), the Python API (`genops_cli.api`: track_pipeline, auto_instrument, the mixin).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.errors import BudgetExceededError, PolicyViolationError, RunCostCapReached
from genops_cli.models import PolicyDecision, RunRecord, quantize_money, utcnow
from genops_cli.tracking.capture import RunCapture

if TYPE_CHECKING:
    from genops_cli.execution.loading import LoadedPipeline
    from genops_cli.execution.runner import Engine, RunOptions, RunOutcome
    from genops_cli.ledger.records import RecordResult
    from genops_cli.policy.admission import RunAdmission

#: Takes a finished run to the ledger: returns the result when it recorded synchronously, None when queued.
Recorder = Callable[[RunRecord], "RecordResult | None"]
#: Turns a live Haystack pipeline found at run time into a LoadedPipeline (the API's cached profiler).
Discover = Callable[[Any], "LoadedPipeline"]


class RunSession:
    """One run from preflight to the ledger. Not thread-safe itself; its capture and admission are."""

    def __init__(self, engine: Engine, loaded: LoadedPipeline, options: RunOptions, *,
                 recorder: Recorder | None = None, discover: Discover | None = None) -> None:
        self.engine = engine
        self.loaded = loaded
        self.options = options
        self.recorder = recorder
        self.discover = discover
        self.run = engine.new_record(loaded, options)
        self.max_cost = options.max_cost
        self.capture: RunCapture | None = None
        self.admission: RunAdmission | None = None
        self.recorded: RecordResult | None = None
        self.error: BaseException | None = None
        self.preflighted = False
        self.finished = False
        self._flight: contextlib.ExitStack | None = None
        self._hold: Any = None

    # -- preflight ----------------------------------------------------------------------------------------------
    def preflight(self, data: dict[str, Any], estimate: Callable[[], Decimal] | None = None) -> PolicyDecision:
        """Compliance rules and the budget reservation of the run's worst case for `data` (estimated only when
        a budget applies; `estimate` replaces the simulated pass). BLOCKED marks the run blocked; the caller
        does not run the pipeline."""
        from genops_cli.policy.preflight import preflight

        self.preflighted = True
        result = preflight(self.engine, self.loaded.profile, self.run, estimate or (lambda: self._estimate(data)),
                           policy_mode=self.options.policy_mode, max_cost=self.options.max_cost,
                           hold=self.budget_hold() if getattr(self.engine, "shared_holds", False) else None)
        self.run.policy = result.decision
        self.max_cost = result.max_cost
        if self.admission is not None:
            self.admission.max_cost = result.max_cost
        if result.decision.result == "BLOCKED":
            self.run.status = "blocked"
            self.run.error = result.decision.message
        return result.decision

    def _estimate(self, data: dict[str, Any]) -> Decimal:
        from genops_cli.execution.estimate import estimate_run

        if not self.loaded.data and self.loaded.profile.serialized:
            self.loaded.data = self.loaded.profile.serialized  # a pipeline built in code: simulate its copy
        # An Agent's further steps are not reserved up front: each is admitted on its own worst case when the
        # Agent takes it, so a looping Agent stops before the step that would cross a limit.
        return estimate_run(self.loaded, data, self.engine.settings, documents=self.options.documents,
                            tenant=self.run.attribution.customer_id, extrapolate_agents=False).high

    @property
    def blocked(self) -> bool:
        return self.run.status == "blocked"

    # -- capture ------------------------------------------------------------------------------------------------
    def open_capture(self, preflight_on_start: bool = False) -> RunCapture:
        """The run's capture with its per-call admission. With `preflight_on_start`, the preflight runs when the
        first pipeline starts inside the capture (inputs from the tracer) and raises if the run is blocked."""
        from genops_cli.policy.admission import RunAdmission
        from genops_cli.policy.compliance import call_checks

        settings = self.engine.settings
        tenant = self.run.attribution.customer_id
        self.admission = RunAdmission(
            self.run, max_cost=self.max_cost, shared=self.options.budget, budgets=self.budget_hold(),
            checks=call_checks(settings, self.run, self.options.policy_mode))
        self.capture = RunCapture(
            self.run.run_id, self.loaded.profile, pricer=make_pricer(tenant),
            capture_content=settings.capture_content, admission=self.admission, tenant=tenant,
            max_tokens_cap=settings.max_tokens_cap,
            on_pipeline_start=self._on_pipeline_start if preflight_on_start else None,
            stand_in=_stand_ins() if self.loaded.simulated else None,
        )
        return self.capture

    def budget_hold(self) -> Any:
        """The run's hold against its ledger budgets: its own reservation, or a share of the process's lease
        (engines of long-lived processes, the Python API: `policy.leases`). None for a simulated run."""
        if self.run.simulated:
            return None
        if self._hold is None:
            if getattr(self.engine, "shared_holds", False):
                from genops_cli.policy.leases import LeaseBudgetHold, lease_for

                self._hold = LeaseBudgetHold(lease_for(self.engine, self.run), self.run, self.options.policy_mode)
            else:
                from genops_cli.policy.budgets import LedgerBudgetHold

                self._hold = LedgerBudgetHold(self.engine, self.run, self.options.policy_mode)
        return self._hold

    @contextlib.contextmanager
    def capturing(self, preflight_on_start: bool = False) -> Iterator[RunCapture]:
        """Make the run's capture current for the spans started inside the block; while it is open, SIGTERM or
        SIGINT record the run as interrupted with its spend so far."""
        from genops_cli.tracking.tracer import capture_run, ensure_installed_after_load

        ensure_installed_after_load()
        capture = self.capture or self.open_capture(preflight_on_start)
        with capture_run(capture), self.in_flight():
            yield capture

    def enter_flight(self) -> None:
        """`in_flight` for a capture the tracer holds (auto_instrument): entered here, left by `exit_flight`."""
        self._flight = contextlib.ExitStack()
        self._flight.enter_context(self.in_flight())

    def exit_flight(self) -> None:
        if self._flight is not None:
            self._flight.close()
            self._flight = None

    def in_flight(self) -> contextlib.AbstractContextManager[None]:
        """Registers the run with the recorder's interrupt handling (when the engine has a recorder)."""
        recorder = getattr(self.engine, "recorder", None)
        if recorder is None or self.capture is None:
            return contextlib.nullcontext()
        from genops_cli.ledger.recorder import in_flight

        return in_flight(recorder, self.run.run_id, interrupted_snapshot(self.run, self.capture))

    def _on_pipeline_start(self, tags: dict[str, Any]) -> None:
        """The first root pipeline run inside the capture: learn the pipeline if it was not given, then
        preflight with the inputs Haystack passes; a blocked run raises before any component runs."""
        if self.preflighted:
            return
        if self.discover is not None and not self.loaded.profile.components:
            pipeline = calling_pipeline()
            if pipeline is not None:
                self._adopt(self.discover(pipeline))
        data = tags.get("haystack.pipeline.input_data")
        decision = self.preflight(data if isinstance(data, dict) else {})
        if decision.result == "WARNING" and decision.message:
            import logging

            logging.getLogger("genops").warning("genops: %s", decision.message)
        if decision.result == "BLOCKED":
            raise blocked_error(self.run.pipeline_name, decision)

    def _adopt(self, loaded: LoadedPipeline) -> None:
        """Use the profile of the pipeline found at run time (models, max_tokens) for admission and pricing."""
        loaded.profile.name = self.loaded.profile.name
        self.loaded = loaded
        if self.capture is not None:
            self.capture.profile = loaded.profile

    def execute(self, data: dict[str, Any]) -> BaseException | None:
        """Run the loaded pipeline under the capture; a failure is returned (its spend is kept), not raised."""
        error: BaseException | None = None
        with self.capturing():
            try:
                if self.loaded.simulated:
                    from genops_cli.execution.documents import sync_simulated_stores

                    sync_simulated_stores(self.loaded)  # what the real shared stores hold, never written
                if self.options.documents:
                    from genops_cli.execution.documents import fill_stores

                    fill_stores(self.loaded, self.options.documents)
                self.run.outputs = self.loaded.pipeline.run(data)
            except Exception as exc:  # the run failed: keep what was spent before the failure
                error = exc
        return error

    # -- finish and record --------------------------------------------------------------------------------------
    def finish(self, error: BaseException | None = None) -> RunRecord:
        """Calls, totals and status (once). A call denied by admission makes the run blocked, not failed."""
        if self.finished:
            return self.run
        self.finished = True
        run = self.run
        self.error = error
        run.ended_at = utcnow()
        if self.capture is not None:
            run.calls = self.capture.sorted_calls()
        if self.loaded.simulated:
            for call in run.calls:
                if call.usage.source == "reported":
                    call.usage.source = "estimated"
        run.recompute_total()
        run.total_cost = quantize_money(run.total_cost)
        finished = getattr(self._hold, "finished", None)
        if finished is not None:
            finished(run.total_cost)  # a process lease: the unused part of this run's hold goes back
        if error is None and getattr(self.engine.settings, "fail_on_agent_cap", False):
            from genops_cli.tracking.agents import fail_run_on_agent_cap

            fail_run_on_agent_cap(run)  # an agent stopped by max_agent_steps fails the run (agents.fail_on_cap)
        if run.status == "blocked" or error is None:
            return run
        root = root_cause(error)
        denial = getattr(self.admission, "denial", None)
        if (self.capture is not None and self.capture.cap_reached) or isinstance(root, RunCostCapReached):
            run.status = "blocked"
            run.policy.result = "BLOCKED"
            run.policy.reason_code = denial.reason_code if denial is not None else "BUDGET_EXCEEDED"
            run.policy.message = str(root)
            run.error = str(root)
        else:
            run.status = "error"
            run.error = describe_error(error)
        return run

    def record(self) -> RecordResult | None:
        """Hand the finished run to the recorder (once)."""
        if self.recorder is None:
            return None
        self.recorded = self.recorder(self.run)
        self.recorder = None
        return self.recorded

    def close(self, error: BaseException | None = None) -> RunOutcome:
        """finish + record: the outcome for the entry point (exit code, the run, the failure)."""
        from genops_cli.execution.runner import RunOutcome

        self.finish(error)
        return RunOutcome(self.run, self.record(), error)

    def blocked_error(self) -> Exception:
        """The Python API's exception for this blocked run."""
        return blocked_error(self.run.pipeline_name, self.run.policy)


def interrupted_snapshot(run: RunRecord, capture: RunCapture) -> Callable[[str], RunRecord]:
    """What a signal handler records for a run cut short: its calls so far (priced as they finished) and the
    calls it had in flight (their input, estimated), status interrupted. Reads the capture without its lock (the
    handler may run while this thread holds it)."""

    def snapshot(reason: str) -> RunRecord:
        calls = sorted(list(capture.calls) + capture.in_flight_calls(reason), key=lambda c: c.seq)
        cut = dataclasses.replace(run, calls=calls, status="interrupted", error=reason, ended_at=utcnow(),
                                  outputs=None, policy_events=list(run.policy_events))
        cut.recompute_total()
        return cut

    return snapshot


def make_pricer(tenant: str | None) -> Callable[[Any], None]:
    """Prices a finished call in place with the process's price book (tenant contracts applied)."""
    from genops_cli.pricing import get_price_book

    book = get_price_book()

    def price(call: Any) -> None:
        book.price_call(call, tenant)

    return price


def _stand_ins() -> Callable[[Any], Any]:
    from genops_cli.execution.simulate import stand_in_for

    return stand_in_for


def simulation_capture(loaded: LoadedPipeline, run_id: str = "estimate") -> RunCapture:
    """A capture for a simulated pass that is neither checked nor recorded (estimate's input-token count)."""
    return RunCapture(run_id, loaded.profile, stand_in=_stand_ins())


def blocked_error(pipeline_name: str, decision: PolicyDecision) -> Exception:
    """BudgetExceededError for budget reasons, PolicyViolationError for compliance rules."""
    reason = decision.reason_code or "BLOCKED"
    detail = decision.message or reason
    if reason.startswith("BUDGET") or reason == "RATE_LIMITED":
        return BudgetExceededError(f"pipeline '{pipeline_name}' blocked: budget limit reached ({detail})", reason)
    return PolicyViolationError(f"pipeline '{pipeline_name}' blocked by policy {reason}: {detail}", reason)


def calling_pipeline() -> Any:
    """The Pipeline whose run() opened the current root span (the tracer API does not pass it): walks up the
    stack to the nearest frame whose `self` is a Haystack pipeline."""
    from haystack.core.pipeline.base import PipelineBase

    frame = sys._getframe(1)
    for _ in range(16):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, PipelineBase):
            return candidate
        frame = frame.f_back
    return None


def root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def describe_error(exc: BaseException) -> str:
    """One line: the failing component (Haystack wraps it) and the provider's own message, secrets masked."""
    import re

    from genops_cli.execution.loading import root_cause as root_cause_text
    from genops_cli.redact import redact

    component = getattr(exc, "component_name", None)
    # The innermost cause, whole sentences only (a provider may answer with a page of HTML), no object reprs.
    text = root_cause_text(exc)
    if len(text) > 1000:
        cut = max(text.rfind(". ", 0, 1000), text.rfind("; ", 0, 1000))
        text = text[: cut + 1] + " [...]" if cut > 200 else re.sub(r"\s+\S*$", "", text[:1000]) + " [...]"
    prefix = f"component '{component}': " if component else ""
    return redact(f"{prefix}{text}") or ""
