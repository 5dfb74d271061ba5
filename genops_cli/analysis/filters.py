"""Report filters (`--team --project --customer --pipeline --environment --feature --cost-center --user
--tag K=V`) and a period, as a SQL WHERE clause over the `runs` table, with `?` placeholders (the same text runs on
DuckDB and PostgreSQL).

    where, params = build_where(Filters(team="ml"), period, alias="r")
    tx.query(f"SELECT SUM(r.total_cost) FROM runs r WHERE {where}", params)

Simulated runs are excluded unless `include_simulated` is set: they never count toward spend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from genops_cli.analysis.periods import Period
from genops_cli.errors import UsageError

#: Filter field -> runs column. `customer` is the tenant (`--tenant` in billing, `customer_id` in the ledger).
FILTER_COLUMNS = {
    "team": "team",
    "project": "project",
    "customer": "customer_id",
    "pipeline": "pipeline_name",
    "environment": "environment",
    "feature": "feature",
    "cost_center": "cost_center",
    "user": "user_id",
}

# Tag keys are put into SQL text (a JSON key in GROUP BY cannot be a parameter on both engines): only these
# characters are accepted, which covers every key people use (env, ab.test, team/owner, cost-center).
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/@-]{1,64}$")


def tag_expression(key: str, alias: str = "r", where: str = "--by tag:KEY") -> str:
    """SQL for the value of tag `key` of a run (NULL when the run has no such tag), on DuckDB and PostgreSQL:
    `runs.tags` is a JSON object stored as text."""
    if not _TAG_KEY.match(key):
        raise UsageError(f"{where}: tag key {key!r} may only use letters, digits and _ . : / @ - (up to 64)")
    prefix = f"{alias}." if alias else ""
    return f"(CAST({prefix}tags AS JSON) ->> '{key}')"


def parse_tag_filters(values: list[str] | None, flag: str = "--tag") -> tuple[tuple[str, str], ...]:
    """['env=prod', 'ab=b'] -> (('ab', 'b'), ('env', 'prod')); a bad item raises UsageError naming the flag."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} {item!r}: use KEY=VALUE")
        tag_expression(key, where=f"{flag} {item!r}")
        out[key] = value
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class Filters:
    team: str | None = None
    project: str | None = None
    customer: str | None = None
    pipeline: str | None = None
    environment: str | None = None
    include_simulated: bool = False
    feature: str | None = None
    cost_center: str | None = None
    user: str | None = None
    #: (key, value) pairs a run's tags must all contain (`--tag K=V`, repeatable)
    tags: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in FILTER_COLUMNS if getattr(self, name) is not None}
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def build_where(filters: Filters, period: Period | None, alias: str = "r",
                simulated: bool | None = None) -> tuple[str, list[Any]]:
    """WHERE text (never empty) and its parameters for runs aliased `alias`.

    `simulated=True/False` selects only simulated / only real runs and overrides `filters.include_simulated`.
    """
    prefix = f"{alias}." if alias else ""
    clauses: list[str] = []
    params: list[Any] = []
    if period is not None:
        if period.start is not None:
            clauses.append(f"{prefix}started_at >= ?")
            params.append(period.start)
        clauses.append(f"{prefix}started_at < ?")
        params.append(period.end)
    for name, column in FILTER_COLUMNS.items():
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{prefix}{column} = ?")
            params.append(value)
    for key, value in filters.tags:
        clauses.append(f"{tag_expression(key, alias, '--tag')} = ?")
        params.append(value)
    if simulated is True:
        clauses.append(f"{prefix}simulated")
    elif simulated is False or not filters.include_simulated:
        clauses.append(f"NOT {prefix}simulated")
    return (" AND ".join(clauses) or "TRUE"), params
