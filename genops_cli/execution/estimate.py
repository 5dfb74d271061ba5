"""Cost estimate of one run before it spends: low / expected / worst case (high), per component.

Budget reservations hold the worst case (`high`); `genops estimate` shows all three.

    est = estimate_run(loaded, data, settings, ledger=ledger)      # ledger: history for the expected value
    est.high, est.expected, est.low                                  # Decimal USD
    for line in est.lines: line.component, line.input_tokens, line.output_tokens, line.output_basis, line.high

How the numbers are made:
- Input tokens are counted, not guessed: the pipeline runs once in simulation (genops_cli.execution.simulate: LLM and
  embedding components replaced by offline stand-ins; retrievers, builders and tools run for real, locally), and
  each simulated call's input tokens are read from the rendered messages. The simulated copy is built once per
  pipeline per process (batches estimate many lines) with private in-memory stores, so it never touches the
  real pipeline's documents (it reads a copy of what the real stores hold).
- Output tokens for the worst case are the component's `max_tokens` ("max_tokens"); where unset, the model's
  output limit from the price book ("model_output_limit"), else `reservation.max_tokens_cap`
  ("configured_cap"). A later LLM call that is downstream of an earlier one (or the same Agent's next step) may
  see the earlier call's whole output, so its worst-case input adds those output tokens.
- An Agent with tools may make `max_agent_steps` LLM calls: the worst case extrapolates the steps the simulation
  did not take, each growing by one full reply plus the largest tool result seen.
- An LLM component inside a pipeline loop (a self-correcting generator, a retry cycle) may be visited up to the
  pipeline's `max_runs_per_component`: the worst case counts those visits, each repeating its last simulated input.
- The expected output is the average of recorded calls of the same pipeline, component and model ("observed"),
  else `simulation.output_tokens` ("configured"), else the worst case.
- If the simulation pass cannot run, a static count (the inputs' text plus the prompt templates) is used and the
  estimate says so in `notes`.
"""

from __future__ import annotations

import copy
import math
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.models import CallRecord, TokenUsage, quantize_money, utcnow
from genops_cli.money import money_json

if TYPE_CHECKING:
    from genops_cli.config import Settings
    from genops_cli.execution.loading import LoadedPipeline
    from genops_cli.ledger.store import Ledger
    from genops_cli.tracking.capture import ComponentProfile

DEFAULT_MAX_AGENT_STEPS = 100  # haystack Agent's default


@dataclass
class EstimateLine:
    """One LLM or embedding component's share of a run."""

    component: str
    component_type: str
    provider: str | None
    model: str | None
    kind: str  # "llm" | "embedding"
    calls: int = 0  # calls made in the estimation pass
    worst_calls: int = 0  # calls assumed for the worst case (Agents: max_agent_steps)
    input_tokens: int = 0  # counted from the rendered inputs
    worst_input_tokens: int = 0  # incl. upstream outputs and extrapolated agent steps
    output_tokens: int = 0  # assumed for the worst case
    output_basis: str = "none"  # max_tokens | model_output_limit | configured_cap | none (embeddings)
    expected_output_tokens: int = 0
    expected_basis: str = "none"  # observed | configured | the worst-case basis
    low: Decimal = Decimal(0)
    expected: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    priced: bool = True
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "component_type": self.component_type,
            "provider": self.provider,
            "model": self.model,
            "kind": self.kind,
            "calls": self.calls,
            "worst_calls": self.worst_calls,
            "input_tokens": self.input_tokens,
            "worst_input_tokens": self.worst_input_tokens,
            "output_tokens": self.output_tokens,
            "output_basis": self.output_basis,
            "expected_output_tokens": self.expected_output_tokens,
            "expected_basis": self.expected_basis,
            "low": money_json(self.low) if self.priced else None,
            "expected": money_json(self.expected) if self.priced else None,
            "high": money_json(self.high) if self.priced else None,
            "priced": self.priced,
            "notes": list(self.notes),
        }


