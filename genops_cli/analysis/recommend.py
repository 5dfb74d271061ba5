"""What should change: recommendations computed from the ledger's own volumes and the price book.

    from genops_cli.analysis.recommend import recommend
    result = recommend(ledger, parse_period(since="30d"), Filters(team="ml"))
    for rec in result.recommendations:
        rec.kind, rec.component, rec.potential_savings, rec.reasoning
    result.to_json()     # the `genops recommend --format json` object

Kinds (each needs recorded data behind it, and says which period and volume it rests on):
- `model_switch`: a cheaper model of the same provider family (same or next lower capability tier); savings =
  the stored cost minus what the same observed tokens cost at the candidate's price-book prices.
- `prompt_caching`: calls with large prompts and zero cache reads, on a model with a cheaper cache-read price.
- `max_tokens`: output stays far below the configured max_tokens (lower worst-case reservations, same spend).
- `retriever_top_k`: retrieved documents dominate the generator's input tokens (measured by regression).
- `failing_component`: a component fails often; retry transient errors or add a fallback.
- `agent_loop`: an agent's runs stop at max_agent_steps without an answer (per agent, nested agents separate);
  the saving counts only the steps a cap at the longest answered run would cut, or, for an agent that never
  answers, what its capped runs spent.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.analysis.analyze import ZERO, ratio
from genops_cli.analysis.dialect import percentile, shared_cte
from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.insights import (
    AgentInstance,
    agent_instances,
    summarize_agent,
)
from genops_cli.analysis.periods import Period
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import TokenUsage, UnitPrices, quantize_money
from genops_cli.money import money_json, money_text

_MTOK = Decimal(1_000_000)

#: Model family -> cheaper candidates, as (model, "same" | "lower" capability tier).
#: Source: the providers' own positioning of their model lines (OpenAI's full / mini / nano tiers and the gpt-4.1
#: generation that replaced gpt-4o at a lower price; Anthropic's Opus > Sonnet > Haiku; Google's Pro > Flash >
#: Flash-Lite; Mistral's Large > Medium > Small), as published on their model pages in 2025. A candidate is
#: suggested only if the price book prices it and it is cheaper on the observed usage. Keys match a recorded
#: model id by longest prefix (dated ids such as gpt-4o-2024-08-06 or claude-3-5-sonnet-20241022 included).
MODEL_FAMILIES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("openai", "gpt-4o"): (("gpt-4.1", "same"), ("gpt-4o-mini", "lower"), ("gpt-4.1-mini", "lower")),
    ("openai", "gpt-4o-mini"): (("gpt-4.1-nano", "lower"),),
    ("openai", "gpt-4.1"): (("gpt-4.1-mini", "lower"), ("gpt-4o-mini", "lower")),
    ("openai", "gpt-4.1-mini"): (("gpt-4o-mini", "same"), ("gpt-4.1-nano", "lower")),
    ("openai", "gpt-4-turbo"): (("gpt-4o", "same"), ("gpt-4.1", "same"), ("gpt-4o-mini", "lower")),
    ("openai", "gpt-4"): (("gpt-4o", "same"), ("gpt-4.1", "same"), ("gpt-4o-mini", "lower")),
    ("openai", "gpt-3.5-turbo"): (("gpt-4o-mini", "same"),),
    ("openai", "gpt-5"): (("gpt-5-mini", "lower"),),
    ("openai", "gpt-5-mini"): (("gpt-5-nano", "lower"),),
    ("openai", "o1"): (("o3", "same"), ("o4-mini", "lower")),
    ("openai", "o3"): (("o4-mini", "lower"),),
    ("anthropic", "claude-3-opus"): (("claude-3-5-sonnet", "lower"),),
    ("anthropic", "claude-opus-4"): (("claude-sonnet-4-5", "lower"),),
    ("anthropic", "claude-sonnet-4"): (("claude-haiku-4-5", "lower"),),
    ("anthropic", "claude-3-7-sonnet"): (("claude-3-5-haiku-latest", "lower"), ("claude-3-haiku", "lower")),
    ("anthropic", "claude-3-5-sonnet"): (("claude-3-5-haiku-latest", "lower"), ("claude-3-haiku", "lower")),
    ("anthropic", "claude-3-5-haiku"): (("claude-3-haiku", "same"),),
    ("anthropic", "claude-haiku-4-5"): (("claude-3-5-haiku-latest", "same"), ("claude-3-haiku", "lower")),
    ("google", "gemini-2.5-pro"): (("gemini-2.5-flash", "lower"),),
    ("google", "gemini-2.5-flash"): (("gemini-2.5-flash-lite", "lower"),),
    ("google", "gemini-1.5-pro"): (("gemini-1.5-flash", "lower"),),
    ("mistral", "mistral-large"): (("mistral-medium-latest", "lower"),),
    ("mistral", "mistral-medium"): (("mistral-small-latest", "lower"),),
}

#: Prompts shorter than this are not cached by OpenAI or Anthropic (their documented minimum cacheable prompt).
MIN_CACHEABLE_TOKENS = 1024
#: max_tokens is "far above" the output when the 95th percentile of output is below this share of it.
MAX_TOKENS_USED_SHARE = 0.5
#: top_k is worth lowering when retrieved documents make up at least this share of generation input tokens.
CONTEXT_DOMINATES_SHARE = 0.5
#: A component fails "often" above this share of its visits.
FAILURE_RATE_THRESHOLD = 0.05


@dataclass
class Recommendation:
    kind: str
    component: str
    pipeline: str
    current_model: str | None
    current_cost: Decimal
    recommended_model: str | None
    recommended_cost: Decimal
    potential_savings: Decimal
    confidence: str
    reasoning: str
    provider: str | None = None
    basis: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    # Only the largest saving per component counts toward the report's total: two changes to one component are
    # alternatives (or overlap), never additive.
    counted: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "component": self.component,
            "pipeline": self.pipeline,
            "provider": self.provider,
            "current_model": self.current_model,
            "current_cost": money_json(self.current_cost),
            "recommended_model": self.recommended_model,
            "recommended_cost": money_json(self.recommended_cost),
            "potential_savings": money_json(self.potential_savings),
            "confidence": self.confidence,
            "reasoning": self.reasoning,
            "parameters": self.parameters,
            "basis": self.basis,
            "counted_in_total": self.counted,
        }


@dataclass
class RecommendationReport:
    period: Period
    filters: Filters
    runs: int
    calls: int
    recommendations: list[Recommendation]
    spend: Decimal = ZERO

    @property
    def potential_savings(self) -> Decimal:
        """The best saving of each component, added up; never more than the window's spend."""
        total = sum((r.potential_savings for r in self.recommendations if r.counted), ZERO)
        return quantize_money(min(total, self.spend))

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.to_json(),
            "filters": self.filters.to_json(),
            "runs": self.runs,
            "calls": self.calls,
            "spend": money_json(self.spend),
            "potential_savings": money_json(self.potential_savings),
            "recommendations": [r.to_json() for r in self.recommendations],
        }


