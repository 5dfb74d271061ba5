"""One run at a time, from the ledger: the list of recorded runs, one run as a tree, and the runs recorded since
the last look (for `genops runs tail`).

    summaries = list_runs(ledger, parse_period(since="24h"), Filters(team="ml"), status="error", limit=20)
    detail = run_detail(ledger, "01a2")          # a unique prefix of the run id is enough
    detail.tree[0].steps[0].calls                # component visit -> agent steps -> LLM call and tool calls
    detail.to_json()

The tree comes from `calls.parent_call_id` (a component visit is a top-level call; an Agent's LLM calls and
tool calls are its children, grouped by `agent_step`), ordered by `seq`. Columns a newer schema adds to `calls`
(an agent component path, an exit reason, ...) are carried in `CallNode.extra` and shown when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.periods import Period
from genops_cli.errors import UsageError
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.money import money_json

RUN_STATUSES = ("ok", "error", "blocked")

#: calls columns the tree shows itself; any other column of a call row goes to `CallNode.extra` when not NULL.
_CALL_FIELDS = (
    "call_id", "run_id", "seq", "parent_call_id", "span_kind", "component_name", "component_type", "visit",
    "agent_step", "tool_name", "provider", "model", "input_tokens", "cache_read_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "usage_source", "unit_prices", "cost", "priced", "price_snapshot",
    "started_at", "latency_ms", "status", "error",
)  # fmt: skip
# Stored for other reports (raw provider usage can be large; list cost is the billing view).
_HIDDEN = {"raw_usage", "list_cost"}

_SUMMARY_SQL = """
    SELECT r.run_id, r.pipeline_name, r.status, r.started_at, r.ended_at, r.team, r.project, r.environment,
           r.customer_id, r.feature, r.cost_center, r.user_id, r.tags, r.total_cost, r.currency, r.simulated,
           r.policy_result, r.policy_reason_code, r.error, r.batch_id, r.attempt, r.cache_hit,
           (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id AND c.model IS NOT NULL) AS model_calls,
           (SELECT COALESCE(SUM(c.input_tokens), 0) FROM calls c WHERE c.run_id = r.run_id) AS input_tokens,
           (SELECT COALESCE(SUM(c.output_tokens), 0) FROM calls c WHERE c.run_id = r.run_id) AS output_tokens
    FROM runs r
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _money(value: Any) -> str:
    """Money in JSON as every genops command writes it (exact, plain decimal string)."""
    return money_json(value if value is not None else 0) or "0"


@dataclass
class RunSummary:
    """One row of `genops runs`."""

    run_id: str
    pipeline: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    total_cost: Decimal
    currency: str
    simulated: bool
    policy_result: str | None
    policy_reason_code: str | None
    error: str | None
    model_calls: int
    input_tokens: int
    output_tokens: int
    attempt: int = 1
    batch_id: str | None = None
    cache_hit: bool = False
    attribution: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float | None:
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds() * 1000, 3)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunSummary:
        return cls(
            run_id=row["run_id"], pipeline=row["pipeline_name"], status=row["status"], started_at=row["started_at"],
            ended_at=row["ended_at"], total_cost=Decimal(row["total_cost"]), currency=row["currency"],
            simulated=bool(row["simulated"]), policy_result=row["policy_result"],
            policy_reason_code=row["policy_reason_code"], error=row["error"], model_calls=int(row["model_calls"]),
            input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]),
            attempt=int(row["attempt"] or 1), batch_id=row["batch_id"], cache_hit=bool(row["cache_hit"]),
            attribution={
                "team": row["team"], "project": row["project"], "environment": row["environment"],
                "customer_id": row["customer_id"], "feature": row["feature"], "cost_center": row["cost_center"],
                "user_id": row["user_id"], "tags": json.loads(row["tags"] or "{}"),
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_ms": self.duration_ms,
            "total_cost": _money(self.total_cost),
            "currency": self.currency,
            "simulated": self.simulated,
            "policy": {"result": self.policy_result, "reason_code": self.policy_reason_code},
            "error": self.error,
            "model_calls": self.model_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "attempt": self.attempt,
            "batch_id": self.batch_id,
            "cache_hit": self.cache_hit,
            "attribution": self.attribution,
        }