@dataclass
class RunEstimate:
    pipeline: str
    method: str  # "simulation" | "static"
    lines: list[EstimateLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    currency: str = "USD"

    @property
    def low(self) -> Decimal:
        return quantize_money(sum((line.low for line in self.lines), Decimal(0)))

    @property
    def expected(self) -> Decimal:
        return quantize_money(sum((line.expected for line in self.lines), Decimal(0)))

    @property
    def high(self) -> Decimal:
        return quantize_money(sum((line.high for line in self.lines), Decimal(0)))

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({f"{line.provider or '?'}:{line.model}" for line in self.lines if not line.priced})

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "method": self.method,
            "low": money_json(self.low),
            "expected": money_json(self.expected),
            "high": money_json(self.high),
            "currency": self.currency,
            "priced": not self.unpriced_models,
            "unpriced_models": self.unpriced_models,
            "lines": [line.to_json() for line in self.lines],
            "notes": list(self.notes),
        }


# -- the simulated copy, once per pipeline per process ---------------------------------------------------------


@dataclass
class _SimEntry:
    loaded: LoadedPipeline
    lock: threading.Lock = field(default_factory=threading.Lock)
    filled: bool = False


_SIM_CACHE: dict[tuple[str, str], _SimEntry] = {}
_SIM_CACHE_LOCK = threading.Lock()


