"""The few SQL expressions that differ between DuckDB and PostgreSQL, one function per expression.

    f"SELECT {percentile(tx.backend, 0.95, 'c.latency_ms')} FROM calls c"

Everything else the analysis modules write is in the subset both engines share.
"""

from __future__ import annotations


def percentile(backend: str, fraction: float, expr: str) -> str:
    """Continuous percentile of `expr` as an aggregate (NULLs ignored on both engines)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"percentile fraction {fraction} outside [0, 1]")
    if backend == "postgresql":
        return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {expr})"
    return f"quantile_cont({expr}, {fraction})"


def shared_cte(backend: str) -> str:
    """The hint after `WITH name AS` for a CTE that several branches of one statement read: DuckDB scans and
    joins it once and streams the rows to each reader; PostgreSQL would write it out first (slower than
    planning each reader on its own, which also lets a UNION ALL run its branches in parallel)."""
    return "NOT MATERIALIZED " if backend == "postgresql" else ""