def model_family(provider: str | None, model: str) -> tuple[str, str] | None:
    """The MODEL_FAMILIES key a recorded model id belongs to (longest matching prefix), or None."""
    name = model.lower()
    best: tuple[str, str] | None = None
    for key in MODEL_FAMILIES:
        prov, prefix = key
        if provider and prov != provider.lower():
            continue
        if name == prefix or (name.startswith(prefix) and name[len(prefix)] in "-@:"):
            # "gpt-4o-mini-2024-07-18" must match gpt-4o-mini, not gpt-4o: the longest prefix wins.
            rest = name[len(prefix):]
            if rest[:1] == "-" and rest[1:2].isalpha() and not rest[1:].startswith("latest"):
                continue  # gpt-4o-audio..., gpt-4.1-nano under gpt-4.1: another model line
            if best is None or len(prefix) > len(best[1]):
                best = key
    return best


def _confidence(tier: str, calls: int) -> str:
    if tier == "same":
        return "high" if calls >= 100 else "medium"
    return "medium" if calls >= 100 else "low"


@dataclass
class _Usage:
    """Observed usage of one (pipeline, component, provider, model)."""

    pipeline: str
    component: str
    provider: str | None
    model: str
    calls: int = 0
    runs: int = 0
    cost: Decimal = ZERO
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    min_input: int = 0
    max_output: int = 0
    p95_output: float = 0.0
    max_tokens: int | None = None
    by_tenant: dict[str | None, TokenUsage] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=dict)  # stored unit-price document -> calls

    def key(self) -> tuple[str, str, str | None, str]:
        return (self.pipeline, self.component, self.provider, self.model)

    def main_prices(self) -> UnitPrices | None:
        if not self.prices:
            return None
        doc = max(self.prices.items(), key=lambda kv: kv[1])[0]
        return UnitPrices.from_json(json.loads(doc))


