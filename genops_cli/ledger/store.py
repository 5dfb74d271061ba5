"""Ledger backends behind one interface: short-lived transactions, never held open while a pipeline runs.

    ledger = open_ledger("~/.genops/ledger.duckdb")      # or "postgresql://..."
    with ledger.write() as tx:                           # exclusive writer (flock / advisory lock)
        tx.execute("UPDATE budgets SET ... WHERE scope = ?", [scope])
    with ledger.read() as tx:                            # shared reader (read-only connection)
        rows = tx.query("SELECT ... FROM runs WHERE team = ?", ["ml"])

SQL is written once with `?` placeholders in the subset both engines share; `Tx` adapts it per backend.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genops_cli.errors import LedgerError
from genops_cli.ledger.locking import hold_file_lock, hold_thread_lock
from genops_cli.ledger.schema import CURRENT_VERSION, MIGRATIONS, PG_ONLY, SCHEMA_VERSION_DDL, column_types

# Files written by a newer DuckDB cannot be opened by an older one; pinning the storage format keeps ledgers
# readable by every duckdb release in the range pyproject allows.
DUCKDB_STORAGE_VERSION = "v1.2.0"

DEFAULT_LEDGER = "~/.genops/ledger.duckdb"


_VALUES_GROUP = re.compile(r"\bVALUES\s*(\((?:\s*\?\s*,)*\s*\?\s*\))", re.IGNORECASE)


class Tx:
    """One open transaction. `execute`/`query` take `?` placeholders on every backend."""

    def __init__(self, conn: Any, backend: str) -> None:
        self.conn = conn
        self.backend = backend
        #: Values read once per insertion group and reused by its per-run hooks (cleared by
        #: `records.insert_runs`/`insert_run` at their start), e.g. the budget list the alerts hook needs.
        self.memo: dict[str, Any] = {}

    def _sql(self, sql: str) -> str:
        if self.backend == "postgresql":
            return sql.replace("%", "%%").replace("?", "%s")
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self._sql(sql), list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.backend == "postgresql":
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), [list(r) for r in rows])
            return
        group = _VALUES_GROUP.search(sql)
        if group is None:
            self.conn.executemany(sql, [list(r) for r in rows])
            return
        # DuckDB runs executemany row by row; one multi-row VALUES statement is several times faster.
        for start in range(0, len(rows), 200):
            chunk = rows[start:start + 200]
            statement = sql[:group.start(1)] + ", ".join([group.group(1)] * len(chunk)) + sql[group.end(1):]
            self.conn.execute(statement, [value for row in chunk for value in row])

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    on_conflict: str | None = None, chunk: int = 1000) -> None:
        """Insert many rows with ONE statement per `chunk` rows on both engines: each column travels as one array
        parameter (`INSERT ... SELECT UNNEST(CAST(? AS type[])), ...`), so a statement has len(columns)
        parameters whatever the row count. (Binding costs DuckDB ~15 us per scalar parameter: 200 multi-row
        VALUES rows of 30 columns take ~100 ms, the same rows as arrays ~10 ms.) Types come from the schema.

            tx.insert_rows("calls", CALL_COLUMNS, rows, on_conflict="(call_id) DO NOTHING")
        """
        if not rows:
            return
        types = column_types(table)
        select = ", ".join(f"UNNEST(CAST(? AS {types[c]}[]))" for c in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select}"
        if on_conflict:
            sql += f" ON CONFLICT {on_conflict}"
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            self.execute(sql, [list(values) for values in zip(*part, strict=True)])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(self._sql(sql), list(params))
        return [tuple(r) for r in cur.fetchall()]

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(self._sql(sql), list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def iter_batches(self, sql: str, params: Sequence[Any] = (), size: int = 5000
                     ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """(column names, rows) in batches of `size`, without loading the whole result (exports, migration).
        The first batch is always yielded (possibly empty, so callers learn the columns). PostgreSQL streams
        through a server-side cursor, so this needs the surrounding transaction."""
        if self.backend == "postgresql":
            with self.conn.cursor(name="genops_batches") as cur:
                cur.itersize = size
                cur.execute(self._sql(sql), list(params))
                yield from _batches(cur, size)
            return
        yield from _batches(self.conn.execute(sql, list(params)), size)

    def stream(self, sql: str, params: Sequence[Any] = (), size: int = 5000) -> Iterator[dict[str, Any]]:
        """Rows as dicts, read `size` at a time on a cursor of their own, so several streams can be read side by
        side in one transaction (a merge over sorted tables). PostgreSQL: a named server-side cursor each;
        DuckDB: a duplicate connection of the same database (readers hold the shared file lock meanwhile)."""
        if self.backend == "postgresql":
            name = f"genops_stream_{next(_STREAM_IDS)}"
            with self.conn.cursor(name=name) as cur:
                cur.itersize = size
                cur.execute(self._sql(sql), list(params))
                for names, rows in _batches(cur, size):
                    yield from (dict(zip(names, row, strict=True)) for row in rows)
            return
        cur = self.conn.cursor()
        try:
            cur.execute(sql, list(params))
            for names, rows in _batches(cur, size):
                yield from (dict(zip(names, row, strict=True)) for row in rows)
        finally:
            cur.close()

    def binary_order(self, column: str) -> str:
        """An ORDER BY term that sorts text by code point on both engines, as Python compares str (PostgreSQL's
        default collation may follow the locale)."""
        return f'{column} COLLATE "C"' if self.backend == "postgresql" else column

    def lock_scopes(self, scopes: Sequence[str]) -> None:
        """Serialize budget checks per scope. DuckDB writers already hold the exclusive file lock."""
        if self.backend == "postgresql":
            for scope in sorted(set(scopes)):
                self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [f"genops:{scope}"])


_STREAM_IDS = itertools.count(1)


def _batches(cur: Any, size: int) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    names = [d[0] for d in cur.description]
    rows = cur.fetchmany(size)
    yield names, [tuple(r) for r in rows]
    while rows := cur.fetchmany(size):
        yield names, [tuple(r) for r in rows]


@dataclass
class LedgerInfo:
    backend: str
    location: str
    exists: bool
    schema_version: int | None
    size_bytes: int | None
    runs: int
    calls: int


class Ledger(ABC):
    """A ledger location: opens short transactions on demand."""

    backend: str
    location: str

    @abstractmethod
    @contextmanager
    def write(self) -> Iterator[Tx]:
        """Exclusive write transaction; commits on success, rolls back on error. Migrates on first use."""

    @abstractmethod
    @contextmanager
    def read(self) -> Iterator[Tx]:
        """Read-only access. On a ledger that does not exist yet, yields a transaction over an empty schema."""

    @contextmanager
    def session(self) -> Iterator[WriteSession]:
        """Several write transactions under one writer lock hold (batch ingestion): each `transaction()` still
        commits on its own. The default opens one `write()` per transaction; DuckDB keeps one connection."""
        yield WriteSession(self.write)

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def spool_dir(self) -> Path: ...

    def writer_lock_path(self) -> Path | None:
        """The sidecar file writers lock (DuckDB), None when the backend locks inside the database."""
        return None

    def size_bytes(self) -> int | None:
        return None

    @property
    def display(self) -> str:
        return self.location


class WriteSession:
    """Hands out one committed transaction at a time inside `Ledger.session()`.

        with ledger.session() as session:
            for run in runs:
                with session.transaction() as tx:   # commits here; a failure rolls back this run only
                    insert_run(tx, run)
    """

    def __init__(self, transaction: Any) -> None:
        self.transaction = transaction


def _migrate(tx: Tx) -> int:
    tx.execute(SCHEMA_VERSION_DDL)
    current = tx.scalar("SELECT MAX(version) FROM schema_version") or 0
    if current > CURRENT_VERSION:
        raise LedgerError(
            f"ledger {tx.backend}: schema version {current} is newer than this genops ({CURRENT_VERSION}); "
            "upgrade genops-cli"
        )
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            sql = statement
            if statement.startswith(PG_ONLY) and tx.backend != "postgresql":
                continue
            if tx.backend == "postgresql":
                sql = sql.replace("DECIMAL(", "NUMERIC(")
            tx.execute(sql)
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
            [version, datetime.now(timezone.utc).replace(tzinfo=None)],
        )
        current = version
    return current


class _FileLock:
    """The sidecar lock file: exclusive for writers, shared for readers, across processes and platforms, with a
    bounded wait (genops_cli.ledger.locking)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def hold(self, exclusive: bool) -> ContextManager[None]:
        return hold_file_lock(self.path, exclusive)


