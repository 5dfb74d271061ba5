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