def _observed_usage(tx: Tx, where: str, params: list[Any]) -> tuple[list[_Usage], _Activity]:
    """Model usage and the window's activity from one statement with two aggregations.

    The first groups the priced model calls by (pipeline, component, provider, model) for the volume figures (the
    distinct-run count and the percentile stay at this grain: computing them per tenant too would cost more than
    the rest). The second groups every call in the window once by the same keys, whether it is priced model
    usage, and for those by tenant x stored unit prices: the money per tenant, and the activity counts summed
    per (pipeline, component) here. PostgreSQL can run the two side by side (a parallel append).

    The agent-row count only decides whether the agent queries run: it counts every row of an agent (not only
    the container and legacy rows those queries read), which spares reading call_id for every call here."""
    scoped = "model IS NOT NULL AND priced AND span_kind <> 'embedding'"
    top = "parent_call_id IS NULL"
    keys = "pipeline_name, component_name, provider, model"
    fine = f"CASE WHEN {scoped} THEN 1 ELSE 0 END, CASE WHEN {scoped} THEN customer_id END, " \
           f"CASE WHEN {scoped} THEN unit_prices END"
    rows = tx.query(
        f"""WITH j AS {shared_cte(tx.backend)}(
                SELECT r.pipeline_name, r.customer_id, c.run_id, c.component_name, c.provider, c.model, c.priced,
                       c.span_kind, c.input_tokens, c.cache_read_tokens, c.cache_write_tokens, c.output_tokens,
                       c.max_tokens, c.cost, c.unit_prices, c.parent_call_id, c.status, c.documents_retrieved,
                       c.agent_instance
                FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where})
            SELECT 1, {keys}, NULL, NULL, NULL,
                   COUNT(*), COUNT(DISTINCT run_id), MIN(input_tokens), MAX(output_tokens),
                   {percentile(tx.backend, 0.95, 'output_tokens')}, MIN(max_tokens),
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM j WHERE {scoped}
            GROUP BY {keys}
            UNION ALL
            SELECT 0, {keys}, {fine}, COUNT(*), NULL, NULL, NULL, NULL, NULL,
                   SUM(cost), SUM(input_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(output_tokens),
                   SUM(CASE WHEN {top} THEN 1 ELSE 0 END), SUM(CASE WHEN {top} AND status = 'error' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN documents_retrieved IS NOT NULL THEN 1 ELSE 0 END),
                   SUM(CASE WHEN model IS NOT NULL THEN 1 ELSE 0 END),
                   SUM(CASE WHEN agent_instance IS NOT NULL OR span_kind IN ('agent_llm', 'tool') THEN 1 ELSE 0 END)
            FROM j GROUP BY {keys}, {fine}""",
        params,
    )
    out: dict[tuple[str, str, str | None, str], _Usage] = {}
    for (coarse, pipeline, comp, provider, model, _s, _t, _p, calls, runs, min_in, max_out, p95_out, max_tokens,
         *_rest) in rows:
        if coarse:
            out[(pipeline, comp, provider, model)] = _Usage(
                pipeline, comp, provider, model, calls=int(calls), runs=int(runs), min_input=int(min_in or 0),
                max_output=int(max_out or 0), p95_output=float(p95_out or 0),
                max_tokens=int(max_tokens) if max_tokens is not None else None)
    activity = _Activity()
    per_component: dict[tuple[str, str], list[int]] = {}
    for (coarse, pipeline, comp, provider, model, in_scope, tenant, prices, calls, *_stats, cost, inp, cr, cw, outp,
         visits, errors, retrievals, model_calls, agent_rows) in rows:
        if coarse:
            continue
        counts = per_component.setdefault((pipeline, comp), [0, 0, 0])
        counts[0] += int(visits or 0)
        counts[1] += int(errors or 0)
        counts[2] += int(retrievals or 0)
        activity.model_calls += int(model_calls or 0)
        activity.agent_rows += int(agent_rows or 0)
        activity.retrievals += int(retrievals or 0)
        if not in_scope:
            continue
        u = out[(pipeline, comp, provider, model)]
        usage = TokenUsage(int(inp or 0), int(cr or 0), int(cw or 0), int(outp or 0), source="reported")
        u.cost += cost if cost is not None else ZERO
        u.input_tokens += usage.input_tokens
        u.cache_read_tokens += usage.cache_read_tokens
        u.cache_write_tokens += usage.cache_write_tokens
        u.output_tokens += usage.output_tokens
        u.by_tenant[tenant] = u.by_tenant[tenant] + usage if tenant in u.by_tenant else usage
        if prices:
            u.prices[prices] = u.prices.get(prices, 0) + int(calls)
    activity.components = [(pipeline, comp, visits, errors, retrievals)
                           for (pipeline, comp), (visits, errors, retrievals) in per_component.items()]
    return sorted(out.values(), key=lambda u: (-u.cost, u.key()[:2])), activity


