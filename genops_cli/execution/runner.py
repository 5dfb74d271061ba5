"""The engine: preflight -> execute (tracer) -> price -> record, for one run. The CLI and the Python API both
call this; nothing is implemented twice.

    engine = Engine(settings, ledger)
    loaded = load_pipeline("pipeline.yml")
    run = engine.run(loaded, {"retriever": {"query": "..."}}, RunOptions(attribution=Attribution(team="ml")))
    run.status, run.total_cost, run.calls
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.errors import RunCostCapReached
from genops_cli.execution.loading import LoadedPipeline
from genops_cli.ledger.recorder import get_recorder, in_flight, install_signal_handlers
from genops_cli.ledger.records import RecordResult
from genops_cli.ledger.store import Ledger
from genops_cli.models import Attribution, CallRecord, PolicyDecision, RunRecord, quantize_money, utcnow
from genops_cli.tracking.capture import PipelineProfile, RunCapture, SharedBudget


@functools.cache  # importlib.metadata reads files: ~0.6 ms a call, once per run otherwise
def genops_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genops-cli")
    except PackageNotFoundError:
        return "0+unknown"


@functools.cache
def haystack_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("haystack-ai")
    except PackageNotFoundError:
        return "unknown"


def new_run_id() -> str:
    """UUIDv7-shaped: time-ordered, so run ids sort by start time in the ledger (no syscall per id)."""
    from genops_cli.ids import new_id

    return new_id()


def batch_run_id(pipeline_hash: str, line: int, raw: str, namespace: str = "") -> str:
    """Deterministic id for a batch line: same pipeline, line content and position -> same run id (--resume)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"genops:{pipeline_hash}:{namespace}:{line}:{raw}"))


def make_pricer(tenant: str | None) -> Callable[[CallRecord], None]:
    from genops_cli.pricing import get_price_book

    book = get_price_book()

    def price(call: CallRecord) -> None:
        if not call.model:
            return
        priced = book.price(call.usage, call.model, call.provider, at=call.started_at, tenant=tenant,
                            latency_ms=call.latency_ms)
        priced.apply_to(call)

    return price


@dataclass
class RunOptions:
    attribution: Attribution = field(default_factory=Attribution)
    max_cost: Decimal | None = None
    policy_mode: str | None = None  # overrides the configured policy for this run
    run_id: str | None = None
    batch_id: str | None = None
    batch_line: int | None = None
    attempt: int = 1
    session_id: str | None = None
    documents: list[Any] | None = None
    record: bool = True
    extra_tags: dict[str, str] = field(default_factory=dict)
    budget: SharedBudget | None = None  # a batch's shared cost limit (--max-cost over a batch)


@dataclass
class RunOutcome:
    run: RunRecord
    recorded: RecordResult | None
    exception: BaseException | None = None

    @property
    def exit_code(self) -> int:
        from genops_cli.errors import EXIT_BLOCKED, EXIT_LEDGER, EXIT_OK, EXIT_RUN_FAILED

        if self.recorded is not None and not self.recorded.ok:
            return EXIT_LEDGER
        if self.run.status == "blocked":
            return EXIT_BLOCKED
        if self.run.status == "error":
            return EXIT_RUN_FAILED
        return EXIT_OK


