"""The ledger schema and its migrations, kept in one place (table and column names are a contract: SQL over the
ledger relies on them).

Each migration is a list of statements in the SQL subset that DuckDB and PostgreSQL share. Timestamps are
stored as naive UTC `TIMESTAMP` (both engines, no timezone module needed); money is DECIMAL/NUMERIC(18,10);
JSON documents are stored as TEXT so that neither engine needs an extension.

Add a migration by appending to `MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

import functools
import re

MONEY = "DECIMAL(18,10)"

_V1 = [
    f"""
    CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY,
        batch_id VARCHAR,
        session_id VARCHAR,
        pipeline_name VARCHAR NOT NULL,
        pipeline_hash VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        ended_at TIMESTAMP,
        status VARCHAR NOT NULL,
        error VARCHAR,
        team VARCHAR,
        project VARCHAR,
        environment VARCHAR,
        customer_id VARCHAR,
        feature VARCHAR,
        cost_center VARCHAR,
        tags VARCHAR,
        data_classification VARCHAR,
        policy_result VARCHAR,
        policy_reason_code VARCHAR,
        reserved_cost {MONEY} NOT NULL DEFAULT 0,
        total_cost {MONEY} NOT NULL DEFAULT 0,
        currency VARCHAR NOT NULL DEFAULT 'USD',
        simulated BOOLEAN NOT NULL DEFAULT FALSE,
        genops_version VARCHAR,
        haystack_version VARCHAR,
        cache_hit BOOLEAN NOT NULL DEFAULT FALSE,
        saved_cost {MONEY} NOT NULL DEFAULT 0,
        batch_line INTEGER,
        attempt INTEGER NOT NULL DEFAULT 1
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS calls (
        call_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        parent_call_id VARCHAR,
        span_kind VARCHAR NOT NULL,
        component_name VARCHAR NOT NULL,
        component_type VARCHAR NOT NULL,
        visit INTEGER,
        agent_step INTEGER,
        tool_name VARCHAR,
        provider VARCHAR,
        model VARCHAR,
        input_tokens BIGINT NOT NULL DEFAULT 0,
        cache_read_tokens BIGINT NOT NULL DEFAULT 0,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        output_tokens BIGINT NOT NULL DEFAULT 0,
        reasoning_tokens BIGINT NOT NULL DEFAULT 0,
        usage_source VARCHAR NOT NULL,
        raw_usage VARCHAR,
        unit_prices VARCHAR,
        cost {MONEY} NOT NULL DEFAULT 0,
        list_cost {MONEY} NOT NULL DEFAULT 0,
        priced BOOLEAN NOT NULL DEFAULT TRUE,
        price_snapshot VARCHAR,
        started_at TIMESTAMP NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        status VARCHAR NOT NULL,
        error VARCHAR,
        documents_retrieved INTEGER
    )
    """,
    "CREATE INDEX IF NOT EXISTS calls_run_idx ON calls (run_id)",
    "CREATE INDEX IF NOT EXISTS runs_started_idx ON runs (started_at)",
    f"""
    CREATE TABLE IF NOT EXISTS budgets (
        scope VARCHAR PRIMARY KEY,
        daily_limit {MONEY},
        weekly_limit {MONEY},
        monthly_limit {MONEY},
        policy VARCHAR NOT NULL DEFAULT 'advisory',
        alert_thresholds VARCHAR NOT NULL DEFAULT '50,80,95,100',
        timezone VARCHAR NOT NULL DEFAULT 'UTC',
        source VARCHAR NOT NULL DEFAULT 'cli',
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS reservations (
        reservation_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        scopes VARCHAR NOT NULL,
        amount {MONEY} NOT NULL,
        simulated BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP NOT NULL,
        released_at TIMESTAMP,
        actual_cost {MONEY}
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS alerts (
        alert_id VARCHAR PRIMARY KEY,
        scope VARCHAR NOT NULL,
        period VARCHAR NOT NULL,
        period_key VARCHAR NOT NULL,
        threshold INTEGER NOT NULL,
        spent {MONEY} NOT NULL,
        limit_amount {MONEY} NOT NULL,
        fired_at TIMESTAMP NOT NULL,
        run_id VARCHAR,
        webhook_status VARCHAR,
        UNIQUE (scope, period, period_key, threshold)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        recorded_at TIMESTAMP NOT NULL,
        kind VARCHAR NOT NULL,
        subject_id VARCHAR NOT NULL,
        payload_hash VARCHAR NOT NULL,
        prev_hash VARCHAR NOT NULL,
        entry_hash VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policy_events (
        event_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        recorded_at TIMESTAMP NOT NULL,
        rule VARCHAR NOT NULL,
        result VARCHAR NOT NULL,
        reason_code VARCHAR,
        message VARCHAR,
        enforced BOOLEAN NOT NULL DEFAULT FALSE
    )
    """,
]

# v2: the max_tokens a call was configured with (from the pipeline profile), so `recommend` can tell when
# output stays far below it.
_V2 = [
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS max_tokens INTEGER",
]

# v3: the user a run is attributed to (`genops run --user`, budgets per `user:NAME` scope), and a webhook (URL and
# payload format: generic | slack | teams) per budget, so each budget's alerts reach the channel its owners read.
_V3 = [
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS user_id VARCHAR",
    "ALTER TABLE budgets ADD COLUMN IF NOT EXISTS webhook_url VARCHAR",
    "ALTER TABLE budgets ADD COLUMN IF NOT EXISTS webhook_format VARCHAR",
]

# v4: consolidation (`genops ledger migrate` into a ledger other writers use). Each merge is recorded in
# `ledger_merges` (covered by the target's audit chain) and the source's own chain is kept, entry for entry, in
# `audit_imports`, so `compliance verify` on the target still proves the source's history up to its head.
_V4 = [
    """
    CREATE TABLE IF NOT EXISTS ledger_merges (
        merge_id VARCHAR PRIMARY KEY,
        source_id VARCHAR NOT NULL,
        source_location VARCHAR NOT NULL,
        source_backend VARCHAR NOT NULL,
        source_head_seq BIGINT NOT NULL,
        source_head_hash VARCHAR NOT NULL,
        runs_copied BIGINT NOT NULL,
        merged_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_imports (
        source_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recorded_at TIMESTAMP NOT NULL,
        kind VARCHAR NOT NULL,
        subject_id VARCHAR NOT NULL,
        payload_hash VARCHAR NOT NULL,
        prev_hash VARCHAR NOT NULL,
        entry_hash VARCHAR NOT NULL,
        PRIMARY KEY (source_id, seq)
    )
    """,
]

# v5: exact money and the indexes reports need.
# - Cost columns of runs, calls and reservations widen to DECIMAL(38,18): a call's cost is stored exactly as
#   computed for any token price down to 1e-12 USD (at 10 places every call was rounded before totals summed).
#   DuckDB cannot change a column's type while an index depends on the table: drop and recreate them.
# - calls.contracted_cost: list price after the tenant's discount or contracted rate, before resale markup
#   (FOCUS ContractedCost); NULL on calls recorded before v5 (reports then use the billed cost).
# - PostgreSQL only (statements starting with PG_ONLY): scope and tenant reads filter runs by one attribute and a
#   time window; DuckDB scans with zone maps, where these indexes would only slow down writes.
MONEY_EXACT = "DECIMAL(38,18)"
PG_ONLY = "/* postgresql */ "
_V5 = [
    "DROP INDEX IF EXISTS calls_run_idx",
    "DROP INDEX IF EXISTS runs_started_idx",
    *(f"ALTER TABLE runs ALTER COLUMN {c} TYPE {MONEY_EXACT}" for c in ("reserved_cost", "total_cost", "saved_cost")),
    *(f"ALTER TABLE calls ALTER COLUMN {c} TYPE {MONEY_EXACT}" for c in ("cost", "list_cost")),
    *(f"ALTER TABLE reservations ALTER COLUMN {c} TYPE {MONEY_EXACT}" for c in ("amount", "actual_cost")),
    f"ALTER TABLE calls ADD COLUMN IF NOT EXISTS contracted_cost {MONEY_EXACT}",
    "CREATE INDEX IF NOT EXISTS calls_run_idx ON calls (run_id)",
    "CREATE INDEX IF NOT EXISTS runs_started_idx ON runs (started_at)",
    *(f"{PG_ONLY}CREATE INDEX IF NOT EXISTS runs_{c}_started_idx ON runs ({c}, started_at)"
      for c in ("customer_id", "team", "project", "pipeline_name", "environment", "user_id")),
]

# v6: where each call happened and how agent runs ended. component_path joins the spans a call sits in
# ("researcher/tool:search_agent/search_agent/chat_generator"); agent_instance is the call id of the agent run's
# container row (the Agent's component row, or the row of an Agent nested in an AgentTool); container rows carry
# the steps taken, the max_agent_steps cap and the exit reason (final_answer, exit_condition, max_agent_steps,
# output_limit, content_filter, hook_stop, tool_error, budget_stop, error).
_V6 = [
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS component_path VARCHAR",
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS agent_instance VARCHAR",
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS agent_steps INTEGER",
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS agent_max_steps INTEGER",
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS exit_reason VARCHAR",
]

# v7: an audit trail that says who and what. Each audit entry names its actor (OS user@host, or the principal
# given to the Python API) and, for changes such as budget edits, the values before and after (both covered by
# the entry hash). Each run keeps the hash of the policy and budgets it was admitted under (`policy_snapshots`
# holds each distinct one) and any --policy override. Purges leave tombstones (`purges`, `purged_subjects`) so
# the chain stays verifiable; `legal_holds` stop purges.
_V7 = [
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS actor VARCHAR",
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS change VARCHAR",
    "ALTER TABLE audit_imports ADD COLUMN IF NOT EXISTS actor VARCHAR",
    "ALTER TABLE audit_imports ADD COLUMN IF NOT EXISTS change VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS policy_hash VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS policy_override VARCHAR",
    """
    CREATE TABLE IF NOT EXISTS policy_snapshots (
        policy_hash VARCHAR PRIMARY KEY,
        first_seen_at TIMESTAMP NOT NULL,
        body VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS purges (
        purge_id VARCHAR PRIMARY KEY,
        purged_at TIMESTAMP NOT NULL,
        criteria VARCHAR NOT NULL,
        reason VARCHAR,
        runs_removed BIGINT NOT NULL,
        rows_removed BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS purged_subjects (
        purge_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        subject_id VARCHAR NOT NULL,
        PRIMARY KEY (purge_id, kind, subject_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS legal_holds (
        hold_id VARCHAR PRIMARY KEY,
        scope VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        placed_at TIMESTAMP NOT NULL,
        released_at TIMESTAMP
    )
    """,
]

# v8 (PostgreSQL only; DuckDB scans with zone maps and records the version with nothing to do):
# - A scope's spend (every budget check, `budget status`) sums runs.total_cost of one attribute over a window:
#   the (attribute, started_at) indexes carry total_cost and simulated, so the sum is an index-only scan instead
#   of a heap fetch per run. They replace the v5 indexes on the same keys (no extra index per insert).
# - Active reservations (every budget check and per-call top-up) are the unreleased few among every run's
#   reservation rows: a partial index holds only those.
# - policy_events by run (a run's detail, compliance violations, purges).
_V8 = [
    *(stmt for c in ("customer_id", "team", "project", "pipeline_name", "environment", "user_id") for stmt in (
        f"{PG_ONLY}CREATE INDEX IF NOT EXISTS runs_{c}_started_cost_idx ON runs ({c}, started_at) "
        "INCLUDE (total_cost, simulated)",
        f"{PG_ONLY}DROP INDEX IF EXISTS runs_{c}_started_idx")),
    f"{PG_ONLY}CREATE INDEX IF NOT EXISTS reservations_active_idx ON reservations (created_at) "
    "WHERE released_at IS NULL",
    f"{PG_ONLY}CREATE INDEX IF NOT EXISTS policy_events_run_idx ON policy_events (run_id)",
]

#: (version, statements). The ledger's `schema_version` table records the highest applied version.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
    (8, _V8),
]

CURRENT_VERSION = MIGRATIONS[-1][0]

SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
)

#: Tables in dependency order (exports, migration between backends, verification).
TABLES = ["runs", "calls", "budgets", "reservations", "alerts", "audit_log", "policy_events", "ledger_merges",
          "audit_imports", "policy_snapshots", "purges", "purged_subjects", "legal_holds"]

_COLUMN = re.compile(
    r"^\s*(?:ALTER TABLE \w+ (?:ADD COLUMN IF NOT EXISTS|ALTER COLUMN)\s+)?(\w+)\s+(?:TYPE\s+)?"
    r"(VARCHAR|INTEGER|BIGINT|DECIMAL\(\d+,\d+\)|"
    r"DOUBLE PRECISION|BOOLEAN|TIMESTAMP)(?=[\s,]|$)", re.IGNORECASE)
_TABLE = re.compile(r"(?:CREATE TABLE IF NOT EXISTS|ALTER TABLE)\s+(\w+)", re.IGNORECASE)


@functools.cache
def column_types(table: str) -> dict[str, str]:
    """Column -> SQL type of `table` after every migration, read from the migrations themselves (so code that
    must predict how a row is stored, like the audit payload of a bulk insert, follows new migrations).

        column_types("calls")["latency_ms"]   # 'DOUBLE PRECISION'
    """
    out: dict[str, str] = {}
    for _version, statements in MIGRATIONS:
        for statement in statements:
            found = _TABLE.search(statement)
            if found is None or found.group(1) != table:
                continue
            for line in statement.splitlines():
                column = _COLUMN.match(line)
                if column is not None:
                    out[column.group(1)] = column.group(2).upper()
    return out