def list_runs(ledger: Ledger, period: Period | None, filters: Filters | None = None, status: str | None = None,
              limit: int | None = 50) -> list[RunSummary]:
    """Recorded runs matching the filters, newest first (simulated runs included unless filtered out by the
    caller's `Filters.include_simulated=False`)."""
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(f"--status {status!r}: use one of {', '.join(RUN_STATUSES)}")
    filters = filters or Filters(include_simulated=True)
    where, params = build_where(filters, period, "r")
    if status is not None:
        where += " AND r.status = ?"
        params.append(status)
    sql = f"{_SUMMARY_SQL} WHERE {where} ORDER BY r.started_at DESC, r.run_id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with ledger.read() as tx:
        return [RunSummary.from_row(row) for row in tx.query_dicts(sql, params)]


@dataclass
class CallNode:
    """One recorded call: a component visit, an agent LLM call, a tool call or an inner chat-generator call."""

    call_id: str
    seq: int
    span_kind: str
    component_name: str
    component_type: str
    status: str
    latency_ms: float
    visit: int | None = None
    agent_step: int | None = None
    tool_name: str | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str | None = None
    cost: Decimal = Decimal(0)
    priced: bool = True
    price_snapshot: str | None = None
    unit_prices: dict[str, str] | None = None
    error: str | None = None
    started_at: datetime | None = None
    parent_call_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    children: list[CallNode] = field(default_factory=list)
    steps: list[AgentStep] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CallNode:
        prices = row.get("unit_prices")
        return cls(
            call_id=row["call_id"], seq=int(row["seq"]), span_kind=row["span_kind"],
            component_name=row["component_name"], component_type=row["component_type"], status=row["status"],
            latency_ms=float(row["latency_ms"] or 0), visit=row["visit"], agent_step=row["agent_step"],
            tool_name=row["tool_name"], provider=row["provider"], model=row["model"],
            input_tokens=int(row["input_tokens"] or 0), cache_read_tokens=int(row["cache_read_tokens"] or 0),
            cache_write_tokens=int(row["cache_write_tokens"] or 0), output_tokens=int(row["output_tokens"] or 0),
            reasoning_tokens=int(row["reasoning_tokens"] or 0), usage_source=row["usage_source"],
            cost=Decimal(row["cost"] if row["cost"] is not None else 0), priced=bool(row["priced"]),
            price_snapshot=row["price_snapshot"], unit_prices=json.loads(prices) if prices else None,
            error=row["error"], started_at=row["started_at"], parent_call_id=row["parent_call_id"],
            extra={k: v for k, v in row.items() if k not in _CALL_FIELDS and k not in _HIDDEN and v is not None},
        )

    @property
    def subtree_cost(self) -> Decimal:
        """This call's cost plus every descendant's (an Agent visit costs what its steps cost)."""
        return self.cost + sum((c.subtree_cost for c in self.children), Decimal(0)) + sum(
            (s.cost for s in self.steps), Decimal(0))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "call_id": self.call_id, "seq": self.seq, "span_kind": self.span_kind, "name": self.component_name,
            "type": self.component_type, "visit": self.visit, "agent_step": self.agent_step,
            "tool_name": self.tool_name, "provider": self.provider, "model": self.model,
            "input_tokens": self.input_tokens, "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens, "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens, "usage_source": self.usage_source, "cost": _money(self.cost),
            "total_cost": _money(self.subtree_cost), "priced": self.priced, "price_snapshot": self.price_snapshot,
            "unit_prices": self.unit_prices, "latency_ms": round(self.latency_ms, 3), "status": self.status,
            "error": self.error, "started_at": _iso(self.started_at),
        }
        out.update({k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.extra.items()})
        out["steps"] = [s.to_json() for s in self.steps]
        out["children"] = [c.to_json() for c in self.children]
        return out


