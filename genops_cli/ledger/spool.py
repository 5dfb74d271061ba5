"""Spool: every run's records reach disk before the ledger, so a crash or a locked/unreachable ledger loses
nothing. Files are written to a temp name, fsynced and renamed (atomic on POSIX); ingestion is idempotent by
run_id, and every writing invocation drains what is left.

Three file shapes: `<run_id>.<attempt>.json` holds one run (`write`, fsynced); `group-<uuid>.<count>.json`
holds several runs written with ONE fsync (`write_many`); `seg-<pid>-<token>.jsonl` is the recorder's cheap path
(`hand_off`): one JSON line per run, appended with ONE os.write to a segment the writing process keeps open (no
file created per run, no fsync on the caller's thread; a new segment every SEGMENT_SECONDS). The writer holds a
lock on `<segment>.lock` while the segment is open; readers ingest its complete lines, remember how far they got
in `<segment>.offset` (written after the ledger commit), and delete the segment once it is closed (the lock is
free: rotated, or its process ended however it ended) and fully ingested. A file is removed only after all of its
runs are in the ledger; a crash in between re-ingests the ones already recorded as duplicates.

    path = spool.write_many(runs)          # on disk (fsynced) before any ledger write
    for path, run in spool.items(): ...    # one item per run; run is None for an unreadable file
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from genops_cli.ledger.locking import fsync_directory, try_lock, unlock
from genops_cli.ledger.serialize import SPOOL_FORMAT, dumps_run, run_from_json, run_to_json
from genops_cli.models import RunRecord

_GROUP_PREFIX = "group-"
_SEGMENT_PREFIX = "seg-"
_SEGMENT_SUFFIX = ".jsonl"
#: A writer starts a new segment this often (and after SEGMENT_RUNS runs), so closed segments can be deleted.
SEGMENT_SECONDS = 1.0
SEGMENT_RUNS = 5000


def _is_segment(path: Path) -> bool:
    return path.name.startswith(_SEGMENT_PREFIX) and path.name.endswith(_SEGMENT_SUFFIX)


class _Segment:
    """The segment this process appends to: open file, its writer lock, bytes written."""

    def __init__(self, directory: Path) -> None:
        self.pid = os.getpid()
        self.path = directory / f"{_SEGMENT_PREFIX}{self.pid}-{uuid.uuid4().hex[:12]}{_SEGMENT_SUFFIX}"
        lock = try_lock(Path(f"{self.path}.lock"))  # a fresh name: nobody else holds it
        if lock is None:
            raise OSError(f"spool segment {self.path}: its lock is held by another process")
        self.lock = lock
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.opened = time.monotonic()
        self.runs = 0
        self.end = 0

    def close(self) -> None:
        os.close(self.fd)
        unlock(self.lock)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made = False
        self._segment: _Segment | None = None
        self._segment_guard = threading.RLock()  # RLock: a signal handler may hand off inside hand_off
        # (segment, run_id) -> offset just after that run's line: how far a release may advance the segment.
        self._line_end: dict[tuple[Path, str], int] = {}

    def write(self, run: RunRecord) -> Path:
        return self._write(f"{run.run_id}.{run.attempt}.json", dumps_run(run))

    def hand_off(self, run: RunRecord) -> Path:
        """Spool one run cheaply, on the caller's thread: ONE os.write of its serialized line to this process's
        open segment, NO fsync, no file created. Once this returns the run belongs to the operating system: it
        survives the process exiting in any way (os._exit, SIGKILL); it reaches stable storage when it is
        ingested (the ledger's commit is synced) or when `sync` is called for it (the recorder does when
        ingestion fails). Returns the segment's path."""
        line = (dumps_run(run) + "\n").encode()
        with self._segment_guard:
            segment = self._writable_segment()
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(segment.fd, view):]
            except OSError:
                # A full disk can leave part of the line: cut it off, or the next run's line would be glued to it.
                try:
                    os.ftruncate(segment.fd, segment.end)
                except OSError:
                    self._segment = None  # start a new segment next time; readers skip the broken tail
                raise
            segment.end += len(line)
            segment.runs += 1
            self._line_end[(segment.path, run.run_id)] = segment.end
            return segment.path

    def _writable_segment(self) -> _Segment:
        segment = self._segment
        if segment is not None and segment.pid == os.getpid() and segment.runs < SEGMENT_RUNS and \
                time.monotonic() - segment.opened < SEGMENT_SECONDS:
            return segment
        if segment is not None and segment.pid == os.getpid():
            segment.close()  # rotated: readers delete it once they have ingested it
        if not self._made:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._made = True
        self._segment = _Segment(self.directory)  # a forked child starts its own (offsets are per writer)
        return self._segment

    def close_segment(self) -> None:
        """Close this process's open segment (at exit; readers then delete it once ingested)."""
        with self._segment_guard:
            segment, self._segment = self._segment, None
            if segment is not None and segment.pid == os.getpid():
                segment.close()
                self._delete_if_closed(segment.path)  # already ingested (a flush came first): tidy up now

    def sync(self, paths: Sequence[Path]) -> None:
        """fsync spooled files (and the folder) that are to stay in the spool: grouped, one pass for many runs."""
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # ingested meanwhile (by another process)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if paths and self.directory.is_dir():
            fsync_directory(self.directory)

    def check_writable(self) -> None:
        """Raise OSError unless a run can be spooled here (the folder is created if needed; a probe file is
        written and removed). Called before a run spends anything: nothing spends unless it can be recorded."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._made = True
        probe = self.directory / f".tmp-probe-{os.getpid()}-{uuid.uuid4().hex}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"{}")
        finally:
            os.close(fd)
            os.unlink(probe)

    def write_many(self, runs: Sequence[RunRecord]) -> Path:
        """Spool several runs as one file with one fsync (a single run gets the one-run file shape)."""
        if len(runs) == 1:
            return self.write(runs[0])
        body = json.dumps({"spool_format": SPOOL_FORMAT, "runs": [run_to_json(r) for r in runs]}, sort_keys=True)
        return self._write(f"{_GROUP_PREFIX}{uuid.uuid4().hex}.{len(runs)}.json", body)

    def _write(self, name: str, body: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            fsync_directory(self.directory)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return final

    def pending(self) -> list[Path]:
        """Pending spool files (one run, a group of runs, or a segment with lines not ingested yet). Closed
        segments that are fully ingested are deleted on the way."""
        if not self.directory.is_dir():
            return []
        found: list[Path] = []
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith(".tmp-"):
                continue
            if name.endswith(".json"):
                found.append(path)
            elif _is_segment(path):
                if _size(path) > _offset(path):
                    found.append(path)
                else:
                    self._delete_if_closed(path)
        return sorted(found)

    def __len__(self) -> int:
        """Pending runs (a group file counts its runs from its name, a segment its lines not ingested yet)."""
        return sum(self.runs_in(p) for p in self.pending())

    @staticmethod
    def runs_in(path: Path) -> int:
        """Runs waiting in one spool file."""
        if _is_segment(path):
            try:
                with open(path, "rb") as fh:
                    fh.seek(_offset(path))
                    return fh.read().count(b"\n")
            except OSError:
                return 0
        return _runs_in(path)

    def pending_run_ids(self) -> list[str]:
        """Run ids still in the spool (group files are read; an unreadable one is named by its file name)."""
        ids: list[str] = []
        for path, run in self.items():
            ids.append(run.run_id if run is not None else path.name.split(".")[0])
        return ids

    def items(self) -> Iterator[tuple[Path, RunRecord | None]]:
        """(path, run) for each pending run; run is None for an unreadable file or line (kept, reported)."""
        for path in self.pending():
            if _is_segment(path):
                yield from self._segment_items(path)
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                runs = [run_from_json(r) for r in data["runs"]] if path.name.startswith(_GROUP_PREFIX) else [
                    run_from_json(data)]
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
                yield path, None  # a damaged or planted file is reported, never a crash of every later command
                continue
            for run in runs:
                yield path, run

    def _segment_items(self, path: Path) -> Iterator[tuple[Path, RunRecord | None]]:
        """The complete lines of a segment after its offset (a line still being appended is left for later)."""
        start = _offset(path)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
        except OSError:
            return
        position = start
        for line in data[: data.rfind(b"\n") + 1].splitlines(keepends=True):
            position += len(line)
            try:
                run = run_from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                yield path, None
                continue
            self._line_end[(path, run.run_id)] = max(position, self._line_end.get((path, run.run_id), 0))
            yield path, run

    def release(self, path: Path, run_ids: Iterable[str]) -> None:
        """All of `path`'s runs handed out (`run_ids`) are in the ledger: remove a one-run or group file; for a
        segment, record how far it is ingested and delete it once it is closed and fully ingested."""
        if not _is_segment(path):
            self.remove(path)
            return
        end = max((self._line_end.pop((path, run_id), 0) for run_id in run_ids), default=0)
        try:
            if end > _offset(path):
                _write_offset(path, end)
        except OSError:  # the runs are committed; without the offset they are only read again, as duplicates
            return
        self._delete_if_closed(path)

    def _delete_if_closed(self, path: Path) -> None:
        """Delete a fully ingested segment whose writer closed it (its lock is free)."""
        segment = self._segment
        if segment is not None and segment.path == path and segment.pid == os.getpid():
            return
        try:
            lock = try_lock(Path(f"{path}.lock"))
        except OSError:
            return
        if lock is None:  # the writer still appends to it
            return
        try:
            done = _size(path) <= _offset(path)
            if done:
                self.remove(path)
                self.remove(Path(f"{path}.offset"))
        finally:
            unlock(lock)
        if done:  # after unlocking: Windows cannot delete a file that is open
            try:
                Path(f"{path}.lock").unlink()
            except OSError:
                pass

    @staticmethod
    def remove(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _offset(path: Path) -> int:
    """How far a segment is ingested (bytes), from its `.offset` file (0 when none)."""
    try:
        return int(Path(f"{path}.offset").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _write_offset(path: Path, end: int) -> None:
    target = Path(f"{path}.offset")
    tmp = target.with_name(f".tmp-{target.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(str(end))
    os.replace(tmp, target)


def _runs_in(path: Path) -> int:
    if path.name.startswith(_GROUP_PREFIX):
        try:
            return int(path.name.split(".")[1])
        except (IndexError, ValueError):
            return 1
    return 1