# Threads of one process share a DuckDB file through a process-wide mutex (flock is per open file, so two
# threads of one process would both get it).
_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(key: str) -> threading.RLock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.RLock())


class DuckDBLedger(Ledger):
    backend = "duckdb"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(os.path.expanduser(str(path))).resolve()
        self.location = str(self.path)
        self._lock = _FileLock(self.path.with_name(self.path.name + ".lock"))
        self._mutex = _process_lock(self.location)
        self._migrated = False
        #: DuckDB worker threads of this process's writer connections (None: DuckDB's default, one per core).
        #: The ingester process uses 1: it writes small transactions, and more threads take cores from the
        #: application whose runs it ingests.
        self.writer_threads: int | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def foreign_file(self) -> bool:
        """The path holds a file that is not a DuckDB database at all (a JSON file, a mistyped path), as opposed to
        a damaged ledger, which keeps DuckDB's header."""
        header = _file_header(self.path)
        return bool(header) and (len(header) < 12 or header[8:12] != b"DUCK")

    def foreign_file_message(self) -> str:
        return (f"ledger {self.path}: not a DuckDB database (another kind of file); point --ledger / GENOPS_LEDGER "
                "at a genops ledger, or at a new path to start one")

    def spool_dir(self) -> Path:
        override = os.environ.get("GENOPS_SPOOL_DIR")
        return Path(override) if override else self.path.with_name(self.path.name + ".spool")

    def writer_lock_path(self) -> Path | None:
        return self._lock.path

    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path.exists() else None

    def _connect(self, read_only: bool) -> Any:
        import duckdb

        # DuckDB opens a .json/.csv/.parquet path as an in-memory database over that file: every write would
        # vanish at close. Such a file is refused before it is opened, and any connection not backed by the
        # file itself after.
        if self.foreign_file():
            raise LedgerError(self.foreign_file_message())
        try:
            if read_only:
                conn = duckdb.connect(str(self.path), read_only=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                config: dict[str, Any] = {"storage_compatibility_version": DUCKDB_STORAGE_VERSION}
                if self.writer_threads:
                    config["threads"] = self.writer_threads
                conn = duckdb.connect(str(self.path), config=config)
            if conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                            ).fetchone() in (None, (None,)):
                conn.close()
                raise LedgerError(self.foreign_file_message())
            return conn
        except duckdb.Error as exc:
            raise LedgerError(
                f"ledger {self.path}: cannot open ({_one_line(exc)}); check the path and permissions"
            ) from None
        except OSError as exc:
            raise LedgerError(
                f"ledger {self.path}: cannot open ({exc.strerror}); check the path and permissions"
            ) from None

    @contextmanager
    def _writer(self) -> Iterator[Callable[[], ContextManager[Tx]]]:
        """The exclusive writer: lock held, one migrated connection; yields a factory of committed transactions."""
        import duckdb

        with hold_thread_lock(self._mutex, self._lock.path), self._lock.hold(exclusive=True):
            conn = self._connect(read_only=False)
            try:
                tx = Tx(conn, self.backend)
                if not self._migrated:
                    conn.begin()
                    _migrate(tx)
                    conn.commit()
                    self._migrated = True

                @contextmanager
                def transaction() -> Iterator[Tx]:
                    conn.begin()
                    try:
                        yield tx
                        conn.commit()
                    except BaseException as exc:
                        conn.rollback()
                        if isinstance(exc, duckdb.Error):  # also when the session is held outside `_writer`
                            raise LedgerError(f"ledger {self.path}: write failed ({_one_line(exc)})") from exc
                        raise

                yield transaction
            except duckdb.Error as exc:
                raise LedgerError(f"ledger {self.path}: write failed ({_one_line(exc)})") from exc
            finally:
                conn.close()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self._writer() as transaction, transaction() as tx:
            yield tx

    @contextmanager
    def session(self) -> Iterator[WriteSession]:
        # One lock hold and one connection for many runs: opening DuckDB costs more than a run's transaction.
        with self._writer() as transaction:
            yield WriteSession(transaction)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        import duckdb

        if not self.path.exists():
            # A reader on a fresh machine sees an empty ledger instead of an error.
            conn = duckdb.connect(":memory:")
            try:
                tx = Tx(conn, self.backend)
                _migrate(tx)
                yield tx
            finally:
                conn.close()
            return
        if not self._migrated:
            if self._stored_version() != CURRENT_VERSION:
                with self.write():  # an older schema: migrate under the writer lock first
                    pass
            # Checked once per Ledger instance: schemas only move forward, and a newer one fails loudly on write.
            self._migrated = True
        with hold_thread_lock(self._mutex, self._lock.path), self._lock.hold(exclusive=False):
            conn = self._connect(read_only=True)
            try:
                yield Tx(conn, self.backend)
            except duckdb.Error as exc:
                raise LedgerError(f"ledger {self.path}: read failed ({_one_line(exc)})") from exc
            finally:
                conn.close()

    def _stored_version(self) -> int | None:
        with hold_thread_lock(self._mutex, self._lock.path), self._lock.hold(exclusive=False):
            conn = self._connect(read_only=True)
            try:
                tx = Tx(conn, self.backend)
                if not _has_table(tx, "schema_version"):
                    return None
                return tx.scalar("SELECT MAX(version) FROM schema_version")
            finally:
                conn.close()


