"""Where the time goes and what caching saves, from the ledger only.

    from genops_cli.analysis.performance import analyze_performance
    report = analyze_performance(ledger, period, Filters(pipeline="rag"))
    report.components      # per (pipeline, component): share of run time, avg/p95 latency, success rate
    report.bottlenecks     # components taking more than 40 % of their pipeline's run time
    report.prompt_cache    # per (component, model): cache hit rate and the money cache reads saved
    report.result_cache    # genops' own result cache (`run --cache`): hit rate and recorded savings

Run time is the sum of a run's top-level component visits (an Agent's visit includes its steps), so shares of a
pipeline add up to 1. Prompt-cache savings use the unit prices stored on each call (never today's prices):
cache_read_tokens x (input price - cache-read price) per 1M tokens.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.analysis.analyze import ZERO, ratio
from genops_cli.analysis.dialect import percentile
from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.periods import Period
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import UnitPrices, quantize_money
from genops_cli.money import money_json

#: A component is a bottleneck when it takes more than this share of its pipeline's run time.
BOTTLENECK_SHARE = 0.40
_MTOK = Decimal(1_000_000)


@dataclass
class ComponentPerformance:
    pipeline: str
    component: str
    visits: int
    runs: int
    total_ms: float
    avg_ms: float
    p95_ms: float | None
    share_of_run_time: float
    success_rate: float

    @property
    def bottleneck(self) -> bool:
        return self.share_of_run_time > BOTTLENECK_SHARE

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "component": self.component, "visits": self.visits, "runs": self.runs,
            "total_ms": round(self.total_ms, 3), "avg_ms": round(self.avg_ms, 3),
            "p95_ms": round(self.p95_ms, 3) if self.p95_ms is not None else None,
            "share_of_run_time": self.share_of_run_time, "success_rate": self.success_rate,
            "bottleneck": self.bottleneck,
        }


@dataclass
class PromptCacheStats:
    component: str
    provider: str | None
    model: str
    calls: int
    input_tokens: int
    cache_read_tokens: int
    calls_with_cache_reads: int
    saved: Decimal

    @property
    def token_hit_rate(self) -> float:
        return ratio(self.cache_read_tokens, self.input_tokens)

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component, "provider": self.provider, "model": self.model, "calls": self.calls,
            "input_tokens": self.input_tokens, "cache_read_tokens": self.cache_read_tokens,
            "token_hit_rate": self.token_hit_rate,
            "call_hit_rate": ratio(self.calls_with_cache_reads, self.calls),
            "saved": money_json(self.saved),
        }


@dataclass
class ResultCacheStats:
    runs: int
    hits: int
    saved: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "hits": self.hits, "hit_rate": ratio(self.hits, self.runs),
                "saved": money_json(self.saved)}


@dataclass
class PerformanceReport:
    period: Period
    filters: Filters
    runs: int
    components: list[ComponentPerformance] = field(default_factory=list)
    prompt_cache: list[PromptCacheStats] = field(default_factory=list)
    result_cache: ResultCacheStats = field(default_factory=lambda: ResultCacheStats(0, 0, ZERO))

    @property
    def bottlenecks(self) -> list[ComponentPerformance]:
        return [c for c in self.components if c.bottleneck]

    @property
    def prompt_cache_saved(self) -> Decimal:
        return quantize_money(sum((c.saved for c in self.prompt_cache), ZERO))

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.to_json(),
            "filters": self.filters.to_json(),
            "runs": self.runs,
            "components": [c.to_json() for c in self.components],
            "bottlenecks": [{"pipeline": c.pipeline, "component": c.component, "share_of_run_time":
                             c.share_of_run_time} for c in self.bottlenecks],
            "prompt_cache": {"saved": money_json(self.prompt_cache_saved),
                             "by_component": [c.to_json() for c in self.prompt_cache]},
            "result_cache": self.result_cache.to_json(),
        }


def cache_saving(cache_read_tokens: int, prices: UnitPrices) -> Decimal:
    """What `cache_read_tokens` would have cost more at the input price than they did at the cache price."""
    if not cache_read_tokens or prices.input_mtok is None or prices.cache_read_mtok is None:
        return ZERO
    return cache_read_tokens * (prices.input_mtok - prices.cache_read_mtok) / _MTOK


def component_performance(tx: Tx, filters: Filters, period: Period | None) -> list[ComponentPerformance]:
    where, params = build_where(filters, period, "r")
    rows = tx.query(
        f"""SELECT r.pipeline_name, c.component_name, COUNT(*), COUNT(DISTINCT c.run_id), SUM(c.latency_ms),
                   {percentile(tx.backend, 0.95, 'c.latency_ms')},
                   SUM(CASE WHEN c.status = 'ok' THEN 1 ELSE 0 END)
            FROM calls c JOIN runs r ON r.run_id = c.run_id
            WHERE {where} AND c.parent_call_id IS NULL
            GROUP BY r.pipeline_name, c.component_name""",
        params,
    )
    pipeline_ms: dict[str, float] = defaultdict(float)
    for pipeline, _c, _v, _r, total_ms, _p95, _ok in rows:
        pipeline_ms[pipeline] += float(total_ms or 0)
    out = [
        ComponentPerformance(
            pipeline=pipeline, component=component, visits=int(visits), runs=int(runs),
            total_ms=float(total_ms or 0), avg_ms=float(total_ms or 0) / int(visits),
            p95_ms=float(p95) if p95 is not None else None,
            share_of_run_time=ratio(float(total_ms or 0), pipeline_ms[pipeline]),
            success_rate=ratio(int(ok or 0), int(visits)),
        )
        for pipeline, component, visits, runs, total_ms, p95, ok in rows
    ]
    out.sort(key=lambda c: (c.pipeline, -c.share_of_run_time, c.component))
    return out


def prompt_cache_stats(tx: Tx, filters: Filters, period: Period | None) -> list[PromptCacheStats]:
    """Cache hit rate and savings per (component, model), priced with each call's stored unit prices."""
    import json

    where, params = build_where(filters, period, "r")
    # Grouping by the stored unit-price document keeps SQL portable (no JSON functions) and the money exact.
    rows = tx.query(
        f"""SELECT c.component_name, c.provider, c.model, c.unit_prices, COUNT(*), SUM(c.input_tokens),
                   SUM(c.cache_read_tokens), SUM(CASE WHEN c.cache_read_tokens > 0 THEN 1 ELSE 0 END)
            FROM calls c JOIN runs r ON r.run_id = c.run_id
            WHERE {where} AND c.model IS NOT NULL AND c.span_kind <> 'embedding'
            GROUP BY c.component_name, c.provider, c.model, c.unit_prices""",
        params,
    )
    merged: dict[tuple[str, str | None, str], PromptCacheStats] = {}
    for component, provider, model, prices_json, calls, inp, cache, hits in rows:
        stats = merged.setdefault((component, provider, model),
                                  PromptCacheStats(component, provider, model, 0, 0, 0, 0, ZERO))
        stats.calls += int(calls)
        stats.input_tokens += int(inp or 0)
        stats.cache_read_tokens += int(cache or 0)
        stats.calls_with_cache_reads += int(hits or 0)
        if prices_json:
            stats.saved += cache_saving(int(cache or 0), UnitPrices.from_json(json.loads(prices_json)))
    out = list(merged.values())
    for s in out:
        s.saved = quantize_money(s.saved)
    out.sort(key=lambda s: (-s.saved, -s.input_tokens, s.component, s.model))
    return out


def result_cache_stats(tx: Tx, filters: Filters, period: Period | None) -> ResultCacheStats:
    where, params = build_where(filters, period, "r")
    runs, hits, saved = tx.query(
        f"""SELECT COUNT(*), SUM(CASE WHEN r.cache_hit THEN 1 ELSE 0 END), SUM(r.saved_cost)
            FROM runs r WHERE {where}""",
        params,
    )[0]
    return ResultCacheStats(int(runs or 0), int(hits or 0), saved if saved is not None else ZERO)


def analyze_performance(ledger: Ledger, period: Period | None, filters: Filters | None = None) -> PerformanceReport:
    """Run-time shares, bottlenecks, success rates, prompt-cache and result-cache savings."""
    filters = filters or Filters()
    with ledger.read() as tx:
        result_cache = result_cache_stats(tx, filters, period)
        return PerformanceReport(
            period=period or _all_time(), filters=filters, runs=result_cache.runs,
            components=component_performance(tx, filters, period),
            prompt_cache=prompt_cache_stats(tx, filters, period),
            result_cache=result_cache,
        )


def _all_time() -> Period:
    from genops_cli.analysis.periods import parse_period

    return parse_period(default=None)
