"""The recorder: the one way a finished run reaches the ledger, for `genops run`, batches and the Python API.

    recorder = get_recorder(ledger)               # one per ledger and process
    recorder.ensure_writable()                    # before spending: LedgerError (exit 4) if runs cannot be kept
    recorder.submit(run)                          # on the caller's thread: the run is handed to the OS (spool)
    result = recorder.flush()                     # every submitted run is in the ledger, or kept in the spool
    result = recorder.record(run)                 # submit + flush (a single `genops run`)

What the caller pays per run: serializing the run and ONE os.write of it to this process's open spool segment
(`Spool.hand_off`): no file created, no fsync, no ledger work. Ingestion (ledger transaction, hooks: audit,
compliance, alerts, OTel) happens
- `inline`: at `flush()`, in the calling process, grouped (the CLI: a single run or a batch flushes as it goes);
- `process`: in a separate ingester process (`genops_cli.ledger.ingester`) started on first use and fed by the
  spool folder, so ledger work never competes for the caller's GIL (long-lived processes: the Python API). It
  ingests whatever is in the spool every `INGEST_INTERVAL_S`, on `flush()`, and when its parent goes away (the
  parent's end, even os._exit or SIGKILL, closes its stdin): what the parent spooled is ingested without waiting
  for another genops command.

Durability (stated in the README): once `submit` returns (the moment `pipeline.run()` returns, for the API) the
run survives the process dying in any way; a machine crash can lose runs not yet ingested, at most those of the
last `INGEST_INTERVAL_S` plus the ingestion time (each ledger commit is synced; runs that stay in the spool
because the ledger cannot be written are fsynced, in one group, at that point). Runs left in the spool are
ingested by the next genops command that touches the ledger, or `genops ledger drain`, through the same hooks.

Interrupts: `in_flight(run, snapshot)` marks a run as running; on SIGTERM/SIGINT (handlers installed by
`install_signal_handlers`, main thread only, chaining to the handlers they replace) each run in flight is
recorded as `interrupted` with the spend captured so far, every recorder is flushed, then the previous handler
runs (default SIGTERM: the process ends with that signal; SIGINT: KeyboardInterrupt).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genops_cli.errors import LedgerError
from genops_cli.ledger.records import RecordResult, ingest
from genops_cli.ledger.spool import Spool

if TYPE_CHECKING:
    from genops_cli.ledger.store import Ledger
    from genops_cli.models import RunRecord

_log = logging.getLogger("genops.recorder")

#: How often an idle ingester process looks at the spool (seconds; while runs arrive it looks every 20 ms):
#: with the ingestion time, the window for a machine crash (see above).
INGEST_INTERVAL_S = 0.1
#: GENOPS_INGEST=inline|process overrides the mode a caller asks for (e.g. inline in a sandbox without fork).
MODE_ENV = "GENOPS_INGEST"


class Recorder:
    """Spool first (cheap, on the caller's thread), then ingest (inline at flush, or in an ingester process)."""

    def __init__(self, ledger: Ledger, mode: str = "inline", config_path: str | os.PathLike[str] | None = None
                 ) -> None:
        mode = os.environ.get(MODE_ENV) or mode
        if mode not in ("inline", "process"):
            raise ValueError(f"{MODE_ENV}={mode!r}: expected inline or process")
        self.ledger = ledger
        self.mode = mode
        self.spool = Spool(ledger.spool_dir())
        self.config_path = str(config_path) if config_path else None
        self.last_result: RecordResult | None = None
        self._pending: list[tuple[Path, RunRecord | None]] = []  # submitted, not yet ingested (inline mode)
        # RLock: a signal handler may submit while this thread is inside submit() or flush().
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._ingester: _IngesterProcess | None = None
        self._writable_checked = False

    # -- the caller's side ------------------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Raise LedgerError (exit 4) when a run could not be spooled: checked before anything is spent."""
        if self._writable_checked:
            return
        try:
            self.spool.check_writable()
        except OSError as exc:
            raise LedgerError(
                f"spool folder {self.spool.directory} is not writable ({exc.strerror or exc}): nothing was run, "
                "as its records could not be kept; fix the folder's permissions or set GENOPS_SPOOL_DIR") from exc
        self._writable_checked = True

    def submit(self, run: RunRecord) -> None:
        """Hand a finished run to the operating system (its spool file); the ledger gets it at the next flush
        (inline) or within INGEST_INTERVAL_S (process). Raises LedgerError when the spool cannot be written."""
        try:
            path = self.spool.hand_off(run)
        except OSError as exc:
            raise LedgerError(f"spool {self.spool.directory}: {exc.strerror or exc}; the run could not be kept"
                              ) from exc
        if self.mode == "process":
            self._ensure_ingester()
            return
        with self._lock:
            self._pending.append((path, run))

    def flush(self, timeout: float | None = 60.0, wait: bool = True) -> RecordResult:
        """Every run submitted so far is in the ledger (result.ok) or safe (fsynced) in the spool (result.error
        says why, result.spooled which runs wait there). With `wait=False` (a signal handler, which may have
        interrupted a flush of this very thread) a flush already under way is not waited for: the runs are in
        the spool either way."""
        if not self._flush_lock.acquire(blocking=wait):
            return RecordResult(error="a flush was under way; runs stay in the spool for the next command")
        try:
            if self.mode == "process" and self._ingester is not None:
                result = self._ingester.flush(timeout)
                if result is not None:
                    self.last_result = result
                    return result
                self._ingester = None  # the ingester is gone: ingest here
                result = self._ingest_inline(list(self.spool.items()))
            else:
                with self._lock:
                    items, self._pending = self._pending, []
                result = self._ingest_inline(items)
            self.last_result = result
            return result
        finally:
            self._flush_lock.release()

    def record(self, run: RunRecord) -> RecordResult:
        self.submit(run)
        return self.flush()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        self.flush()
        self.spool.close_segment()  # closed: whoever ingests it last deletes it
        self.stop_ingester()

    def stop_ingester(self) -> None:
        """Stop the ingester process: it drains what is left in the spool (nothing, after a flush) and exits on
        its own, not waited for. The next submit starts a new one."""
        with self._lock:
            ingester, self._ingester = self._ingester, None
        if ingester is not None:
            ingester.stop()

    # -- ingestion --------------------------------------------------------------------------------------------
    def _ingest_inline(self, items: list[tuple[Path, RunRecord | None]]) -> RecordResult:
        if not items:
            return RecordResult()
        try:
            result = ingest(self.ledger, items, self.spool)
        except Exception as exc:  # a hook or the database failed: the runs stay in the spool
            result = RecordResult(error=f"ledger write failed ({type(exc).__name__}: {exc})")
            result.spooled = [run.run_id for path, run in items if run is not None and path.exists()]
        if result.error:
            kept = [(path, run) for path, run in items if path.exists()]
            self.spool.sync(sorted({path for path, _run in kept}))  # they stay: durable now, in one pass
            if self.mode == "inline":
                with self._lock:  # the next flush tries them again
                    self._pending[:0] = kept
            _log.warning("genops ledger not written (%s); runs are kept in %s", result.error, self.spool.directory)
        return result

    def _ensure_ingester(self) -> None:
        ingester = self._ingester
        if ingester is not None and ingester.recently_alive():
            return
        with self._lock:
            if self._ingester is None or not self._ingester.alive():
                self._ingester = _IngesterProcess(self.ledger.location, self.spool.directory, self.config_path)


class _IngesterProcess:
    """A child `python -m genops_cli.ledger.ingester`: line protocol on its stdin/stdout ("flush" -> one JSON
    result line). Its stdin closing (this process ending, however it ends) makes it drain and exit."""

    def __init__(self, location: str, spool_dir: Path, config_path: str | None) -> None:
        args = [sys.executable, "-m", "genops_cli.ledger.ingester", "--spool", str(spool_dir),
                "--interval", str(INGEST_INTERVAL_S)]
        if config_path:
            args += ["--config", config_path]
        env = {**os.environ, "GENOPS_INGEST_LEDGER": location}  # not in argv: a URL may carry a password
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     bufsize=1, start_new_session=True)  # a terminal's Ctrl-C is the parent's
        self._lock = threading.Lock()
        self._checked = time.monotonic()

    CHECK_S = 1.0

    def alive(self) -> bool:
        self._checked = time.monotonic()
        return self.proc.poll() is None

    def recently_alive(self) -> bool:
        """alive(), asked of the OS at most every CHECK_S seconds (a wait system call per run is not free; a run
        spooled while the ingester is gone is taken by the next one, or by flush)."""
        if time.monotonic() - self._checked < self.CHECK_S:
            return True
        return self.alive()

    def flush(self, timeout: float | None) -> RecordResult | None:
        """The ingester's result for everything in the spool now; None when it is gone or did not answer."""
        with self._lock:
            if not self.alive():
                return None
            try:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self.proc.stdin.write("flush\n")
                self.proc.stdin.flush()
                line = _readline(self.proc.stdout, timeout)
            except (OSError, ValueError):
                return None
        if not line:
            return None
        data = json.loads(line)
        return RecordResult(inserted=data["inserted"], duplicates=data["duplicates"], spooled=data["spooled"],
                            error=data["error"], unreadable=data["unreadable"])

    def stop(self) -> None:
        """Close its stdin: it drains and exits on its own (subprocess reaps it later; nothing it still does needs
        this process)."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()


def _readline(stream: Any, timeout: float | None) -> str:
    if timeout is None:
        return str(stream.readline())
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


# -- readers: every record, or say what is missing ------------------------------------------------------------
@dataclass
class CatchUp:
    """What a reader found in the spool before reading: runs it ingested, runs still pending and why."""

    ingested: int = 0
    pending: int = 0
    reason: str | None = None

    def message(self, spool_dir: Path) -> str:
        return (f"{self.pending} run(s) wait in the spool {spool_dir} and are not in the ledger yet "
                f"({self.reason})")


#: How long a reader waits for the ledger's writer lock before it reports the runs it could not ingest.
CATCH_UP_WAIT_S = 0.5


def catch_up(ledger: Ledger) -> CatchUp:
    """Ingest pending spool files before a read (through the same hooks as any ingestion), without waiting on a
    ledger that another process holds: then, or when the ledger cannot be written (read-only), count the runs
    still pending so the reader can say so (and a bill can refuse)."""
    spool = Spool(ledger.spool_dir())
    waiting = len(spool)
    if not waiting:
        return CatchUp()
    blocked = _write_blocker(ledger)
    if blocked:
        return CatchUp(pending=waiting, reason=blocked)
    # The runs waiting now; runs a busy service spools while they are ingested are newer than this read.
    items = list(spool.items())
    result = ingest(ledger, items, spool)
    done = set(result.inserted) | set(result.duplicates)
    left = sum(1 for _path, run in items if run is None or run.run_id not in done)
    return CatchUp(ingested=len(result.inserted), pending=left,
                   reason=(result.error or "unreadable spool files: see genops ledger info") if left else None)


def _write_blocker(ledger: Ledger) -> str | None:
    """Why the ledger cannot be written right now (read-only, locked by another process), or None."""
    path = getattr(ledger, "path", None)
    if isinstance(path, Path):
        if path.exists() and not os.access(path, os.W_OK):
            return "the ledger file is read-only"
        if not os.access(path.parent, os.W_OK):
            return "the ledger's folder is read-only"
    lock_path = ledger.writer_lock_path()
    if lock_path is not None and lock_path.exists():
        from genops_cli.ledger.locking import hold_file_lock

        try:
            # A short wait: a busy service's ingester lets go of the ledger once it sees a process waiting.
            with hold_file_lock(lock_path, exclusive=True, timeout=CATCH_UP_WAIT_S):
                pass
        except LedgerError:
            return "another process holds the ledger lock"
    return None


# -- one recorder per ledger and process ------------------------------------------------------------------------
_recorders: dict[str, Recorder] = {}
_recorders_lock = threading.RLock()  # re-entrant: a signal handler may run while it is held


def get_recorder(ledger: Ledger, mode: str = "inline", config_path: str | os.PathLike[str] | None = None
                 ) -> Recorder:
    """The process's recorder for this ledger location (created on first use, flushed at exit)."""
    with _recorders_lock:
        recorder = _recorders.get(ledger.location)
        if recorder is None:
            recorder = Recorder(ledger, mode, config_path)
            _recorders[ledger.location] = recorder
        return recorder