def _has_table(tx: Tx, name: str) -> bool:
    return bool(tx.scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?", [name]))


def _one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()


def resolve_ledger_location(flag: str | None, config_value: str | None = None) -> str:
    """`--ledger` > GENOPS_LEDGER > `.genops.yml` ledger > ~/.genops/ledger.duckdb."""
    return flag or os.environ.get("GENOPS_LEDGER") or config_value or DEFAULT_LEDGER


def open_ledger(location: str) -> Ledger:
    """A `Ledger` for a path (DuckDB) or a postgresql:// URL (needs the `postgres` extra)."""
    if location.startswith(("postgresql://", "postgres://")):
        from genops_cli.ledger.postgres import PostgresLedger

        return PostgresLedger(location)
    from genops_cli.errors import UsageError

    scheme = _URL_SCHEME.match(location)
    if scheme:  # never echo the URL: it may carry a password
        raise UsageError(f"ledger URL scheme {scheme.group(1)!r} is not supported; use a DuckDB file path or a "
                         "postgresql:// URL (--ledger / GENOPS_LEDGER)")
    path = Path(os.path.expanduser(location))
    try:
        is_dir = path.is_dir()
        special = path.exists() and not is_dir and not path.is_file()
    except OSError as exc:  # a name too long for the file system, a path through a file
        shown = location if len(location) <= 120 else f"{location[:60]}...({len(location)} characters)"
        raise UsageError(f"ledger {shown!r}: {exc.strerror or exc}; pass a file path such as ~/.genops/ledger.duckdb "
                         "or a postgresql:// URL (--ledger / GENOPS_LEDGER)") from None
    if not location.strip() or is_dir or not path.name:
        raise UsageError(f"ledger {location!r}: is a directory or empty; pass a file path such as "
                         f"{path / 'ledger.duckdb'} or a postgresql:// URL")
    if special:  # a FIFO would block the open, a device is no database
        raise UsageError(f"ledger {path}: not a regular file (a device, FIFO or socket); point --ledger / "
                         "GENOPS_LEDGER at a ledger file, or at a new path to start one")
    return DuckDBLedger(location)


#: `scheme://...` other than postgresql:// (mysql://, sqlite://, http://); a Windows drive (C:\) is not one.
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")


def _file_header(path: Path) -> bytes | None:
    """The first bytes of an existing regular file (None when there is none, or it cannot be read: the open
    reports that). Only a regular file is read: a FIFO would block."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            return fh.read(16)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
