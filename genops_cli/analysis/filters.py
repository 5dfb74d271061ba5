"""Report filters (`--team --project --customer --pipeline --environment`) and a period, as a SQL WHERE clause
over the `runs` table, with `?` placeholders (the same text runs on DuckDB and PostgreSQL).

    where, params = build_where(Filters(team="ml"), period, alias="r")
    tx.query(f"SELECT SUM(r.total_cost) FROM runs r WHERE {where}", params)

Simulated runs are excluded unless `include_simulated` is set: they never count toward spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genops_cli.analysis.periods import Period

#: Filter field -> runs column. `customer` is the tenant (`--tenant` in billing, `customer_id` in the ledger).
FILTER_COLUMNS = {
    "team": "team",
    "project": "project",
    "customer": "customer_id",
    "pipeline": "pipeline_name",
    "environment": "environment",
}


@dataclass(frozen=True)
class Filters:
    team: str | None = None
    project: str | None = None
    customer: str | None = None
    pipeline: str | None = None
    environment: str | None = None
    include_simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILTER_COLUMNS if getattr(self, name) is not None}


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
    if simulated is True:
        clauses.append(f"{prefix}simulated")
    elif simulated is False or not filters.include_simulated:
        clauses.append(f"NOT {prefix}simulated")
    return (" AND ".join(clauses) or "TRUE"), params
