"""Where the money goes: cost, volume, latency and failures grouped by one dimension, from the ledger only.

    from genops_cli.analysis.analyze import analyze_costs
    result = analyze_costs(ledger, parse_period(since="7d"), Filters(team="ml"), by="component")
    result.total_cost, result.groups[0].key, result.groups[0].share
    result.to_json()       # the `genops analyze --format json` object (money as decimal strings)

Totals are exact: SQL SUM over the stored DECIMAL costs, returned as `Decimal`. Latency and failure rates are
measured on the rows that describe the dimension: for `component`, each top-level component visit (an Agent's
visit includes its steps); for `provider`/`model`, each model call; for run dimensions (`pipeline`, `team`,
`project`, `customer`, `environment`, `day`), each run (run time = the sum of its top-level component visits).
Simulated runs are left out unless `Filters(include_simulated=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from genops_cli.analysis.dialect import percentile
from genops_cli.analysis.filters import Filters, build_where, tag_expression
from genops_cli.analysis.periods import Period
from genops_cli.errors import UsageError
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.money import money_json
from genops_cli.tracking.usage import UsageSourceShare

#: --by value -> (level, SQL key expression). Call-level keys group call rows; run-level keys group runs.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "component": ("call", "c.component_name"),
    "provider": ("call", "c.provider"),
    "model": ("call", "c.model"),
    "pipeline": ("run", "r.pipeline_name"),
    "team": ("run", "r.team"),
    "project": ("run", "r.project"),
    "customer": ("run", "r.customer_id"),
    "environment": ("run", "r.environment"),
    "feature": ("run", "r.feature"),
    "cost_center": ("run", "r.cost_center"),
    "user": ("run", "r.user_id"),
    "day": ("run", "CAST(r.started_at AS DATE)"),
}


def dimension(by: str) -> tuple[str, str]:
    """(level, SQL key) of a `--by` value: a DIMENSIONS name, or `tag:KEY` (the value of a run's tag KEY)."""
    if by.startswith("tag:"):
        return "run", tag_expression(by[4:], "r", f"--by {by}")
    found = DIMENSIONS.get(by)
    if found is None:
        raise UsageError(f"--by {by!r}: use one of {', '.join(DIMENSIONS)} or tag:KEY")
    return found

ZERO = Decimal(0)
_ZERO_MONEY_SQL = "CAST(0 AS DECIMAL(38,18))"


def _ms(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None


def jsonable(value: Any) -> Any:
    """A copy of dicts/lists with every Decimal as a money string (for the insights dicts)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return money_json(value)
    return value


def ratio(part: Decimal | int | float, whole: Decimal | int | float, places: int = 4) -> float:
    """part / whole as a rounded float (0.0 when whole is 0). Shares are floats; money never is."""
    if not whole:
        return 0.0
    return round(float(Decimal(part) / Decimal(whole)), places)


@dataclass
class GroupStats:
    key: str | None
    cost: Decimal
    runs: int
    calls: int
    input_tokens: int
    cache_read_tokens: int
    output_tokens: int
    share: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    failure_rate: float = 0.0
    unpriced_calls: int = 0

    @property
    def priced(self) -> bool:
        """False when some of the group's model calls have no price: `cost` then covers only the priced ones."""
        return self.unpriced_calls == 0

    @property
    def known_cost(self) -> Decimal | None:
        """The cost, or None when every model call of the group is unpriced (unknown, not $0)."""
        return None if self.unpriced_calls and self.unpriced_calls >= self.calls else self.cost

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "cost": money_json(self.known_cost),
            "priced": self.priced,
            "unpriced_calls": self.unpriced_calls,
            "runs": self.runs,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "output_tokens": self.output_tokens,
            "share": self.share,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "failure_rate": self.failure_rate,
        }


@dataclass
class CostAnalysis:
    period: Period
    filters: Filters
    by: str
    total_cost: Decimal
    runs: int
    calls: int
    groups: list[GroupStats]
    most_expensive_component: str | None
    unpriced_calls: int
    simulated_excluded: int
    currency: str = "USD"
    daily: list[tuple[date, Decimal]] = field(default_factory=list)
    #: How much of the cost rests on usage genops estimated (streams without usage), not measured.
    usage_sources: UsageSourceShare = field(default_factory=UsageSourceShare)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.to_json(),
            "filters": self.filters.to_json(),
            "by": self.by,
            "currency": self.currency,
            "total_cost": money_json(self.total_cost),
            "priced": self.unpriced_calls == 0,
            "runs": self.runs,
            "calls": self.calls,
            "groups": [g.to_json() for g in self.groups],
            "most_expensive_component": self.most_expensive_component,
            "unpriced_calls": self.unpriced_calls,
            "simulated_excluded": self.simulated_excluded,
            "usage_sources": self.usage_sources.to_json(),
        }


