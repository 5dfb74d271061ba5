"""Platform-specific file handling in one place: the ledger's sidecar lock and directory fsync.

The lock goes through portalocker (flock on Linux/macOS, LockFileEx/msvcrt on Windows), so genops imports and
runs on every platform. Waits are bounded: a lock held by a stuck process makes a command give up after
`lock_timeout_seconds` (GENOPS_LOCK_TIMEOUT, `.genops.yml` `limits: {lock_timeout_seconds: ...}`, default 30)
with exit 4 and one line naming the lock file, instead of piling up cron jobs; a writer's run stays in the spool.

    with hold_file_lock(Path("ledger.duckdb.lock"), exclusive=True):
        ...                                   # LockTimeout (a LedgerError, exit 4) after the timeout
    fsync_directory(spool_dir)                # a rename is durable (a no-op where directories cannot be opened)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genops_cli.errors import LedgerError


class LockTimeout(LedgerError):
    """The ledger lock was not free within the configured time (exit 4)."""


def lock_timeout() -> float:
    from genops_cli.safe_load import current_limits

    return current_limits().lock_timeout_seconds


def _timeout_message(path: Path, waited: float) -> str:
    return (f"ledger lock {path}: still held by another genops process after {waited:g} s; runs being recorded "
            "stay in the spool and are ingested by the next command; find the holder (e.g. `lsof` on the lock "
            "file) or raise GENOPS_LOCK_TIMEOUT / 'limits: {lock_timeout_seconds: ...}' in .genops.yml")


def wait_marker(path: Path) -> Path:
    """The file a process waiting for the lock `path` touches, so a holder that keeps it across transactions
    (the ingester process) lets go (`someone_waits`)."""
    return path.with_name(path.name + ".want")


def someone_waits(path: Path, since_ns: int) -> bool:
    """True when a process has been waiting for the lock `path` since `since_ns` (time.time_ns())."""
    try:
        return wait_marker(path).stat().st_mtime_ns >= since_ns
    except OSError:
        return False


def _announce_wait(path: Path) -> None:
    try:
        wait_marker(path).touch()  # creates it, or sets its time to now
    except OSError:
        pass  # only a hint: the holder lets go within its maximum hold anyway


@contextmanager
def hold_file_lock(path: Path, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive (writer) or shared (reader) lock on `path`, waiting at most `timeout` seconds (and
    saying so in `wait_marker(path)` while waiting)."""
    import portalocker

    timeout = lock_timeout() if timeout is None else timeout
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # closed in the finally below, after unlocking
    except OSError as exc:
        raise LedgerError(f"ledger lock {path}: cannot create ({exc.strerror or exc}); check that the ledger's "
                          "folder is writable") from None
    flags = (portalocker.LockFlags.EXCLUSIVE if exclusive else portalocker.LockFlags.SHARED) \
        | portalocker.LockFlags.NON_BLOCKING
    deadline = time.monotonic() + timeout
    delay = 0.005
    locked = False
    try:
        while True:
            try:
                portalocker.lock(handle, flags)
                locked = True
                break
            except portalocker.AlreadyLocked:
                pass
            except portalocker.LockException as exc:
                raise LedgerError(f"ledger lock {path}: cannot lock ({exc}); check the file system supports "
                                  "locks") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(_timeout_message(path, timeout))
            _announce_wait(path)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
        yield
    finally:
        if locked:
            portalocker.unlock(handle)
        handle.close()


@contextmanager
def hold_thread_lock(lock: threading.RLock, path: Path, timeout: float | None = None) -> Iterator[None]:
    """The process-wide mutex threads of one process share a ledger through, with the same bounded wait."""
    timeout = lock_timeout() if timeout is None else timeout
    if not lock.acquire(timeout=timeout):
        raise LockTimeout(_timeout_message(path, timeout))
    try:
        yield
    finally:
        lock.release()


def fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable. Windows cannot open a directory: NTFS journals the rename."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def try_lock(path: Path) -> Any | None:
    """An exclusive lock on `path` without waiting, held until `unlock(handle)` or the process ends (however it
    ends: the operating system drops it); None when another process holds it. Spool segments use it to tell a
    segment still being written from one whose writer is done."""
    import portalocker

    handle = open(path, "a+b")  # noqa: SIM115 - closed by unlock()
    try:
        portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    except portalocker.LockException:
        handle.close()
        return None
    return handle


def unlock(handle: Any) -> None:
    import portalocker

    try:
        portalocker.unlock(handle)
    finally:
        handle.close()
