"""Run the same inputs with each model substituted and put cost, tokens and latency side by side.

    result = compare_models(settings, ledger, "pipeline.yml", read_inputs("batch.jsonl"),
                            ["gpt-4o", "gpt-4o-mini"], component=None, simulate=False)
    result.rows[1].cost, result.rows[1].cost_ratio        # ratio to the first model
    result.to_json()

Every run goes through the Engine (preflight, budgets, recording) and is tagged `compare_id` / `compare_model`,
so the comparison stays in the ledger: `genops analyze --by model` and SQL on runs.tags find it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.errors import UsageError
from genops_cli.execution.inputs import RunInput, prepare_run_data
from genops_cli.ledger.store import Ledger
from genops_cli.models import quantize_money
from genops_cli.money import money_json


@dataclass
class ModelRow:
    model: str
    runs: int = 0
    ok: int = 0
    failed: int = 0
    blocked: int = 0
    cost: Decimal = Decimal(0)
    input_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)
    run_ids: list[str] = field(default_factory=list)
    cost_ratio: float | None = None
    latency_ratio: float | None = None
    tokens_ratio: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "runs": self.runs,
            "ok": self.ok,
            "failed": self.failed,
            "blocked": self.blocked,
            "cost": money_json(self.cost) if not self.unpriced_models else None,
            "priced": not self.unpriced_models,
            "priced_cost": money_json(self.cost),
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "cost_ratio": self.cost_ratio,
            "tokens_ratio": self.tokens_ratio,
            "latency_ratio": self.latency_ratio,
            "unpriced_models": sorted(self.unpriced_models),
            "run_ids": self.run_ids,
        }


@dataclass
class Comparison:
    compare_id: str
    pipeline: str
    component: str | None
    simulated: bool
    inputs: int
    rows: list[ModelRow]

    @property
    def exit_code(self) -> int:
        from genops_cli.errors import EXIT_BLOCKED, EXIT_OK, EXIT_RUN_FAILED

        if any(r.failed for r in self.rows):
            return EXIT_RUN_FAILED
        if any(r.blocked for r in self.rows):
            return EXIT_BLOCKED
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "compare_id": self.compare_id,
            "pipeline": self.pipeline,
            "component": self.component,
            "simulated": self.simulated,
            "inputs": self.inputs,
            "baseline": self.rows[0].model if self.rows else None,
            "models": [r.to_json() for r in self.rows],
        }


def _ratio(value: float | Decimal, base: float | Decimal) -> float | None:
    if not base:
        return None
    return round(float(Decimal(str(value)) / Decimal(str(base))), 4)


def check_model_prices(profile: Any, model: str, component: str | None, allow_unpriced: bool = False) -> list[str]:
    """Refuse (UsageError, before anything runs) a model the substituted components cannot call or genops cannot
    price; with `allow_unpriced`, return warnings instead. A component's provider comes from its class (an OpenAI
    generator calls openai), the model's from the price book (claude-* is anthropic)."""
    from genops_cli.pricing import get_price_book

    book = get_price_book()
    warnings: list[str] = []
    for name, comp in sorted(profile.components.items()):
        if component is not None and name != component:
            continue
        target = comp if comp.is_llm else comp.inner
        if target is None or not target.is_llm:
            continue
        provider = target.provider
        if book.resolve(model, provider) is not None:
            continue
        known = book.resolve(model)
        if known is not None and provider and known.provider != provider:
            message = (f"--model {model}: component {name} ({target.type_name}) calls {provider}, and {model} is "
                       f"a {known.provider} model; compare models {provider} serves, or pass --allow-unpriced if "
                       "this component talks to a gateway that serves it (its calls are then recorded unpriced)")
        else:
            message = (f"--model {model}: no price for {provider or '?'}:{model} (component {name}); check the id "
                       "(genops pricing list), add it to a pricing overlay, or pass --allow-unpriced")
        if not allow_unpriced:
            raise UsageError(message)
        warnings.append(message)
    return warnings


def compare_models(settings: Settings, ledger: Ledger, pipeline_path: str, inputs: list[RunInput],
                   models: list[str], component: str | None = None, simulate: bool = False,
                   allow_modules: list[str] | None = None, documents: list[Any] | None = None,
                   on_run: Any = None, allow_unpriced: bool = False,
                   on_warning: Any = None) -> Comparison:
    """Run every input once per model (model substituted in `component`, or in every LLM component). Every model
    is checked (callable by the component's provider, priced) before the first run spends anything."""
    from genops_cli.execution.loading import load_pipeline
    from genops_cli.execution.runner import Engine, RunOptions

    if len(models) < 2:
        raise UsageError("--model: give at least two models to compare, e.g. --model gpt-4o --model gpt-4o-mini")
    if len(set(models)) != len(models):
        raise UsageError("--model: each model once")
    if not inputs:
        raise UsageError("--inputs: no runs in the file")
    compare_id = str(uuid.uuid4())
    engine = Engine(settings, ledger)
    rows: list[ModelRow] = []
    pipeline_name = ""
    pipelines = []
    for model in models:
        loaded = load_pipeline(pipeline_path, allow_modules=allow_modules, simulate=simulate,
                               simulation_output_tokens=settings.simulation_output_tokens,
                               model_overrides={component or "*": model})
        if component is not None and component not in loaded.profile.components:
            names = ", ".join(sorted(loaded.profile.components))
            raise UsageError(f"--component {component!r}: no such component in {pipeline_path} ({names})")
        if not any(c.is_llm or c.inner is not None for c in loaded.profile.components.values()):
            raise UsageError(f"{pipeline_path}: no LLM component to substitute a model in")
        for warning in check_model_prices(loaded.profile, model, component, allow_unpriced):
            if on_warning is not None:
                on_warning(warning)
        pipelines.append((model, loaded))
    for model, loaded in pipelines:
        pipeline_name = loaded.profile.name
        row = ModelRow(model=model)
        for index, run_input in enumerate(inputs):
            data = prepare_run_data(loaded.pipeline, run_input, loaded.declared_inputs)
            options = RunOptions(
                documents=documents if index == 0 else None,
                extra_tags={"compare_id": compare_id, "compare_model": model},
            )
            run = engine.run(loaded, data, options).run
            row.runs += 1
            row.run_ids.append(run.run_id)
            row.cost += run.total_cost
            row.unpriced_models.update(run.unpriced_models)
            if run.status == "ok":
                row.ok += 1
            elif run.status == "blocked":
                row.blocked += 1
            else:
                row.failed += 1
            for call in run.calls:
                if call.model:
                    row.input_tokens += call.usage.input_tokens
                    row.cache_read_tokens += call.usage.cache_read_tokens
                    row.output_tokens += call.usage.output_tokens
                if call.parent_call_id is None:
                    row.latency_ms += call.latency_ms
            if on_run is not None:
                on_run(model, run)
        rows.append(row)
    base = rows[0]
    for row in rows:
        row.cost = quantize_money(row.cost)
        # A ratio against or of an unpriced cost would be invented (0.00x): none.
        row.cost_ratio = None if row.unpriced_models or base.unpriced_models else _ratio(row.cost, base.cost)
        row.tokens_ratio = _ratio(row.input_tokens + row.output_tokens, base.input_tokens + base.output_tokens)
        row.latency_ratio = _ratio(row.latency_ms, base.latency_ms)
    return Comparison(compare_id, pipeline_name, component, simulate, len(inputs), rows)