def _key_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# Usage-source figures of model calls (what `usage_sources` reports), as aggregate columns.
_SOURCE_SUMS = """
    SUM(CASE WHEN c.model IS NOT NULL THEN 1 ELSE 0 END) AS model_calls,
    SUM(CASE WHEN c.model IS NOT NULL AND c.usage_source = 'estimated' THEN 1 ELSE 0 END) AS estimated_calls,
    SUM(CASE WHEN c.model IS NOT NULL AND c.usage_source = 'missing' THEN 1 ELSE 0 END) AS missing_calls,
    SUM(CASE WHEN c.model IS NOT NULL THEN c.cost END) AS model_cost,
    SUM(CASE WHEN c.model IS NOT NULL AND c.usage_source = 'estimated' THEN c.cost END) AS estimated_cost"""
_NO_STATS = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
# Typed: PostgreSQL resolves UNION ALL branches pairwise, and two untyped NULLs would become text.
_NO_SOURCES = ("CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS DECIMAL(38,18)), "
               "CAST(NULL AS DECIMAL(38,18))")

# Row kinds of the one grouped statement behind `analyze`: the groups and each component's model cost (for the
# most expensive component).
_GROUP, _COMPONENT = 0, 1


def _call_level_sql(tx: Tx, by: str, where: str) -> str:
    key = dimension(by)[1]
    if by == "component":
        # A component's latency and failures are those of its visits (top-level spans), not of its inner steps.
        scope, extra, sets = "c.parent_call_id IS NULL", "", f"({key})"
        grouping = "1"  # every row is a group
    else:
        scope, extra, sets = "TRUE", " AND c.model IS NOT NULL", f"({key}), (c.component_name)"
        grouping = f"GROUPING({key}, c.component_name)"  # 1: a group, 2: a component
    # No grand-total set: the groups partition the calls, so the usage-source totals are their sum (a total set
    # would also sort every latency once more for its percentiles).
    lat = f"CASE WHEN {scope} THEN c.latency_ms END"
    return f"""
        WITH agg AS (
            SELECT CAST({key} AS VARCHAR) AS key, c.component_name AS component, {grouping} AS g,
                   SUM(c.cost) AS cost, COUNT(DISTINCT c.run_id) AS runs,
                   SUM(CASE WHEN c.model IS NOT NULL THEN 1 ELSE 0 END) AS calls,
                   SUM(c.input_tokens) AS inp, SUM(c.cache_read_tokens) AS cache, SUM(c.output_tokens) AS outp,
                   {percentile(tx.backend, 0.5, lat)} AS p50, {percentile(tx.backend, 0.95, lat)} AS p95,
                   SUM(CASE WHEN {scope} AND c.status = 'error' THEN 1 ELSE 0 END) AS failed,
                   SUM(CASE WHEN {scope} THEN 1 ELSE 0 END) AS visits,
                   SUM(CASE WHEN c.model IS NOT NULL AND NOT c.priced THEN 1 ELSE 0 END) AS unpriced,
                   {_SOURCE_SUMS}
            FROM calls c JOIN runs r ON r.run_id = c.run_id
            WHERE {where}{extra}
            GROUP BY GROUPING SETS ({sets})
        )
        SELECT CASE WHEN g = 1 THEN {_GROUP} ELSE {_COMPONENT} END,
               CASE WHEN g = 2 THEN component ELSE key END, *
        FROM agg
    """


