"""The engine: preflight -> execute (tracer) -> price -> record, for one run. The CLI and the Python API both
call this; nothing is implemented twice.

    engine = Engine(settings, ledger)
    loaded = load_pipeline("pipeline.yml")
    run = engine.run(loaded, {"retriever": {"query": "..."}}, RunOptions(attribution=Attribution(team="ml")))
    run.status, run.total_cost, run.calls
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.execution.loading import LoadedPipeline
from genops_cli.execution.session import RunSession, describe_error, make_pricer, root_cause
from genops_cli.ledger.audit import current_actor
from genops_cli.ledger.recorder import get_recorder, install_signal_handlers
from genops_cli.ledger.records import RecordResult
from genops_cli.ledger.store import Ledger
from genops_cli.models import Attribution, RunRecord, utcnow
from genops_cli.policy.admission import SharedBudget
from genops_cli.tracking.capture import PipelineProfile
from genops_cli.versions import genops_version, haystack_version


def new_run_id() -> str:
    """UUIDv7-shaped: time-ordered, so run ids sort by start time in the ledger (no syscall per id)."""
    from genops_cli.ids import new_id

    return new_id()


def batch_run_id(pipeline_hash: str, line: int, raw: str, namespace: str = "") -> str:
    """Deterministic id for a batch line: same pipeline, line content and position -> same run id (--resume)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"genops:{pipeline_hash}:{namespace}:{line}:{raw}"))


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
        #: Runs of a long-lived process (ingested by a separate process) share one budget lease per scope set
        #: (policy.leases) instead of one ledger transaction each.
        self.shared_holds = record_mode == "process"
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
            actor=self.settings.actor or current_actor(),
        )

    def session(self, loaded: LoadedPipeline, options: RunOptions | None = None) -> RunSession:
        """A run session on this engine (recorded through the engine's recorder unless options.record is False:
        a batch records through its own writer)."""
        options = options or RunOptions()
        return RunSession(self, loaded, options, recorder=self.recorder.record if options.record else None)

    def run(self, loaded: LoadedPipeline, data: dict[str, Any], options: RunOptions | None = None) -> RunOutcome:
        """preflight -> execute -> finish -> record, for one run (`genops run`, a batch line, compare)."""
        options = options or RunOptions()
        if options.record:
            self.recorder.ensure_writable()  # nothing spends unless it can be recorded (LedgerError: exit 4)
        session = self.session(loaded, options)
        if session.preflight(data).result == "BLOCKED":
            return session.close()
        return session.close(session.execute(data))


__all__ = ["Engine", "RunOptions", "RunOutcome", "batch_run_id", "describe_error", "make_pricer", "new_run_id",
           "root_cause"]
