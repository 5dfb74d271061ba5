"""Background writer: long-lived processes (the Python API, auto_instrument) hand finished runs to a daemon
thread, which takes every finished run available (up to `batch_size`), spools them to disk as ONE file with one
fsync (`Spool.write_many`), ingests them in grouped transactions (`records.insert_runs`: one transaction per up
to 200 runs, each run still all-or-nothing and idempotent by run id) and then removes the spool file. The run's
own thread only enqueues, so instrumentation adds little to each `pipeline.run()`.

    writer = get_writer(ledger)
    writer.submit(run)          # returns at once
    writer.flush()              # wait until everything submitted is in the ledger (also runs at exit)

Durability: a run is on disk (spool) a few milliseconds after it finishes; what is in the spool survives a crash
and is ingested by the next genops command or writer. `flush()` runs at normal interpreter exit (atexit). If the
ledger is locked or unreachable, runs stay in the spool and the writer retries with backoff.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genops_cli.ledger.records import RecordResult, drain, ingest
from genops_cli.ledger.spool import Spool

if TYPE_CHECKING:
    from genops_cli.ledger.store import Ledger
    from genops_cli.models import RunRecord

_log = logging.getLogger("genops.writer")

_FLUSH = object()  # queued by flush(): the writer stops lingering and writes what it has


class BackgroundWriter:
    """One daemon thread per ledger: spool, then batched ingestion (exporters run as runs are inserted)."""

    def __init__(self, ledger: Ledger, batch_size: int = 500, linger_seconds: float = 0.05) -> None:
        self.ledger = ledger
        self.spool = Spool(ledger.spool_dir())
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self.last_result: RecordResult | None = None
        self.last_error: str | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # RunRecord | None (stop) | _FLUSH
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._needs_drain = False
        # Drain the whole spool (not only this writer's file) on the first batch (leftovers of an earlier
        # process) and after a failed ingestion (the failed runs wait in the spool).
        self._drain_all = True
        self._thread: threading.Thread | None = None
        self._closed = False
        self._start_lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------------------------
    def submit(self, run: RunRecord) -> None:
        """Queue a finished run; it is spooled and ingested in the background."""
        if self._closed:
            raise RuntimeError("the genops writer is closed")
        self._ensure_thread()
        with self._cond:
            self._submitted += 1
        self._queue.put(run)

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until every submitted run is spooled and the spool was drained; True when the ledger has them all
        (False when the ledger could not be written: the runs are safe in the spool)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_FLUSH)  # someone is waiting: stop lingering for more runs
        with self._cond:
            while self._done < self._submitted or self._needs_drain:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if self._thread is None or not self._thread.is_alive():
                    break
                self._cond.wait(remaining if remaining is not None else 1.0)
        if self._done < self._submitted:
            self._process_pending_inline()
        if len(self.spool):
            self._drain()
        return self.last_error is None and not self._needs_drain

    @property
    def pending(self) -> int:
        with self._cond:
            return self._submitted - self._done

    def close(self) -> None:
        """Flush and stop the thread (registered with atexit)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)

    # -- internals ------------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="genops-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        backoff = 0.1
        while True:
            first = self._queue.get()
            if first is None:
                return
            if first is _FLUSH:
                continue
            batch = [first]
            # Linger briefly so back-to-back runs share one drain.
            deadline = time.monotonic() + self.linger_seconds
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                if item is _FLUSH:
                    # Take what is already queued, then write at once.
                    deadline = 0.0
                    continue
                batch.append(item)
            items = self._spool(batch)
            ok = self._drain() if self._drain_all else self._ingest(items)
            if not ok:
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.1

    def _spool(self, batch: list[RunRecord]) -> list[tuple[Path, RunRecord | None]]:
        """Spool the batch as one file (one fsync); returns the (path, run) items to ingest."""
        items: list[tuple[Path, RunRecord | None]] = []
        try:
            path = self.spool.write_many(batch)
            items = [(path, run) for run in batch]
        except OSError as exc:  # disk full / unwritable: say so (the runs cannot be kept)
            self.last_error = f"spool {self.spool.directory}: {exc}"
            _log.error("genops could not spool %d run(s): %s", len(batch), exc)
        with self._cond:
            self._done += len(batch)
            self._needs_drain = True
            self._cond.notify_all()
        return items

    def _drain(self) -> bool:
        """Ingest everything in the spool (grouped transactions)."""
        return self._ingest(None)

    def _ingest(self, items: list[tuple[Path, RunRecord | None]] | None) -> bool:
        """Ingest `items` (just spooled by this writer), or the whole spool when None."""
        try:
            if items is None:
                result = drain(self.ledger, self.spool, grouped=True)
            else:
                result = ingest(self.ledger, items, self.spool, grouped=True)
        except Exception as exc:  # never let the writer thread die
            result = RecordResult(error=f"{type(exc).__name__}: {exc}")
        self.last_result = result
        with self._cond:
            self.last_error = result.error
            self._needs_drain = result.error is not None
            self._drain_all = result.error is not None
            self._cond.notify_all()
        if result.error:
            _log.warning("genops ledger not written (%s); runs are kept in %s", result.error, self.spool.directory)
        return result.error is None

    def _process_pending_inline(self) -> None:
        """The thread is gone (interpreter shutdown): spool what is left in the queue from this thread."""
        batch: list[RunRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item is not _FLUSH:
                batch.append(item)
        if batch:
            self._spool(batch)


_writers: dict[str, BackgroundWriter] = {}
_writers_lock = threading.Lock()


def get_writer(ledger: Ledger) -> BackgroundWriter:
    """The process's writer for this ledger location (created on first use, flushed at exit)."""
    with _writers_lock:
        writer = _writers.get(ledger.location)
        if writer is None or writer._closed:
            writer = BackgroundWriter(ledger)
            _writers[ledger.location] = writer
        return writer


def flush(timeout: float | None = 60.0) -> bool:
    """Flush every writer of this process: True when all runs reached their ledgers."""
    with _writers_lock:
        writers = list(_writers.values())
    return all([w.flush(timeout) for w in writers])


def flush_at_exit() -> None:
    """Flush and stop every writer (atexit; also called by the OpenTelemetry exporter before it shuts down)."""
    with _writers_lock:
        writers = list(_writers.values())
    for writer in writers:
        try:
            writer.close()
        except Exception as exc:  # at exit: report, never raise
            _log.error("genops writer flush at exit failed: %s", exc)


atexit.register(flush_at_exit)