def _volume(u: _Usage, period: Period) -> str:
    return f"{u.calls} call(s) in {u.runs} run(s), {period.label}"


def _usage_recommendation(u: _Usage, period: Period, **fields: Any) -> Recommendation:
    """A recommendation about one observed (pipeline, component, provider, model), with its volume as basis."""
    basis = {"period": period.label, "window": period.to_json(), "calls": u.calls, "runs": u.runs,
             "input_tokens": u.input_tokens, "cache_read_tokens": u.cache_read_tokens, "output_tokens": u.output_tokens}
    return Recommendation(component=u.component, pipeline=u.pipeline, provider=u.provider, current_model=u.model,
                          current_cost=u.cost, basis=basis, **fields)


def _model_switch(u: _Usage, period: Period, book: Any) -> list[Recommendation]:
    """At most one switch per component: the cheapest candidate of the same capability tier, else of the next
    lower tier; the other cheaper candidates are listed in `parameters.alternatives`, not counted."""
    from genops_cli.pricing import compute_cost

    family = model_family(u.provider, u.model)
    if family is None or u.cost <= 0:
        return []
    best: dict[str, tuple[Decimal, str]] = {}
    for candidate, tier in MODEL_FAMILIES[family]:
        total = ZERO
        for tenant, usage in u.by_tenant.items():
            resolved = book.resolve(candidate, family[0], tenant=tenant)
            if resolved is None:
                break
            total += compute_cost(usage, resolved.unit_prices)
        else:
            total = quantize_money(total)
            if total < u.cost and (tier not in best or total < best[tier][0]):
                best[tier] = (total, candidate)
    if not best:
        return []
    chosen = "same" if "same" in best else "lower"
    alternatives = [{"model": m, "tier": t, "cost": money_json(c), "potential_savings": money_json(u.cost - c)}
                    for t, (c, m) in sorted(best.items()) if t != chosen]
    out = []
    for tier, (cost, candidate) in [(chosen, best[chosen])]:
        savings = u.cost - cost
        tier_text = "the same capability tier" if tier == "same" else "the next lower capability tier"
        out.append(_usage_recommendation(
            u, period, kind="model_switch", recommended_model=candidate, recommended_cost=cost,
            potential_savings=savings, confidence=_confidence(tier, u.calls),
            reasoning=(
                f"{_volume(u, period)} used {u.input_tokens} input ({u.cache_read_tokens} cached) and "
                f"{u.output_tokens} output tokens on {u.model} for {money_text(u.cost)}; the same tokens at "
                f"{candidate} prices ({tier_text}, same provider) cost {money_text(cost)} "
                f"({ratio(savings, u.cost) * 100:.1f}% less). Check quality first: genops compare PIPELINE "
                f"--inputs FILE --model {u.model} --model {candidate}"
            ),
            parameters={"tier": tier, "alternatives": alternatives},
        ))
    return out