def _run_level_sql(tx: Tx, by: str, where: str, whole: bool) -> str:
    """Run dimensions: each run's call totals (one narrow aggregate per run), grouped by the run's key; and, from
    the model calls, each component's cost and the usage-source figures (components partition the model calls, so
    their figures add up to the totals).

    `whole`: the filter keeps most of the ledger's runs. The per-run totals are then computed over every call and
    the runs filter applies at the join (as a hand-written query would); a narrow filter restricts the calls to the
    matching runs first instead. Both give the same rows."""
    key = dimension(by)[1]
    restrict = "" if whole else f"WHERE c.run_id IN (SELECT r.run_id FROM runs r WHERE {where})"
    return f"""
        WITH rc AS (
            SELECT c.run_id, SUM(c.cost) AS cost, COUNT(c.model) AS calls, SUM(c.input_tokens) AS input_tokens,
                   SUM(c.cache_read_tokens) AS cache_read_tokens, SUM(c.output_tokens) AS output_tokens,
                   SUM(CASE WHEN c.parent_call_id IS NULL THEN c.latency_ms ELSE 0 END) AS run_ms,
                   SUM(CASE WHEN c.model IS NOT NULL AND NOT c.priced THEN 1 ELSE 0 END) AS unpriced
            FROM calls c {restrict}
            GROUP BY c.run_id
        )
        SELECT {_GROUP}, CAST({key} AS VARCHAR),
               SUM(COALESCE(rc.cost, {_ZERO_MONEY_SQL})),
               COUNT(*),
               SUM(COALESCE(rc.calls, 0)),
               SUM(COALESCE(rc.input_tokens, 0)), SUM(COALESCE(rc.cache_read_tokens, 0)),
               SUM(COALESCE(rc.output_tokens, 0)),
               {percentile(tx.backend, 0.5, 'rc.run_ms')}, {percentile(tx.backend, 0.95, 'rc.run_ms')},
               SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END),
               COUNT(*),
               SUM(COALESCE(rc.unpriced, 0)), {_NO_SOURCES}
        FROM runs r LEFT JOIN rc ON rc.run_id = r.run_id
        WHERE {where}
        GROUP BY {key}
        UNION ALL
        SELECT {_COMPONENT}, c.component_name, SUM(c.cost), {_NO_STATS}, COUNT(*),
               SUM(CASE WHEN c.usage_source = 'estimated' THEN 1 ELSE 0 END),
               SUM(CASE WHEN c.usage_source = 'missing' THEN 1 ELSE 0 END), SUM(c.cost),
               SUM(CASE WHEN c.usage_source = 'estimated' THEN c.cost END)
        FROM calls c JOIN runs r ON r.run_id = c.run_id
        WHERE {where} AND c.model IS NOT NULL
        GROUP BY c.component_name
    """


def _share(n: Any, estimated: Any, missing: Any, cost: Any, estimated_cost: Any) -> UsageSourceShare:
    return UsageSourceShare(calls=int(n or 0), estimated_calls=int(estimated or 0), missing_calls=int(missing or 0),
                            cost=cost if cost is not None else ZERO,
                            estimated_cost=estimated_cost if estimated_cost is not None else ZERO)


def group_costs(tx: Tx, by: str, filters: Filters, period: Period | None, whole: bool = False
                ) -> tuple[list[GroupStats], str | None, UsageSourceShare]:
    """Per-group stats (shares left at 0: the caller knows the total), the component with the highest model cost
    and the usage-source totals, from one grouped statement. `whole`: the filter keeps most of the ledger's runs
    (a hint for the run dimensions' plan, never a different answer)."""
    level = dimension(by)[0]
    where, params = build_where(filters, period, "r")
    if level == "call":
        rows = tx.query(_call_level_sql(tx, by, where), params)
    else:
        rows = tx.query(_run_level_sql(tx, by, where, whole), (params if whole else params * 2) + params)
    groups: list[GroupStats] = []
    components: list[tuple[Decimal, str]] = []
    sums: list[Any] = [0, 0, 0, ZERO, ZERO]
    for kind, key, *values in rows:
        if level == "call":
            values = values[3:]  # the CTE's own key, component and grouping id
        cost, runs, calls, inp, cache, out, p50, p95, failed, visits, unpriced, *source = values
        if kind == _COMPONENT:
            components.append((source[3], key))
        if (kind == _COMPONENT) == (level == "run"):  # these rows partition the model calls: their figures add up
            sums = [a + (b or 0) for a, b in zip(sums, source, strict=True)]
        if kind == _GROUP:
            groups.append(GroupStats(
                key=_key_text(key), cost=cost if cost is not None else ZERO, runs=int(runs or 0),
                calls=int(calls or 0), input_tokens=int(inp or 0), cache_read_tokens=int(cache or 0),
                output_tokens=int(out or 0), latency_p50_ms=_ms(p50), latency_p95_ms=_ms(p95),
                failure_rate=ratio(int(failed or 0), int(visits or 0)), unpriced_calls=int(unpriced or 0),
            ))
    sources = _share(*sums)
    if by == "day":
        groups.sort(key=lambda g: g.key or "")
    else:
        groups.sort(key=lambda g: (-g.cost, g.key is None, g.key or ""))
    if by == "component":
        top = next((g.key for g in groups if g.cost > 0 and g.calls > 0), None)
    else:
        priced = [(c, name) for c, name in components if c is not None and c > 0]
        top = min(priced, key=lambda t: (-t[0], t[1]))[1] if priced else None
    return groups, top, sources


