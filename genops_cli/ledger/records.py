"""Writing runs: spool first, then one ledger transaction per run (run row + call rows + reservation release +
audit entry), idempotent by run_id.

    result = record_run(ledger, run)     # never raises for ledger trouble: result.spooled says it's kept
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from genops_cli.errors import LedgerError
from genops_cli.ledger import audit
from genops_cli.ledger.serialize import CALL_COLUMNS, RUN_COLUMNS, call_row, run_row, to_naive_utc
from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import RunRecord, quantize_money

_RUN_INSERT = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)}) "
    "ON CONFLICT (run_id) DO NOTHING"
)
_CALL_INSERT = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in CALL_COLUMNS)}) "
    "ON CONFLICT (call_id) DO NOTHING"
)

#: Functions called inside the run's write transaction after it is inserted (alerts, reconciliation).
AfterInsertHook = Callable[[Tx, RunRecord], None]
_after_insert_hooks: list[AfterInsertHook] = []


def register_after_insert(hook: AfterInsertHook) -> None:
    if hook not in _after_insert_hooks:
        _after_insert_hooks.append(hook)


def rekeyed_run_id(run_id: str, started_at: datetime) -> str:
    """The id a batch run takes when its deterministic id is already used by another execution."""
    stamp = to_naive_utc(started_at).isoformat()  # type: ignore[union-attr]
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"genops:rekey:{run_id}:{stamp}"))


def _claim_run_id(tx: Tx, run: RunRecord) -> bool:
    """True when the run may be inserted under run.run_id. A replay of the same execution (same id and start
    time: a spool file ingested again) is a duplicate. A batch run whose deterministic id was taken by another
    execution (two processes on the same line) is re-keyed deterministically from its own start time, so both
    charges are kept and a replay of the re-keyed run is still recognised."""
    for _ in range(2):
        rows = tx.query("SELECT started_at FROM runs WHERE run_id = ?", [run.run_id])
        if not rows:
            return True
        if run.batch_line is None or rows[0][0] == to_naive_utc(run.started_at):
            return False
        new_id = rekeyed_run_id(run.run_id, run.started_at)
        run.run_id = new_id
        for call in run.calls:
            call.run_id = new_id
    return False


def insert_run(tx: Tx, run: RunRecord) -> bool:
    """Insert a run and its calls; False when the run is already recorded (nothing changes then)."""
    if not _claim_run_id(tx, run):
        return False
    tx.execute(_RUN_INSERT, run_row(run))
    tx.executemany(_CALL_INSERT, [call_row(c) for c in run.calls])
    if run.policy.reservation_id:
        tx.execute(
            "UPDATE reservations SET released_at = ?, actual_cost = ? WHERE reservation_id = ? "
            "AND released_at IS NULL",
            [
                (run.ended_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None),
                quantize_money(run.total_cost),
                run.policy.reservation_id,
            ],
        )
    for event in run.policy_events:
        tx.execute(
            "INSERT INTO policy_events (event_id, run_id, recorded_at, rule, result, reason_code, message, enforced) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            [event.event_id, run.run_id, to_naive_utc(run.started_at), event.rule, event.result, event.reason_code,
             event.message, event.enforced],
        )
        audit.append(tx, "policy", event.event_id)
    audit.append(tx, "run", run.run_id)
    for hook in _after_insert_hooks:
        hook(tx, run)
    return True


@dataclass
class RecordResult:
    inserted: list[str] = field(default_factory=list)  # run ids written now (incl. drained leftovers)
    duplicates: list[str] = field(default_factory=list)  # already in the ledger
    spooled: list[str] = field(default_factory=list)  # still in the spool (ledger not writable)
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def ingest(ledger: Ledger, items: list[tuple[Path, RunRecord | None]], spool: Spool,
           result: RecordResult | None = None) -> RecordResult:
    """Write spooled runs under one writer lock hold, one transaction per run, removing each spool file after
    its commit (a crash in between re-ingests it as a duplicate: exactly once).

        ingest(ledger, [(spool.write(run), run) for run in finished], spool)
    """
    result = result or RecordResult()
    if not items:
        return result
    try:
        with ledger.session() as session:
            for path, run in items:
                if run is None:
                    result.unreadable.append(path.name)
                    continue
                with session.transaction() as tx:
                    inserted = insert_run(tx, run)
                (result.inserted if inserted else result.duplicates).append(run.run_id)
                spool.remove(path)
    except LedgerError as exc:
        result.error = str(exc)
        result.spooled = [p.name.split(".")[0] for p in spool.pending()]
    return result


def drain(ledger: Ledger, spool: Spool | None = None, result: RecordResult | None = None) -> RecordResult:
    """Ingest every pending spool file, one transaction per run, exactly once."""
    spool = spool or Spool(ledger.spool_dir())
    return ingest(ledger, list(spool.items()), spool, result)


def record_run(ledger: Ledger, run: RunRecord) -> RecordResult:
    """Spool the run, then drain the spool into the ledger (this run and any leftovers)."""
    spool = Spool(ledger.spool_dir())
    spool.write(run)
    return drain(ledger, spool)


def record_runs(ledger: Ledger, runs: list[RunRecord]) -> RecordResult:
    spool = Spool(ledger.spool_dir())
    for run in runs:
        spool.write(run)
    return drain(ledger, spool)