def _prompt_caching(u: _Usage, period: Period) -> Recommendation | None:
    prices = u.main_prices()
    if (prices is None or u.cache_read_tokens > 0 or u.calls < 2 or u.min_input < MIN_CACHEABLE_TOKENS
            or prices.input_mtok is None or prices.cache_read_mtok is None
            or prices.cache_read_mtok >= prices.input_mtok):
        return None
    # The smallest prompt seen is the part every call is assumed to share (the fixed instructions/template);
    # the first call writes it to the cache (at the cache-write premium where there is one), the rest read it.
    prefix = u.min_input
    reads = Decimal(u.calls - 1) * prefix * (prices.input_mtok - prices.cache_read_mtok) / _MTOK
    write_premium = ZERO
    if prices.cache_write_mtok is not None and prices.cache_write_mtok > prices.input_mtok:
        write_premium = Decimal(prefix) * (prices.cache_write_mtok - prices.input_mtok) / _MTOK
    savings = quantize_money(reads - write_premium)
    if savings <= 0:
        return None
    return _usage_recommendation(
        u, period, kind="prompt_caching", recommended_model=u.model,
        recommended_cost=u.cost - savings, potential_savings=savings, confidence="low",
        reasoning=(
            f"{_volume(u, period)}: every prompt was at least {prefix} tokens and none was read from the prompt "
            f"cache (cache reads 0). If the first {prefix} tokens are shared (instructions, template), putting that "
            f"static part first and enabling caching saves about {money_text(savings)} at the stored prices "
            f"(input ${prices.input_mtok}/M vs cache read ${prices.cache_read_mtok}/M)"
        ),
        parameters={"shared_prefix_tokens_assumed": prefix},
    )


def _max_tokens(u: _Usage, period: Period) -> Recommendation | None:
    if u.max_tokens is None or u.calls < 3 or u.p95_output >= MAX_TOKENS_USED_SHARE * u.max_tokens:
        return None
    # Headroom of 25 % over the largest output seen, rounded up to a multiple of 64.
    suggested = int(math.ceil(max(u.max_output, 1) * 1.25 / 64) * 64)
    if suggested >= u.max_tokens:
        return None
    prices = u.main_prices()
    detail = ""
    if prices is not None and prices.output_mtok is not None:
        drop = Decimal(u.max_tokens - suggested) * prices.output_mtok / _MTOK
        detail = (f"; the worst-case cost reserved per call before it runs drops by "
                  f"{money_text(drop)} (budgets reserve max_tokens x output price)")
    return _usage_recommendation(
        u, period, kind="max_tokens", recommended_model=u.model, recommended_cost=u.cost,
        potential_savings=ZERO, confidence="high" if u.calls >= 100 else "medium",
        reasoning=(
            f"{_volume(u, period)}: output was at most {u.max_output} tokens (p95 {u.p95_output:.0f}) against "
            f"max_tokens {u.max_tokens}. Lowering max_tokens to {suggested} keeps 25% headroom and caps runaway "
            f"generations; spend on the observed outputs is unchanged{detail}"
        ),
        parameters={"max_tokens": {"current": u.max_tokens, "recommended": suggested,
                                   "max_output_observed": u.max_output}},
    )