def flush_all(timeout: float | None = 60.0, wait: bool = True) -> bool:
    """Flush every recorder of this process: True when all their runs are in their ledgers."""
    with _recorders_lock:
        recorders = list(_recorders.values())
    return all([r.flush(timeout, wait).ok for r in recorders])


def close_all() -> None:
    """Flush and stop every recorder (atexit; the OTel exporter calls it before it shuts down)."""
    with _recorders_lock:
        recorders = list(_recorders.values())
        _recorders.clear()
    for recorder in recorders:
        try:
            recorder.close()
        except Exception as exc:  # at exit: report, never raise
            _log.error("genops recorder flush at exit failed: %s", exc)


atexit.register(close_all)


# -- runs in flight and interrupts -------------------------------------------------------------------------------
#: run_id -> (recorder, snapshot, thread id): the snapshot builds the run as it stands (calls so far, status
#: interrupted); the thread is the one executing it.
_in_flight: dict[str, tuple[Recorder, Callable[[str], RunRecord], int]] = {}


@contextlib.contextmanager
def in_flight(recorder: Recorder, run_id: str, snapshot: Callable[[str], RunRecord]) -> Iterator[None]:
    """Mark a run as executing: if the process is interrupted while it runs, `snapshot(reason)` is recorded as
    the interrupted run (see `_on_signal` for when)."""
    _in_flight[run_id] = (recorder, snapshot, threading.get_ident())
    try:
        yield
    finally:
        _in_flight.pop(run_id, None)