def _walk_types(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        if isinstance(value.get("type"), str) and "." in value["type"]:
            out.add(value["type"])
        for v in value.values():
            _walk_types(v, out)
    elif isinstance(value, list):
        for v in value:
            _walk_types(v, out)


def simulated_copy(loaded: LoadedPipeline) -> _SimEntry:
    """The simulated twin of `loaded` (cached per pipeline path and content hash)."""
    from haystack import Pipeline

    from genops_cli.execution.loading import SIMULATOR_MODULE, LoadedPipeline
    from genops_cli.execution.simulate import simulate_components

    key = (str(loaded.path), loaded.profile.pipeline_hash)
    with _SIM_CACHE_LOCK:
        entry = _SIM_CACHE.get(key)
        if entry is not None:
            return entry
    types: set[str] = set()
    _walk_types(loaded.data.get("components") or {}, types)
    # These modules were allowed when the real pipeline was loaded; the simulators live in execution.simulate.
    allowed = sorted({t.rsplit(".", 1)[0] for t in types} | {SIMULATOR_MODULE} | set(loaded.allow_modules))
    data = copy.deepcopy(loaded.data)
    profile = copy.deepcopy(loaded.profile)
    if not loaded.simulated:
        simulate_components(data, profile, None)
    pipeline = Pipeline.from_dict(data, allowed_modules=allowed)
    sim = LoadedPipeline(pipeline=pipeline, profile=profile, path=loaded.path, data=data, simulated=True)
    with _SIM_CACHE_LOCK:
        return _SIM_CACHE.setdefault(key, _SimEntry(sim))


def _simulated_calls(loaded: LoadedPipeline, data: dict[str, Any], documents: list[Any] | None,
                     agent_steps: tuple[Any, dict[str, list[int]]] | None = None,
                     ) -> tuple[list[CallRecord], LoadedPipeline]:
    from genops_cli.execution.documents import sync_simulated_stores
    from genops_cli.execution.session import simulation_capture
    from genops_cli.execution.simulate import apply_agent_steps
    from genops_cli.tracking.tracer import capture_run, ensure_installed_after_load

    entry = simulated_copy(loaded)
    ensure_installed_after_load()
    with entry.lock:
        if agent_steps is not None:  # the same steps `run --simulate` takes: configured, else recorded
            apply_agent_steps(entry.loaded.pipeline, *agent_steps)
        sync_simulated_stores(entry.loaded, loaded)  # what the real stores hold now, simulated embeddings
        capture = simulation_capture(entry.loaded)  # neither admitted nor recorded: nothing is spent
        with capture_run(capture):
            if documents and not entry.filled:
                from genops_cli.execution.documents import fill_stores

                # The first real run embeds the documents too (a recorded call): estimate it with that run.
                fill_stores(entry.loaded, documents)
                entry.filled = True
            entry.loaded.pipeline.run(copy.deepcopy(data))
    return capture.sorted_calls(), entry.loaded


# -- helpers ---------------------------------------------------------------------------------------------------


def _agent_steps(loaded: LoadedPipeline, settings: Settings, ledger: Ledger | None) -> tuple[Any, dict[str, list[int]]]:
    from genops_cli.execution.simulate import recorded_agent_steps

    configured = getattr(settings, "simulation_agent_steps", None)
    recorded: dict[str, list[int]] = {}
    if ledger is not None and not isinstance(configured, int):
        try:
            recorded = recorded_agent_steps(ledger, loaded.profile.name)
        except Exception:  # no ledger yet: the default steps apply
            recorded = {}
    return configured, recorded


def _downstream(loaded: LoadedPipeline) -> dict[str, set[str]]:
    """component -> every component reachable from it through the pipeline's connections."""
    edges: dict[str, set[str]] = {}
    for conn in loaded.data.get("connections") or []:
        sender = str(conn.get("sender", "")).split(".")[0]
        receiver = str(conn.get("receiver", "")).split(".")[0]
        edges.setdefault(sender, set()).add(receiver)
    reach: dict[str, set[str]] = {}
    for start in loaded.data.get("components") or {}:
        seen: set[str] = set()
        stack = list(edges.get(start, ()))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(edges.get(node, ()))
        reach[start] = seen
    return reach


def _llm_profile(loaded: LoadedPipeline, component: str) -> ComponentProfile | None:
    prof = loaded.profile.components.get(component)
    if prof is not None and prof.inner is not None:
        return prof.inner
    return prof


def output_cap(profile: ComponentProfile | None, model: str | None, provider: str | None,
               settings: Settings) -> tuple[int, str]:
    """Worst-case output tokens of one LLM call and where the number comes from (the same rule per-call
    admission applies: `policy.admission.worst_output_tokens`)."""
    from genops_cli.policy.admission import worst_output_tokens

    return worst_output_tokens(profile.max_tokens if profile is not None else None, model, provider,
                               settings.max_tokens_cap)


def _agent_spec(loaded: LoadedPipeline, component: str) -> tuple[int, bool] | None:
    """(max_agent_steps, has_tools) for an Agent component, else None."""
    comp = (loaded.data.get("components") or {}).get(component) or {}
    params = comp.get("init_parameters") or {}
    if "chat_generator" not in params:
        return None
    steps = params.get("max_agent_steps")
    return (steps if isinstance(steps, int) and steps > 0 else DEFAULT_MAX_AGENT_STEPS), bool(params.get("tools"))


def observed_outputs(ledger: Ledger, pipeline_name: str) -> dict[tuple[str, str], tuple[float, int, int]]:
    """(component, recorded model) -> (average output tokens, minimum, calls) of recorded, non-simulated calls."""
    with ledger.read() as tx:
        rows = tx.query(
            "SELECT c.component_name, c.model, AVG(c.output_tokens), MIN(c.output_tokens), COUNT(*) "
            "FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE r.pipeline_name = ? AND NOT r.simulated "
            "AND c.status = 'ok' AND c.model IS NOT NULL AND c.span_kind <> 'embedding' "
            "AND c.usage_source = 'reported' GROUP BY c.component_name, c.model",
            [pipeline_name],
        )
    return {(r[0], r[1]): (float(r[2] or 0), int(r[3] or 0), int(r[4])) for r in rows}


_DATED_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


def _same_model(recorded: str, requested: str) -> bool:
    """The response model is the requested one or a dated release of it (gpt-4o-mini-2024-07-18,
    claude-3-haiku-20240307), never a sibling that merely shares a prefix (gpt-4o vs gpt-4o-mini)."""
    if recorded == requested:
        return True
    match = _DATED_SUFFIX.search(recorded)
    return match is not None and recorded[: match.start()] == requested


def _observed_for(history: dict[tuple[str, str], tuple[float, int, int]], component: str,
                  model: str | None) -> tuple[int, int] | None:
    """(average output, calls) for a component and request model; recorded models are response models
    (gpt-4o-mini -> gpt-4o-mini-2024-07-18), so dated variants match too."""
    total = weight = 0.0
    for (comp, recorded), (avg, _low, count) in history.items():
        if comp != component or not model or not _same_model(recorded, model):
            continue
        total += avg * count
        weight += count
    if not weight:
        return None
    return math.ceil(total / weight), int(weight)


# -- the estimate ----------------------------------------------------------------------------------------------


@dataclass
class _Call:
    component: str
    component_type: str
    provider: str | None
    model: str | None
    embedding: bool
    input_tokens: int
    output_tokens: int  # in the estimation pass
    simulated: bool = True  # False for extrapolated agent steps


def _price(usage: TokenUsage, model: str | None, provider: str | None, at: datetime,
           tenant: str | None) -> tuple[Decimal, bool]:
    from genops_cli.pricing import get_price_book

    if not model:
        return Decimal(0), False
    priced = get_price_book().price(usage, model, provider, at=at, tenant=tenant)
    return priced.cost, priced.priced


def _static_calls(loaded: LoadedPipeline, data: dict[str, Any]) -> list[_Call]:
    """Fallback when the pipeline cannot run in simulation: every LLM sees all input text and every template."""
    from genops_cli.tokens import count_text_tokens

    texts: list[str] = []

    def strings(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                strings(v)
        elif isinstance(value, list | tuple):
            for v in value:
                strings(v)

    strings(data)
    input_text = "\n".join(texts)
    for comp in (loaded.data.get("components") or {}).values():
        params = (comp or {}).get("init_parameters") or {}
        for key in ("template", "system_prompt", "user_prompt", "prompt"):
            if params.get(key):
                strings(params[key])
    all_text = "\n".join(texts)
    calls: list[_Call] = []
    for name, prof in loaded.profile.components.items():
        target = prof.inner if prof.inner is not None else prof
        if not (target.is_llm or target.is_embedder):
            continue
        text = input_text if target.is_embedder else all_text
        calls.append(_Call(name, target.type_name, target.provider, target.model, target.is_embedder,
                           count_text_tokens(text, target.model), 0))
    return calls


def _pass_calls(records: list[CallRecord], sim: LoadedPipeline) -> list[_Call]:
    calls = []
    for rec in records:
        if not rec.model or rec.span_kind in ("tool", "agent_step"):
            continue
        prof = sim.profile.components.get(rec.component_name)
        target = prof.inner if prof is not None and prof.inner is not None else prof
        embedding = rec.span_kind == "embedding" or bool(target is not None and target.is_embedder)
        # The profile keeps the original class (the record of a simulated call names the simulator).
        component_type = target.type_name if target is not None else rec.component_type
        calls.append(_Call(rec.component_name, component_type, rec.provider, rec.model, embedding,
                           rec.usage.input_tokens, rec.usage.output_tokens))
    return calls


def estimate_run(loaded: LoadedPipeline, data: dict[str, Any], settings: Settings, ledger: Ledger | None = None,
                 *, documents: list[Any] | None = None, tenant: str | None = None,
                 now: datetime | None = None,
                 history: dict[tuple[str, str], tuple[float, int, int]] | None = None,
                 extrapolate_agents: bool = True) -> RunEstimate:
    """Estimate one run of `loaded` with `data` (the dict `Pipeline.run` takes). Never calls a provider.

    `ledger` (optional) supplies recorded output sizes for the expected value (`history`, the result of
    `observed_outputs`, saves reading them again for every line of a batch); `documents` are the
    `--documents` the first run will write (and embed); `tenant` applies contracted prices. Without
    `extrapolate_agents` an Agent counts only the steps the simulation took (a run's preflight: per-call admission
    then holds each further step's worst case before it is made).
    """
    now = now or utcnow()
    estimate = RunEstimate(pipeline=loaded.profile.name, method="simulation")
    # A run's preflight holds an Agent's first step only (each further step is admitted when it is taken); the
    # forecast simulates the steps configured or recorded, then extrapolates to max_agent_steps.
    agent_steps = _agent_steps(loaded, settings, ledger) if extrapolate_agents else (1, {})
    calls = _counted_calls(loaded, data, documents, estimate, agent_steps)
    if history is None:
        history = _history(ledger, loaded.profile.name, estimate)
    reach = _downstream(loaded)
    if extrapolate_agents:
        calls = _extrapolate_agents(loaded, calls, settings, estimate)
        calls = _extrapolate_loops(loaded, calls, reach, estimate)
    lines: dict[str, EstimateLine] = {}
    seen_llm: list[tuple[str, int, int]] = []  # (component, worst output, expected output) of earlier LLM calls
    for call in calls:
        line = lines.get(call.component)
        if line is None:
            line = lines[call.component] = EstimateLine(call.component, call.component_type, call.provider,
                                                        call.model, "embedding" if call.embedding else "llm")
        line.worst_calls += 1
        line.calls += 1 if call.simulated else 0
        if call.embedding:
            _add_embedding(line, call, now, tenant)
        else:
            # Upstream LLM outputs (and this Agent's earlier replies) may be rendered into this call's prompt.
            upstream = [(w, e) for comp, w, e in seen_llm
                        if comp == call.component or call.component in reach.get(comp, ())]
            seen_llm.append((call.component, *_add_llm(line, call, upstream, loaded, settings, history, now,
                                                       tenant)))
    for line in lines.values():
        _close_line(line, settings)
    estimate.lines = list(lines.values())
    if estimate.unpriced_models:
        estimate.notes.append(f"unpriced model(s) {', '.join(estimate.unpriced_models)} are not included")
    return estimate


def _counted_calls(loaded: LoadedPipeline, data: dict[str, Any], documents: list[Any] | None, estimate: RunEstimate,
                   agent_steps: tuple[Any, dict[str, list[int]]]) -> list[_Call]:
    """The calls of one simulated pass with their counted input tokens (a static count if it cannot run)."""
    try:
        calls = _pass_calls(*_simulated_calls(loaded, data, documents, agent_steps))
        estimate.notes.append("input tokens counted from a simulated run (rendered messages, local retrievers "
                              "and tools, offline tokenizers)")
        return calls
    except Exception as exc:  # the estimate must not fail the run: fall back to a static count, and say so
        from genops_cli.execution.session import describe_error

        estimate.method = "static"
        estimate.notes.append(f"simulation pass failed ({describe_error(exc)}); input tokens are a static count of "
                              "the inputs' text and the prompt templates")
        return _static_calls(loaded, data)


def _history(ledger: Ledger | None, pipeline: str,
             estimate: RunEstimate) -> dict[tuple[str, str], tuple[float, int, int]]:
    if ledger is None:
        return {}
    try:
        return observed_outputs(ledger, pipeline)
    except Exception as exc:  # history only sharpens the expected value
        estimate.notes.append(f"ledger history unavailable ({type(exc).__name__}); expected = worst case")
        return {}


def _add_embedding(line: EstimateLine, call: _Call, now: datetime, tenant: str | None) -> None:
    cost, priced = _price(TokenUsage(input_tokens=call.input_tokens, source="estimated"), call.model,
                          call.provider, now, tenant)
    line.input_tokens += call.input_tokens
    line.worst_input_tokens += call.input_tokens
    line.low += cost
    line.expected += cost
    line.high += cost
    line.priced = line.priced and priced


def _add_llm(line: EstimateLine, call: _Call, upstream: list[tuple[int, int]], loaded: LoadedPipeline,
             settings: Settings, history: dict[tuple[str, str], tuple[float, int, int]], now: datetime,
             tenant: str | None) -> tuple[int, int]:
    """Add one LLM call's low / expected / worst case to its line; returns its (worst, expected) output tokens."""
    cap, basis = output_cap(_llm_profile(loaded, call.component), call.model, call.provider, settings)
    expected_out, expected_basis = cap, basis
    observed = _observed_for(history, call.component, call.model)
    if observed is not None:
        expected_out, expected_basis = min(observed[0], cap), "observed"
    elif settings.simulation_output_tokens:
        expected_out, expected_basis = min(settings.simulation_output_tokens, cap), "configured"
    worst_in = min(call.input_tokens + sum(w for w, _ in upstream),
                   max(call.input_tokens, _input_room(call.model, call.provider, cap)))
    expected_in = call.input_tokens + sum(e for _, e in upstream)
    high, priced = _price(TokenUsage(input_tokens=worst_in, output_tokens=cap, source="estimated"),
                          call.model, call.provider, now, tenant)
    if call.simulated:
        low, _ = _price(TokenUsage(input_tokens=call.input_tokens, source="estimated"), call.model,
                        call.provider, now, tenant)
        expected, _ = _price(TokenUsage(input_tokens=expected_in, output_tokens=expected_out,
                                        source="estimated"), call.model, call.provider, now, tenant)
        line.low += low
        line.expected += expected
        line.input_tokens += call.input_tokens
        line.expected_output_tokens += expected_out
    line.high += high
    line.worst_input_tokens += worst_in
    line.output_tokens += cap
    line.output_basis, line.expected_basis = basis, expected_basis
    line.priced = line.priced and priced
    if observed is not None and not any(n.startswith("expected output") for n in line.notes):
        line.notes.append(f"expected output {observed[0]} tokens: average of {observed[1]} recorded call(s)")
    return cap, expected_out


def _input_room(model: str | None, provider: str | None, output_cap: int) -> int:
    """The most input one call can take: the model's context window less its output (unbounded if unknown).
    Upstream outputs add to a call's worst-case input, and a long loop or agent would otherwise add past it."""
    from genops_cli.pricing import get_price_book

    resolved = get_price_book().resolve(model, provider) if model else None
    window = resolved.context_window if resolved is not None else None
    return max(window - output_cap, 0) if window else 1 << 62


def _close_line(line: EstimateLine, settings: Settings) -> None:
    """Quantize a line's money and say where its numbers come from."""
    line.low, line.expected, line.high = (quantize_money(v) for v in (line.low, line.expected, line.high))
    if line.kind == "llm" and line.output_basis == "model_output_limit":
        line.notes.append("max_tokens unset: worst case assumes the model's output limit")
    elif line.kind == "llm" and line.output_basis == "configured_cap":
        line.notes.append(f"max_tokens unset and no known output limit: worst case assumes "
                          f"reservation.max_tokens_cap ({settings.max_tokens_cap})")
    if line.worst_input_tokens > line.input_tokens and line.kind == "llm":
        line.notes.append("worst-case input includes the full output of upstream LLM calls")
    if not line.priced:
        line.notes.append(f"no price for {line.model}: not included in the estimate")


#: Haystack's default bound on a component's visits in one run (`max_runs_per_component`).
DEFAULT_MAX_RUNS = 100


def _extrapolate_loops(loaded: LoadedPipeline, calls: list[_Call], reach: dict[str, set[str]],
                       estimate: RunEstimate) -> list[_Call]:
    """Add the visits an LLM component inside a pipeline loop (a self-correcting generator, a retry cycle) may
    make beyond those the simulation took, up to the pipeline's max_runs_per_component: each repeats its last
    simulated input (the upstream-output rule then adds every earlier visit's output to it)."""
    looping = {name for name, reachable in reach.items() if name in reachable}
    if not looping:
        return calls
    limit = loaded.data.get("max_runs_per_component")
    max_runs = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_RUNS
    last: dict[str, _Call] = {}
    seen: dict[str, int] = {}
    for call in calls:
        if call.component in looping and not call.embedding and _agent_spec(loaded, call.component) is None:
            last[call.component] = call
            seen[call.component] = seen.get(call.component, 0) + 1
    out = list(calls)
    for component, call in last.items():
        extra = max_runs - seen[component]
        if extra <= 0:
            continue
        out += [_Call(component, call.component_type, call.provider, call.model, False, call.input_tokens,
                      call.output_tokens, simulated=False) for _ in range(extra)]
        estimate.notes.append(f"component '{component}' is in a loop: worst case assumes max_runs_per_component="
                              f"{max_runs} visits ({seen[component]} in the simulation)")
    return out


def _extrapolate_agents(loaded: LoadedPipeline, calls: list[_Call], settings: Settings,
                        estimate: RunEstimate) -> list[_Call]:
    """Add the LLM steps an Agent with tools may take beyond those seen, up to its max_agent_steps."""
    out: list[_Call] = []
    by_component: dict[str, list[_Call]] = {}
    for call in calls:
        if not call.embedding:
            by_component.setdefault(call.component, []).append(call)
    done: set[str] = set()
    for call in calls:
        out.append(call)
        steps = by_component.get(call.component) or []
        if call.embedding or call.component in done or not steps or call is not steps[-1]:
            continue
        done.add(call.component)
        spec = _agent_spec(loaded, call.component)
        if spec is None or not spec[1] or len(steps) >= spec[0]:
            continue
        max_steps = spec[0]
        # Growth of the conversation per step beyond the reply itself: the tool result (and its framing).
        pairs = zip(steps, steps[1:], strict=False)
        growth = max([b.input_tokens - a.input_tokens - a.output_tokens for a, b in pairs] + [0])
        cap, _ = output_cap(_llm_profile(loaded, call.component), call.model, call.provider, settings)
        last = steps[-1].input_tokens
        for _ in range(max_steps - len(steps)):
            last += growth
            out.append(_Call(call.component, call.component_type, call.provider, call.model, False, last, cap,
                             simulated=False))
        estimate.notes.append(f"agent '{call.component}': worst case assumes max_agent_steps={max_steps} LLM calls "
                              f"({len(steps)} in the simulation), each step adding a tool result of up to "
                              f"{growth} tokens")
    return out