def _context_by_pipeline(tx: Tx, filters: Filters, period: Period) -> dict[str, dict[str, Any]]:
    """`insights.context_tokens_per_document` for every pipeline at once: the least-squares sums are computed in
    one grouped query (per run: x = documents retrieved, y = generator input tokens), not one query per pipeline."""
    where, params = build_where(filters, period, "r")
    rows = tx.query(
        f"""WITH per_run AS (
                SELECT r.pipeline_name AS pipeline,
                       SUM(CASE WHEN c.documents_retrieved IS NOT NULL THEN c.documents_retrieved ELSE 0 END) AS x,
                       SUM(CASE WHEN c.model IS NOT NULL AND c.span_kind <> 'embedding' THEN c.input_tokens
                                ELSE 0 END) AS y,
                       SUM(CASE WHEN c.documents_retrieved IS NOT NULL THEN 1 ELSE 0 END) AS retrievals
                FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where}
                GROUP BY r.pipeline_name, c.run_id)
            SELECT pipeline, COUNT(*), COUNT(DISTINCT x), SUM(x), SUM(y), SUM(x * x), SUM(x * y)
            FROM per_run WHERE retrievals > 0 AND y <> 0 GROUP BY pipeline""",
        params,
    )
    out: dict[str, dict[str, Any]] = {}
    for pipeline, n, distinct_x, sx, sy, sxx, sxy in rows:
        n, sx, sy, sxx, sxy = int(n), int(sx or 0), int(sy or 0), int(sxx or 0), int(sxy or 0)
        if n < 3 or int(distinct_x) < 2:
            continue
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        if slope <= 0:
            continue
        mean_x, mean_y = sx / n, sy / n
        out[pipeline] = {"runs": n, "tokens_per_document": round(slope, 1), "avg_documents": round(mean_x, 3),
                         "context_share": round(min(1.0, slope * mean_x / mean_y), 4) if mean_y else None}
    return out


@dataclass
class _Activity:
    """Figures of the whole window besides model usage: per (pipeline, component) top-level visits, failures and
    retrievals; their sums: model calls, agent rows and retrievals (the queries behind the rarer recommendations
    run only when these say there is something)."""

    components: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    model_calls: int = 0
    agent_rows: int = 0
    retrievals: int = 0

    def retrievers(self) -> dict[str, str]:
        """The busiest retriever component of each pipeline."""
        best: dict[str, tuple[int, str]] = {}
        for pipeline, component, _visits, _errors, count in self.components:
            key = (-count, str(component))  # most retrievals, then the first name
            if count and (pipeline not in best or key < best[pipeline]):
                best[pipeline] = key
        return {p: key[1] for p, key in best.items()}


def _retriever_top_k(tx: Tx, filters: Filters, period: Period, usages: list[_Usage],
                     activity: _Activity) -> list[Recommendation]:
    if not activity.retrievals:
        return []  # no component retrieved documents in the window: nothing to regress
    out = []
    contexts = _context_by_pipeline(tx, filters, period)
    retrievers = activity.retrievers()
    for pipeline in sorted({u.pipeline for u in usages}):
        context = contexts.get(pipeline)
        if not context or (context["context_share"] or 0) < CONTEXT_DOMINATES_SHARE or context["avg_documents"] < 2:
            continue
        retriever = [(retrievers[pipeline],)] if pipeline in retrievers else []
        generators = [u for u in usages if u.pipeline == pipeline]
        main = max(generators, key=lambda u: u.calls)
        prices = main.main_prices()
        if not retriever or prices is None or prices.input_mtok is None:
            continue
        avg_docs = Decimal(str(context["avg_documents"]))
        new_k = max(1, int(avg_docs / 2))
        per_doc = Decimal(str(context["tokens_per_document"]))
        runs = context["runs"]
        savings = quantize_money(Decimal(runs) * per_doc * (avg_docs - new_k) * prices.input_mtok / _MTOK)
        if savings <= 0:
            continue
        cost = quantize_money(sum((u.cost for u in generators), ZERO))
        out.append(Recommendation(
            kind="retriever_top_k", component=retriever[0][0], pipeline=pipeline, provider=main.provider,
            current_model=main.model, current_cost=cost, recommended_model=main.model,
            recommended_cost=cost - savings, potential_savings=savings, confidence="low",
            reasoning=(
                f"over {runs} run(s), {period.label}, each retrieved document added about {per_doc} generator "
                f"input tokens (least squares over runs with different document counts): documents are "
                f"{context['context_share'] * 100:.0f}% of the input. Retrieving {new_k} instead of "
                f"{avg_docs.normalize()} documents on average saves about {money_text(savings)}; check answer "
                "quality (a reranker can keep the best documents)"
            ),
            basis={"runs": runs, "period": period.label},
            parameters={"top_k": {"current_avg_documents": float(avg_docs), "recommended": new_k},
                        "tokens_per_document": float(per_doc)},
        ))
    return out


