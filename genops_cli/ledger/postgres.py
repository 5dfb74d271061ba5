"""The shared ledger: the same schema on PostgreSQL (psycopg 3), for many machines writing to one ledger.

    ledger = open_ledger("postgresql://genops:PASSWORD@db.internal:5432/finops?schema=genops")
    with ledger.write() as tx:       # one transaction; the audit chain is serialized by an advisory lock
        tx.execute("INSERT INTO runs ... ON CONFLICT (run_id) DO NOTHING", row)
    with ledger.read() as tx:        # a READ ONLY transaction
        tx.query("SELECT team, SUM(total_cost) FROM runs GROUP BY team")

The URL is a libpq connection URI plus one genops parameter, `schema` (default `genops`): the ledger's tables
live in that schema, created with its tables on first use (CREATE SCHEMA needs the CREATE privilege on the
database once; afterwards writers need only SELECT/INSERT/UPDATE/DELETE). A libpq `options=-csearch_path=NAME`
is honoured the same way when `schema` is not given. Passwords never leave this module unmasked: `display`,
errors and the spool directory name are computed from the URL without its password.

Needs the `postgres` extra (`pip install 'genops-cli[postgres]'`); psycopg is imported on first use only.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from genops_cli.errors import ConfigError, LedgerError
from genops_cli.ledger.locking import lock_timeout
from genops_cli.ledger.schema import CURRENT_VERSION, TABLES
from genops_cli.ledger.store import Ledger, Tx, _migrate, _one_line

DEFAULT_SCHEMA = "genops"

# Fixed advisory-lock keys (pg_advisory_xact_lock(bigint)); the budget scopes use hashtext() of "genops:<scope>"
# through Tx.lock_scopes, which cannot collide with these two 64-bit constants in practice.
MIGRATION_LOCK_KEY = 0x67656E6F70730001  # "genops" + 1: schema creation and migrations
AUDIT_CHAIN_LOCK_KEY = 0x67656E6F70730002  # the hash chain: one appender at a time, in seq order

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_IDLE_PER_LEDGER = 4  # connections kept per process for reuse (batch runs, drains)
#: work_mem of read transactions (reports, analyze, serve), per sort or hash node: set_config(..., true) lasts
#: until the transaction ends. GENOPS_PG_READ_WORK_MEM overrides it (any PostgreSQL memory size, e.g. 64MB).
READ_WORK_MEM = "64MB"
_MEMORY_SIZE = re.compile(r"^\d+\s*(kB|MB|GB|TB)?$")


def read_work_mem() -> str:
    """READ_WORK_MEM, or GENOPS_PG_READ_WORK_MEM when set (a bad value is a configuration error, exit 2)."""
    value = os.environ.get("GENOPS_PG_READ_WORK_MEM", "").strip() or READ_WORK_MEM
    if not _MEMORY_SIZE.match(value):
        raise ConfigError(f"GENOPS_PG_READ_WORK_MEM={value!r} is not a PostgreSQL memory size; use e.g. 64MB or "
                          "256MB, or unset it")
    return value


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a postgresql:// ledger needs psycopg: install genops-cli[postgres] (pip install 'genops-cli[postgres]')"
        ) from None
    return psycopg


def mask_url(url: str) -> str:
    """The URL with its password replaced by *** (safe for logs, errors and `genops ledger info`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{parts.username or ''}@{netloc}", parts.path, parts.query, parts.fragment))


def parse_url(url: str) -> tuple[str, str]:
    """(libpq conninfo URL without the genops `schema` parameter, schema name)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port (ValueError when out of range)
    except ValueError as exc:
        raise ConfigError(f"ledger URL {url.split('@')[-1][:80]!r}: not a valid URL ({exc}); use "
                          "postgresql://user@host:5432/dbname?schema=genops") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    rest: list[tuple[str, str]] = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
            if key == "options" and schema is None:
                found = re.search(r"-c\s*search_path\s*=\s*([^\s,]+)", unquote(value))
                if found:
                    schema = found.group(1).strip('"')
    schema = schema or DEFAULT_SCHEMA
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"ledger URL {mask_url(url)}: schema {schema!r} is not a plain identifier; use letters, digits and _ "
            "(e.g. ?schema=genops)"
        )
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest, quote_via=quote), parts.fragment))
    return conninfo, schema


class PostgresLedger(Ledger):
    """A ledger in one schema of a PostgreSQL database. Thread-safe; keeps a few idle connections per process."""

    backend = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo, self.schema = parse_url(url)
        self.location = mask_url(url)
        self._idle: list[Any] = []
        self._guard = threading.Lock()
        self._pid = os.getpid()
        self._migrated = False

    # -- Ledger interface -------------------------------------------------------------------------------------

    @property
    def display(self) -> str:
        return self.location

    def spool_dir(self) -> Path:
        """GENOPS_SPOOL_DIR, else ~/.genops/spool/<sha256 of the URL without password, 16 hex>/."""
        override = os.environ.get("GENOPS_SPOOL_DIR")
        if override:
            return Path(override)
        digest = hashlib.sha256(_without_password(self.url).encode()).hexdigest()[:16]
        return Path.home() / ".genops" / "spool" / digest

    def exists(self) -> bool:
        return self._probe("cannot read the ledger", lambda conn: self._stored_version(conn) is not None)

    def _probe(self, what: str, query: Callable[[Any], Any]) -> Any:
        """A read outside a transaction, retried once on a fresh connection when a reused one turns out dead
        (server restart, idle timeout, a backend terminated by an administrator); then a LedgerError (exit 4),
        never a driver traceback."""
        psycopg = _psycopg()
        for attempt in (1, 2):
            try:
                with self._session() as conn:
                    return query(conn)
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise self._error(what, exc) from None
            except psycopg.Error as exc:
                raise self._error(what, exc) from None
        return None

    def size_bytes(self) -> int | None:
        """Total on-disk size (tables, indexes, TOAST) of the ledger's tables in its schema."""
        def query(conn: Any) -> int | None:
            row = conn.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r' "
                "AND c.relname = ANY(%s)",
                [self.schema, [*TABLES, "schema_version"]],
            ).fetchone()
            return int(row[0]) if row and row[0] else None

        return self._probe("cannot read the ledger size", query)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One transaction. Holds the audit-chain advisory lock from its start, so appends never race and every
        lock a writer takes later (budget scopes) is always taken after it: no lock-order deadlocks."""
        psycopg = _psycopg()
        self._ensure_schema()
        with self._session() as conn:
            tx = Tx(conn, self.backend)
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
                    yield tx
            except psycopg.Error as exc:
                raise self._error("write failed", exc) from None

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """One snapshot for the whole read: REPEATABLE READ, READ ONLY, DEFERRABLE, so a report never mixes runs
        and costs committed at different moments while writers go on (a fresh or older ledger is migrated first,
        like the DuckDB backend)."""
        psycopg = _psycopg()
        self._ensure_schema()
        with self._session() as conn:
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE")
                    # Reports group and sort whole windows of calls (hash aggregates per run, percentile sorts):
                    # with the server's default work_mem (4 MB) they spill to disk. For this transaction only.
                    conn.execute("SELECT set_config('work_mem', %s, true)", [read_work_mem()])
                    yield Tx(conn, self.backend)
            except psycopg.Error as exc:
                raise self._error("read failed", exc) from None

    # -- connections ------------------------------------------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> LedgerError:
        message = _one_line(exc).replace(self.url, self.location)
        parts = urlsplit(self.url)
        if parts.password:
            message = message.replace(parts.password, "***").replace(unquote(parts.password), "***")
        return LedgerError(f"ledger {self.location}: {what} ({message})")

    def _connect(self) -> Any:
        psycopg = _psycopg()
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self.conninfo:
            kwargs["connect_timeout"] = int(os.environ.get("GENOPS_PG_CONNECT_TIMEOUT", "10"))
        try:
            conn = psycopg.connect(self.conninfo, **kwargs)
            _register_loaders(conn)
            # Naive UTC timestamps everywhere: an aware datetime bound to a TIMESTAMP column converts via the
            # session zone, which must therefore be UTC. search_path makes the schema's tables unqualified.
            # lock_timeout bounds waits on the advisory locks as well (GENOPS_LOCK_TIMEOUT, like the DuckDB lock):
            # a stuck writer makes others fail with exit 4 (runs kept in the spool) instead of piling up.
            conn.execute("SELECT set_config('TimeZone', 'UTC', false), set_config('search_path', %s, false), "
                         "set_config('lock_timeout', %s, false)",
                         [_quote_ident(self.schema), f"{max(1, int(lock_timeout() * 1000))}ms"])
        except psycopg.Error as exc:
            raise self._error("cannot connect; check the URL, that the server is up and the role may log in",
                              exc) from None
        return conn

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """A connection from this process's idle list (or a new one); broken ones are closed, never reused."""
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        try:
            yield conn
        finally:
            # Reused only when alive and outside a transaction (a rolled-back error leaves it idle and usable).
            if not conn.closed and conn.info.transaction_status == _idle_status():
                with self._guard:
                    if len(self._idle) < _IDLE_PER_LEDGER:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Close the idle connections (they also close with the process)."""
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- schema -----------------------------------------------------------------------------------------------

    def _stored_version(self, conn: Any) -> int | None:
        row = conn.execute("SELECT to_regclass(%s)", [f"{_quote_ident(self.schema)}.schema_version"]).fetchone()
        if not row or row[0] is None:
            return None
        return conn.execute(f"SELECT MAX(version) FROM {_quote_ident(self.schema)}.schema_version").fetchone()[0]

    def _ensure_schema(self) -> None:
        """Create the schema and apply migrations once per process, under an advisory lock so that many
        machines starting at once migrate exactly once. Skipped (one query) when the schema is current, so a
        role without CREATE rights can write to a ledger that an owner created."""
        if self._migrated:
            return
        psycopg = _psycopg()
        with self._session() as conn:
            try:
                if self._stored_version(conn) != CURRENT_VERSION:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
                        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                              [self.schema]).fetchone()
                        if not exists:
                            conn.execute(f"CREATE SCHEMA {_quote_ident(self.schema)}")
                        _migrate(Tx(conn, self.backend))
            except psycopg.Error as exc:
                raise self._error("cannot create or migrate the schema (needs CREATE on the database "
                                  "the first time)", exc) from None
        self._migrated = True


def _idle_status() -> Any:
    return _psycopg().pq.TransactionStatus.IDLE


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_LOADER_CACHE: dict[str, Any] = {}


def _register_loaders(conn: Any) -> None:
    """NUMERIC values without a fractional part load as int (SUM of a BIGINT column), like DuckDB's HUGEINT;
    money columns are NUMERIC(18,10) and always carry a scale, so they load as Decimal."""
    loader = _LOADER_CACHE.get("numeric")
    if loader is None:
        from psycopg.types.numeric import NumericLoader

        class IntegralNumericLoader(NumericLoader):  # type: ignore[misc]
            def load(self, data: Any) -> Any:
                raw = bytes(data)
                if b"." not in raw and raw.lstrip(b"-").isdigit():
                    return int(raw)
                return super().load(data)

        loader = _LOADER_CACHE["numeric"] = IntegralNumericLoader
    conn.adapters.register_loader("numeric", loader)