def record_interrupted(reason: str, thread: int | None = None) -> int:
    """Record the runs in flight (all, or those executing on `thread`) as interrupted with the spend so far, and
    flush every recorder; returns how many were recorded."""
    count = 0
    for run_id, (recorder, snapshot, owner) in list(_in_flight.items()):
        if thread is not None and owner != thread:
            continue
        _in_flight.pop(run_id, None)
        try:
            recorder.submit(snapshot(reason))
            count += 1
        except Exception as exc:  # keep going: the other runs and the flush matter more
            _log.error("genops could not record interrupted run %s: %s", run_id, exc)
    flush_all(timeout=20.0, wait=False)
    return count


_previous: dict[int, Any] = {}


def _on_signal(signum: int, frame: Any) -> None:
    """What is cut is recorded as interrupted; what goes on is recorded when it ends (a run is recorded once, and
    the first record of a run id wins, so a run that finishes must not have been recorded as interrupted).
    - previous action ends the process (SIGTERM's default): every run in flight, then the process ends by the
      signal, as it would have without genops;
    - SIGINT's default (KeyboardInterrupt in the main thread): the runs of the main thread; runs on worker
      threads go on (a batch lets them finish) and are recorded when they end;
    - a handler of the application (e.g. a server's graceful shutdown, where requests finish): finished runs are
      flushed and that handler runs; runs still in flight when the interpreter exits are recorded then."""
    name = signal.Signals(signum).name
    previous = _previous.get(signum, signal.SIG_DFL)
    if previous == signal.SIG_IGN:
        return
    if signum == signal.SIGINT and previous in (signal.SIG_DFL, signal.default_int_handler):
        record_interrupted(f"interrupted by {name}", thread=threading.main_thread().ident)
        raise KeyboardInterrupt
    if callable(previous):
        flush_all(timeout=20.0, wait=False)
        previous(signum, frame)
        return
    record_interrupted(f"interrupted by {name}")
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _record_left_in_flight() -> None:
    if _in_flight:
        record_interrupted("interrupted: the process exited while the run was in flight")


atexit.register(_record_left_in_flight)  # registered after close_all, so it runs first


def install_signal_handlers() -> bool:
    """SIGTERM and SIGINT: record runs in flight as interrupted and flush, then chain to the previous handler.
    Only from the main thread (Python's rule); False when not installed. Idempotent."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(signum)
        if current is _on_signal:
            continue
        _previous[signum] = current
        signal.signal(signum, _on_signal)
    return True