_TRANSIENT = ("429", "rate limit", "ratelimit", "timeout", "timed out", "overloaded", "503", "502", "500",
              "connection", "temporarily")


def _failing_components(tx: Tx, filters: Filters, period: Period, activity: _Activity) -> list[Recommendation]:
    failing = [(pipeline, component, visits, errors)
               for pipeline, component, visits, errors, _n in activity.components
               if errors and errors / visits > FAILURE_RATE_THRESHOLD]
    if not failing:
        return []
    where, params = build_where(filters, period, "r")
    # Per failing component, in one statement: what its failed runs had spent (the cost of all calls of the failed
    # runs in which one of its visits failed; kind 1), and the last of its top-level errors (kind 0).
    pairs = " OR ".join("(r.pipeline_name = ? AND c.component_name = ?)" for _ in failing)
    pair_params = [v for p, comp, *_rest in failing for v in (p, comp)]
    failed = f"""FROM calls c JOIN runs r ON r.run_id = c.run_id
                 WHERE {where} AND c.status = 'error' AND c.parent_call_id IS NULL AND ({pairs})"""
    wasted: dict[tuple[str, str], Decimal] = {}
    samples: dict[tuple[str, str], str | None] = {}
    for kind, p, comp, cost, sample in tx.query(
        f"""SELECT 1, f.pipeline_name, f.component_name, SUM(c2.cost), NULL
            FROM (SELECT DISTINCT r.pipeline_name, c.component_name, c.run_id {failed} AND r.status = 'error') f
            JOIN calls c2 ON c2.run_id = f.run_id
            GROUP BY f.pipeline_name, f.component_name
            UNION ALL
            SELECT 0, r.pipeline_name, c.component_name, NULL, MAX(c.error) {failed}
            GROUP BY r.pipeline_name, c.component_name""",
        [*params, *pair_params, *params, *pair_params]):
        if kind:
            wasted[(p, comp)] = cost
        else:
            samples[(p, comp)] = sample
    out = []
    for pipeline, component, visits, errors in failing:
        spent = wasted.get((pipeline, component)) or ZERO
        sample = samples.get((pipeline, component))
        text = (sample or "").lower()
        transient = any(marker in text for marker in _TRANSIENT)
        fix = ("the errors look transient (rate limits, timeouts, 5xx): retry with backoff (genops run --retries 3)"
               if transient else "the errors do not look transient: add a fallback (another model or a "
               "FallbackChatGenerator) or fix the input that triggers them")
        out.append(Recommendation(
            kind="failing_component", component=component, pipeline=pipeline, provider=None, current_model=None,
            current_cost=spent, recommended_model=None, recommended_cost=ZERO, potential_savings=spent,
            confidence="medium" if visits >= 20 else "low",
            reasoning=(
                f"{errors} of {visits} visits failed ({ratio(errors, visits) * 100:.1f}%), {period.label}; failed "
                f"runs had already spent {money_text(spent)}. Last error: {(sample or '')[:160]}. {fix}"
            ),
            basis={"visits": visits, "errors": errors, "period": period.label},
            parameters={"transient": transient},
        ))
    return out


def _agent_loops(tx: Tx, filters: Filters, period: Period) -> list[Recommendation]:
    """Agents whose runs stop at max_agent_steps, per agent (a nested Agent is its own agent).

    Runs that end with an answer (final answer or exit condition) are legitimate whatever their length: a cap
    is only suggested at the longest of them, so no legitimate answer is cut, and the saving counts only the
    steps that cap would cut from runs that hit the cap. An agent that never answers (every run capped) loops:
    everything its runs spent is spent without an answer.
    """
    where, params = build_where(filters, period, "r")
    per_agent: dict[tuple[str, str], list[AgentInstance]] = defaultdict(list)
    for instance in agent_instances(tx, where, params):
        per_agent[(instance.pipeline, instance.path)].append(instance)
    out = []
    for (pipeline, path), instances in sorted(per_agent.items()):
        capped = [i for i in instances if i.exit_reason == "max_agent_steps"]
        if not capped:
            continue
        answered = [i for i in instances if i.exit_reason in ("final_answer", "exit_condition")]
        out.append(_agent_loop(tx, pipeline, path, instances, capped, answered, period))
    return out