def usage_sources(tx: Tx, where: str, params: list[Any]) -> UsageSourceShare:
    """Model calls of the runs matching `where` (alias r) by usage source, with the cost resting on estimates."""
    return usage_sources_by(tx, where, params, "'all'").get("all", UsageSourceShare())


def usage_sources_by(tx: Tx, where: str, params: list[Any], key: str) -> dict[str, UsageSourceShare]:
    """`usage_sources` per value of the SQL expression `key` (e.g. r.customer_id), in one grouped query."""
    rows = tx.query(
        f"""SELECT {key}, COUNT(*), SUM(CASE WHEN c.usage_source = 'estimated' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN c.usage_source = 'missing' THEN 1 ELSE 0 END), SUM(c.cost),
                   SUM(CASE WHEN c.usage_source = 'estimated' THEN c.cost ELSE 0 END)
            FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where} AND c.model IS NOT NULL GROUP BY 1""",
        params,
    )
    return {str(k): UsageSourceShare(calls=int(n or 0), estimated_calls=int(e or 0), missing_calls=int(m or 0),
                                     cost=cost if cost is not None else ZERO,
                                     estimated_cost=ec if ec is not None else ZERO)
            for k, n, e, m, cost, ec in rows}


def count_runs(tx: Tx, filters: Filters, period: Period | None, simulated: bool | None = None) -> int:
    where, params = build_where(filters, period, "r", simulated=simulated)
    return int(tx.scalar(f"SELECT COUNT(*) FROM runs r WHERE {where}", params) or 0)


def _run_counts(tx: Tx, filters: Filters, period: Period | None) -> tuple[int, int, bool]:
    """(runs matching `filters`, simulated runs they leave out, whether they are most of the ledger's runs) in one
    statement over the runs, plus the ledger's run count (PostgreSQL: the planner's estimate, a plan hint only)."""
    if tx.backend == "postgresql":
        total = tx.scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass('runs')")
    else:
        total = tx.scalar("SELECT COUNT(*) FROM runs")
    if filters.include_simulated:
        matching, excluded = count_runs(tx, filters, period), 0
    else:
        where, params = build_where(replace(filters, include_simulated=True), period, "r")
        real, simulated = tx.query(f"SELECT SUM(CASE WHEN r.simulated THEN 0 ELSE 1 END), "
                                   f"SUM(CASE WHEN r.simulated THEN 1 ELSE 0 END) FROM runs r WHERE {where}",
                                   params)[0]
        matching, excluded = int(real or 0), int(simulated or 0)
    return matching, excluded, total is not None and 0 <= float(total) <= 2 * matching


def daily_costs(tx: Tx, filters: Filters, period: Period | None) -> list[tuple[date, Decimal]]:
    """Cost per UTC day (for the sparkline), oldest first; days without runs are absent."""
    where, params = build_where(filters, period, "r")
    rows = tx.query(
        f"""SELECT CAST(r.started_at AS DATE) AS day, SUM(r.total_cost) FROM runs r WHERE {where}
            GROUP BY CAST(r.started_at AS DATE) ORDER BY day""",
        params,
    )
    out = []
    for day, cost in rows:
        if isinstance(day, datetime):
            day = day.date()
        out.append((day, cost if cost is not None else ZERO))
    return out


def analyze_costs(ledger: Ledger, period: Period | None, filters: Filters | None = None, by: str = "component",
                  with_daily: bool = False) -> CostAnalysis:
    """Cost analysis of the runs in `period` matching `filters`, grouped `by` one dimension."""
    from genops_cli.analysis.periods import parse_period

    filters = filters or Filters()
    period = period or parse_period(default=None)
    with ledger.read() as tx:
        real, excluded, whole = _run_counts(tx, filters, period)
        groups, top, sources = group_costs(tx, by, filters, period, whole)
        total = sum((g.cost for g in groups), ZERO)
        for g in groups:
            g.share = ratio(g.cost, total)
        runs = sum(g.runs for g in groups) if dimension(by)[0] == "run" else real
        daily = daily_costs(tx, filters, period) if with_daily else []
    return CostAnalysis(
        period=period, filters=filters, by=by, total_cost=total, runs=runs,
        calls=sum(g.calls for g in groups), groups=groups, most_expensive_component=top,
        unpriced_calls=sum(g.unpriced_calls for g in groups), simulated_excluded=excluded, daily=daily,
        usage_sources=sources,
    )


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[Decimal]) -> str:
    """A one-line bar chart of non-negative values (empty string for no values)."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return _SPARK[0] * len(values)
    return "".join(_SPARK[min(len(_SPARK) - 1, int(v / top * (len(_SPARK) - 1) + Decimal("0.5")))] for v in values)