@dataclass
class AgentStep:
    """One step of an Agent visit: its LLM call and the tool calls that answered it."""

    step: int
    calls: list[CallNode]

    @property
    def cost(self) -> Decimal:
        return sum((c.subtree_cost for c in self.calls), Decimal(0))

    @property
    def latency_ms(self) -> float:
        return sum(c.latency_ms for c in self.calls)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "cost": _money(self.cost), "latency_ms": round(self.latency_ms, 3),
                "calls": [c.to_json() for c in self.calls]}


@dataclass
class PolicyEventRow:
    rule: str
    result: str
    reason_code: str | None
    message: str | None
    enforced: bool

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "result": self.result, "reason_code": self.reason_code, "message": self.message,
                "enforced": self.enforced}


@dataclass
class RunDetail:
    """Everything the ledger knows about one run (`genops runs show`)."""

    summary: RunSummary
    pipeline_hash: str
    reserved_cost: Decimal
    data_classification: str | None
    genops_version: str | None
    haystack_version: str | None
    session_id: str | None
    batch_line: int | None
    saved_cost: Decimal
    policy_events: list[PolicyEventRow]
    tree: list[CallNode]

    @property
    def calls(self) -> list[CallNode]:
        """Every call of the run in `seq` order (the tree flattened)."""
        out: list[CallNode] = []

        def walk(node: CallNode) -> None:
            out.append(node)
            for step in node.steps:
                for call in step.calls:
                    walk(call)
            for child in node.children:
                walk(child)

        for root in self.tree:
            walk(root)
        return sorted(out, key=lambda c: c.seq)

    @property
    def price_snapshots(self) -> list[str]:
        return sorted({c.price_snapshot for c in self.calls if c.price_snapshot})

    def totals(self) -> dict[str, int]:
        calls = self.calls
        return {name: sum(getattr(c, name) for c in calls) for name in (
            "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")}

    def to_json(self) -> dict[str, Any]:
        out = self.summary.to_json()
        out["pipeline_hash"] = self.pipeline_hash
        out["policy"].update({
            "reserved_cost": _money(self.reserved_cost),
            "events": [e.to_json() for e in self.policy_events],
        })
        out.update({
            "data_classification": self.data_classification,
            "session_id": self.session_id,
            "batch_line": self.batch_line,
            "saved_cost": _money(self.saved_cost),
            "genops_version": self.genops_version,
            "haystack_version": self.haystack_version,
            "price_snapshots": self.price_snapshots,
            "tokens": self.totals(),
            "tree": [node.to_json() for node in self.tree],
        })
        return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def resolve_run_id(tx: Tx, prefix: str) -> str:
    """The one run id that starts with `prefix`; UsageError (exit 2) when none or several match."""
    prefix = prefix.strip()
    if not prefix:
        raise UsageError("RUN_ID: give a run id or a unique prefix of one (see genops runs)")
    if tx.scalar("SELECT COUNT(*) FROM runs WHERE run_id = ?", [prefix]):
        return prefix
    rows = tx.query("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY started_at DESC LIMIT 11",
                    [_escape_like(prefix) + "%"])
    if not rows:
        raise UsageError(f"RUN_ID {prefix!r}: no recorded run has this id or prefix (list runs: genops runs)")
    if len(rows) > 1:
        shown = ", ".join(r[0] for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise UsageError(f"RUN_ID {prefix!r} is ambiguous: it matches {shown}; give more characters")
    return str(rows[0][0])


def _build_tree(nodes: list[CallNode]) -> list[CallNode]:
    by_id = {n.call_id: n for n in nodes}
    roots: list[CallNode] = []
    step_calls: dict[tuple[str, int], list[CallNode]] = {}
    for node in sorted(nodes, key=lambda n: n.seq):
        parent = by_id.get(node.parent_call_id) if node.parent_call_id else None
        if parent is None:
            roots.append(node)
        elif node.agent_step is not None and parent.agent_step is None:
            # The first call of a step under the Agent's visit opens the step; its siblings of the same step join.
            key = (parent.call_id, node.agent_step)
            if key not in step_calls:
                step_calls[key] = []
                parent.steps.append(AgentStep(node.agent_step, step_calls[key]))
            step_calls[key].append(node)
        else:
            parent.children.append(node)
    return roots


def run_detail(ledger: Ledger, run_id_or_prefix: str) -> RunDetail:
    """The run with this id (or unique id prefix), its policy decision and its calls as a tree."""
    with ledger.read() as tx:
        run_id = resolve_run_id(tx, run_id_or_prefix)
        row = tx.query_dicts(f"{_SUMMARY_SQL} WHERE r.run_id = ?", [run_id])[0]
        more = tx.query_dicts(
            "SELECT pipeline_hash, reserved_cost, data_classification, genops_version, haystack_version, "
            "session_id, batch_line, saved_cost FROM runs WHERE run_id = ?", [run_id])[0]
        calls = [CallNode.from_row(r) for r in tx.query_dicts(
            "SELECT * FROM calls WHERE run_id = ? ORDER BY seq", [run_id])]
        events = [PolicyEventRow(r[0], r[1], r[2], r[3], bool(r[4])) for r in tx.query(
            "SELECT rule, result, reason_code, message, enforced FROM policy_events WHERE run_id = ? "
            "ORDER BY recorded_at, rule", [run_id])]
    return RunDetail(
        summary=RunSummary.from_row(row), pipeline_hash=more["pipeline_hash"],
        reserved_cost=Decimal(more["reserved_cost"] or 0), data_classification=more["data_classification"],
        genops_version=more["genops_version"], haystack_version=more["haystack_version"],
        session_id=more["session_id"], batch_line=more["batch_line"], saved_cost=Decimal(more["saved_cost"] or 0),
        policy_events=events, tree=_build_tree(calls),
    )


class RunFollower:
    """Yields the runs recorded since the last poll (`genops runs tail`), each once.

    A run is recorded when it ends, so it is found by `ended_at` (or `started_at` for a run without an end),
    looking back `lookback` behind the newest one seen: a run whose transaction committed a little after a
    later-ending one is still caught; run ids already yielded are remembered for that window.
    """

    def __init__(self, ledger: Ledger, filters: Filters | None = None, status: str | None = None,
                 lookback: timedelta = timedelta(minutes=10)) -> None:
        self.ledger = ledger
        self.filters = filters or Filters(include_simulated=True)
        self.status = status
        self.lookback = lookback
        self.watermark: datetime | None = None
        self.seen: dict[str, datetime] = {}

    def _query(self, tx: Tx, since: datetime | None, limit: int | None) -> list[RunSummary]:
        where, params = build_where(self.filters, None, "r")
        if since is not None:
            where += " AND COALESCE(r.ended_at, r.started_at) >= ?"
            params.append(since)
        if self.status is not None:
            where += " AND r.status = ?"
            params.append(self.status)
        order = "DESC" if limit is not None else "ASC"
        sql = (f"{_SUMMARY_SQL} WHERE {where} ORDER BY COALESCE(r.ended_at, r.started_at) {order}, "
               f"r.run_id {order}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [RunSummary.from_row(r) for r in tx.query_dicts(sql, params)]

    def _remember(self, runs: list[RunSummary]) -> list[RunSummary]:
        fresh = [r for r in runs if r.run_id not in self.seen]
        for r in fresh:
            moment = r.ended_at or r.started_at
            self.seen[r.run_id] = moment
            if self.watermark is None or moment > self.watermark:
                self.watermark = moment
        if self.watermark is not None:
            horizon = self.watermark - self.lookback
            self.seen = {k: v for k, v in self.seen.items() if v >= horizon}
        return fresh

    def start(self, backlog: int, now: datetime) -> list[RunSummary]:
        """The last `backlog` runs (oldest first); later polls return only runs recorded after them or `now`."""
        with self.ledger.read() as tx:
            recent = list(reversed(self._query(tx, None, backlog))) if backlog > 0 else []
            history = self._query(tx, now - self.lookback, None)
        shown = self._remember(recent)
        # Runs recorded before now and not in the backlog are history, not news.
        for r in history:
            self.seen.setdefault(r.run_id, r.ended_at or r.started_at)
        self.watermark = max(self.watermark or now, now)
        return shown

    def poll(self) -> list[RunSummary]:
        since = self.watermark - self.lookback if self.watermark is not None else None
        with self.ledger.read() as tx:
            return self._remember(self._query(tx, since, None))