def _agent_loop(tx: Tx, pipeline: str, path: str, instances: list[AgentInstance], capped: list[AgentInstance],
                answered: list[AgentInstance], period: Period) -> Recommendation:
    summary = summarize_agent(path, instances)
    current_cap = summary["max_agent_steps"]
    cost = quantize_money(sum((i.cost for i in instances), ZERO))
    head = (f"{len(capped)} of {len(instances)} run(s) of agent '{path}', {period.label}, stopped at "
            f"max_agent_steps ({current_cap}) without an answer")
    if not answered:
        savings = quantize_money(sum((i.cost for i in capped), ZERO))
        suggested = None
        reasoning = (f"{head}: the agent loops. Its capped runs spent {money_text(savings)} without an answer; "
                     "fix the loop (the tool results it gets, its prompt or exit_conditions) rather than the cap")
    else:
        suggested = max(i.steps for i in answered)
        ids = [i.instance for i in capped]
        savings = ZERO
        if current_cap is None or suggested < current_cap:
            savings = tx.scalar(
                f"""SELECT SUM(c.cost) FROM calls c WHERE c.agent_instance IN ({', '.join('?' for _ in ids)})
                    AND c.span_kind = 'agent_llm' AND c.agent_step >= ?""", [*ids, suggested]) or ZERO
        reasoning = (f"{head}; the longest run that answered took {suggested} step(s). "
                     + (f"Capping at {suggested} keeps every answer and cuts only the steps capped runs took "
                        f"beyond it: {money_text(savings)}. " if savings else "")
                     + "The capped runs look like loops: check the tool results they got and exit_conditions")
    return Recommendation(
        kind="agent_loop", component=path, pipeline=pipeline, provider=summary["provider"],
        current_model=summary["model"], current_cost=cost, recommended_model=summary["model"],
        recommended_cost=cost - savings, potential_savings=savings,
        confidence="medium" if len(capped) >= 3 else "low", reasoning=reasoning,
        basis={"runs": len(instances), "capped_runs": len(capped), "answered_runs": len(answered),
               "steps": summary["steps"], "period": period.label},
        parameters={"verdict": summary["verdict"], "steps_per_run": summary["steps_per_run"],
                    "step_distribution": summary["step_distribution"], "exit_reasons": summary["exit_reasons"],
                    "max_agent_steps": {"current": current_cap, "recommended": suggested}},
    )


def recommend(ledger: Ledger, period: Period, filters: Filters | None = None) -> RecommendationReport:
    """All recommendations for the runs in `period` matching `filters`, largest savings first."""
    from genops_cli.pricing import get_price_book

    filters = filters or Filters()
    book = get_price_book()
    where, params = build_where(filters, period, "r")
    recs: list[Recommendation] = []
    with ledger.read() as tx:
        runs, spend = tx.query(f"SELECT COUNT(*), SUM(r.total_cost) FROM runs r WHERE {where}", params)[0]
        usages, activity = _observed_usage(tx, where, params)
        for u in usages:
            recs += _model_switch(u, period, book)
            for maker in (_prompt_caching, _max_tokens):
                rec = maker(u, period)
                if rec is not None:
                    recs.append(rec)
        recs += _retriever_top_k(tx, filters, period, usages, activity)
        recs += _failing_components(tx, filters, period, activity)
        if activity.agent_rows:
            recs += _agent_loops(tx, filters, period)
    recs.sort(key=lambda r: (-r.potential_savings, r.pipeline, r.component, r.kind))
    seen: set[tuple[str, str]] = set()
    for rec in recs:  # largest first: the first of each component counts, the rest are alternatives
        rec.counted = (rec.pipeline, rec.component) not in seen
        seen.add((rec.pipeline, rec.component))
        rec.basis.setdefault("period", period.label)
    return RecommendationReport(period, filters, int(runs or 0), activity.model_calls, recs,
                                spend=Decimal(spend or 0))