class Engine:
    """Runs loaded pipelines under governance and records them. One per process is enough."""

    def __init__(self, settings: Settings, ledger: Ledger, record_mode: str = "inline") -> None:
        from genops_cli.startup import install_hooks

        self.settings = settings
        self.ledger = ledger
        install_hooks(settings)
        self.recorder = get_recorder(ledger, record_mode, settings.config_path)
        install_signal_handlers()  # SIGTERM/SIGINT record the run in flight as interrupted (main thread only)

    def new_record(self, loaded: LoadedPipeline | PipelineProfile, options: RunOptions) -> RunRecord:
        profile = loaded.profile if isinstance(loaded, LoadedPipeline) else loaded
        attribution = self.settings.attribution.merged(options.attribution)
        if options.extra_tags:
            attribution.tags = {**attribution.tags, **options.extra_tags}
        return RunRecord(
            run_id=options.run_id or new_run_id(),
            pipeline_name=profile.name,
            pipeline_hash=profile.pipeline_hash,
            started_at=utcnow(),
            attribution=attribution,
            batch_id=options.batch_id,
            batch_line=options.batch_line,
            attempt=options.attempt,
            session_id=options.session_id,
            simulated=isinstance(loaded, LoadedPipeline) and loaded.simulated,
            genops_version=genops_version(),
            haystack_version=haystack_version(),
        )

    def preflight(self, loaded: LoadedPipeline, data: dict[str, Any], run: RunRecord,
                  options: RunOptions) -> PolicyDecision:
        """Compliance rules and budget check + reservation, atomically in the ledger."""
        from genops_cli.policy.preflight import preflight

        return preflight(self, loaded, data, run, options)

    def run(self, loaded: LoadedPipeline, data: dict[str, Any], options: RunOptions | None = None) -> RunOutcome:
        options = options or RunOptions()
        if options.record:
            self.recorder.ensure_writable()  # nothing spends unless it can be recorded (LedgerError: exit 4)
        run = self.new_record(loaded, options)
        run.policy = self.preflight(loaded, data, run, options)
        if run.policy.result == "BLOCKED":
            run.status = "blocked"
            run.error = run.policy.message
            run.ended_at = utcnow()
            return RunOutcome(run, self._record(run, options))
        outcome_exc = self.execute(loaded, data, run, options)
        return RunOutcome(run, self._record(run, options), outcome_exc)

    def execute(self, loaded: LoadedPipeline, data: dict[str, Any], run: RunRecord,
                options: RunOptions) -> BaseException | None:
        """Run the pipeline under a capture; fills run.calls, status, outputs, total cost."""
        from genops_cli.tracking.tracer import capture_run, ensure_installed_after_load

        ensure_installed_after_load()
        capture = RunCapture(
            run.run_id,
            loaded.profile,
            pricer=make_pricer(run.attribution.customer_id),
            max_cost=options.max_cost,
            capture_content=self.settings.capture_content,
            budget=options.budget,
        )
        error: BaseException | None = None
        with capture_run(capture), in_flight(self.recorder, run.run_id, interrupted_snapshot(run, capture)):
            try:
                if options.documents:
                    from genops_cli.execution.documents import fill_stores

                    fill_stores(loaded, options.documents)
                run.outputs = loaded.pipeline.run(data)
            except Exception as exc:  # the run failed: keep what was spent before the failure
                error = exc
        self.finish(run, capture, error, simulated=loaded.simulated)
        return error

    @staticmethod
    def finish(run: RunRecord, capture: RunCapture, error: BaseException | None, simulated: bool) -> None:
        run.calls = capture.sorted_calls()
        if simulated:
            for call in run.calls:
                if call.usage.source == "reported":
                    call.usage.source = "estimated"
        run.ended_at = utcnow()
        run.recompute_total()
        if error is not None:
            root = _root_cause(error)
            if capture.cap_reached or isinstance(root, RunCostCapReached):
                run.status = "blocked"
                run.policy.result = "BLOCKED"
                run.policy.reason_code = "BUDGET_EXCEEDED"
                run.policy.message = str(root)
                run.error = str(root)
            else:
                run.status = "error"
                run.error = describe_error(error)

    def _record(self, run: RunRecord, options: RunOptions) -> RecordResult | None:
        if not options.record:
            return None
        run.total_cost = quantize_money(run.total_cost)
        return self.recorder.record(run)


def interrupted_snapshot(run: RunRecord, capture: RunCapture) -> Callable[[str], RunRecord]:
    """What a signal handler records for a run cut short: its calls so far (priced as they finished), status
    interrupted. Reads the capture without its lock (the handler may run while this thread holds it)."""

    def snapshot(reason: str) -> RunRecord:
        calls = sorted(list(capture.calls), key=lambda c: c.seq)
        cut = dataclasses.replace(run, calls=calls, status="interrupted", error=reason, ended_at=utcnow(),
                                  outputs=None, policy_events=list(run.policy_events))
        cut.recompute_total()
        return cut

    return snapshot


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def describe_error(exc: BaseException) -> str:
    """One line: the failing component (Haystack wraps it) and the provider's own message, secrets masked."""
    import re

    from genops_cli.redact import redact

    root = _root_cause(exc)
    component = getattr(exc, "component_name", None)
    text = re.sub(r"\s+", " ", str(root)).strip()[:500]
    prefix = f"component '{component}': " if component else ""
    return redact(f"{prefix}{type(root).__name__}: {text}") or ""
