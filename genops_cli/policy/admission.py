"""Per-call admission: before every LLM and embedding call, the run's limits decide whether the call may be made.

The tracer asks the run's `RunAdmission` before a provider call (when the call's rendered input is known) and
tells it the priced cost after. Every limit is checked on the same sum:

    spent so far + worst case of calls in flight + this call's worst case  <=  limit

- the run cap (`--max-cost` on one run, compliance `max_cost_per_operation`): in memory;
- a batch's shared cap (`--max-cost` over a batch, `SharedBudget`): in memory, shared by the batch's workers;
- ledger budgets (enforcing, per scope and period): through a `BudgetHold`, the run's reservation in the ledger.
  A call that fits in what the run already holds is admitted in memory; otherwise the hold grows by what is
  missing, in one write transaction under the scope locks (race-free across processes), or the call is denied;
- checks registered with `register_admission_check` (compliance rules on component, provider, model, endpoint).

A call's worst case: input tokens counted offline from the rendered messages (plus tool definitions), output =
the call's `max_tokens` (generation_kwargs, else the component's configured value), else the model's output
limit from the price book, else `reservation.max_tokens_cap`. A denied call raises `CallBlocked` before any
request is sent; the run is recorded as blocked with what it spent so far.

    admission = RunAdmission(run, max_cost=Decimal("0.05"), budgets=hold)
    request = worst_case_request(run.run_id, "llm", "llm", "openai", "gpt-4o-mini", inputs, None, 4096)
    ticket = admission.admit(request)         # raises CallBlocked
    admission.spend(call.cost); admission.release(ticket)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from genops_cli.errors import RunCostCapReached
from genops_cli.models import RunRecord, TokenUsage, quantize_money

REASON = "BUDGET_EXCEEDED"

#: The worst case of a call whose model or price is unknown: the smallest amount of money, so such a call is
#: admitted while a limit has room and stopped once the limit is used up.
UNKNOWN_WORST_CASE = Decimal("0.0000000001")



@dataclass(frozen=True)
class CallRequest:
    """One provider call about to be made, with its worst-case cost."""

    run_id: str
    component: str
    kind: str  # "llm" | "embedding"
    provider: str | None
    model: str | None
    endpoint: str | None
    input_tokens: int
    output_tokens: int
    output_basis: str  # max_tokens | model_output_limit | configured_cap | none
    worst_case: Decimal
    priced: bool


@dataclass(frozen=True)
class Denial:
    """Why a call may not be made (GenOps reason code, one-line message, the rule that denied it)."""

    reason_code: str
    message: str
    rule: str


class CallBlocked(RunCostCapReached):
    """Raised before a provider call that an enforcing limit denies; the call is not made."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.message)
        self.denial = denial


#: An extra per-call rule: return a Denial to stop the call, None to let it through.
AdmissionCheck = Callable[[CallRequest, "RunAdmission"], "Denial | None"]
_checks: list[AdmissionCheck] = []


def register_admission_check(check: AdmissionCheck) -> None:
    """Add a rule evaluated before every LLM/embedding call of every run (idempotent)."""
    if check not in _checks:
        _checks.append(check)


def unregister_admission_check(check: AdmissionCheck) -> None:
    if check in _checks:
        _checks.remove(check)


class BudgetHold(Protocol):
    """The run's reservation against its ledger budgets (policy.budgets.LedgerBudgetHold)."""

    reserved: Decimal

    def applies(self) -> bool:
        """Whether any budget applies to the run now (cheap: cached, at most 1 s stale)."""

    def ensure(self, total: Decimal, ahead: Decimal = Decimal(0)) -> Denial | None:
        """Make the run's ledger reservation at least `total` (`ahead` more if that fits), or deny."""

    def cover(self, total: Decimal) -> None:
        """Raise the reservation to `total` without a check: money already spent (a call that cost more than
        its worst case) must count against the budgets until the run is recorded."""


class SharedBudget:
    """A cost limit shared by the concurrent runs of a batch (`genops run --inputs batch.jsonl --max-cost 5`).

    Spend and the worst cases of calls in flight count against `limit`; once no call fits, runs stop before
    their next LLM call and the batch starts no new run. Thread-safe.
    """

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.spent = Decimal(0)
        self.held = Decimal(0)
        self.denied = False  # a call did not fit: the batch starts no new run
        self._lock = threading.Lock()

    def add(self, cost: Decimal) -> None:
        with self._lock:
            self.spent = quantize_money(self.spent + cost)

    def hold(self, amount: Decimal) -> bool:
        """Hold `amount` for a call if it fits under the limit."""
        with self._lock:
            if self.spent + self.held + amount > self.limit:
                self.denied = True
                return False
            self.held += amount
            return True

    def unhold(self, amount: Decimal) -> None:
        with self._lock:
            self.held -= amount

    @property
    def exhausted(self) -> bool:
        return self.denied or self.spent >= self.limit


@dataclass
class _Ticket:
    amount: Decimal
    shared: bool


class RunAdmission:
    """The per-call gate of one run. Thread-safe (async pipelines run calls concurrently)."""

    def __init__(self, run: RunRecord, *, max_cost: Decimal | None = None, shared: SharedBudget | None = None,
                 budgets: BudgetHold | None = None, checks: list[AdmissionCheck] | None = None) -> None:
        self.run = run
        self.checks = list(checks or ())  # this run's own rules (compliance), before the process-wide ones
        self.max_cost = max_cost
        self.shared = shared
        self.budgets = budgets
        self.spent = Decimal(0)
        self.held = Decimal(0)
        self.denial: Denial | None = None
        self._top_ups = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any per-call limit can apply (else the tracer skips counting tokens)."""
        return (self.max_cost is not None or self.shared is not None or bool(_checks) or bool(self.checks)
                or (self.budgets is not None and (self.budgets.reserved > 0 or self.budgets.applies())))

    def admit(self, request: CallRequest) -> _Ticket:
        """Admit the call or raise CallBlocked; the returned ticket is released when the call ends."""
        worst = request.worst_case
        with self._lock:
            denial = self._in_memory(request)
            shared = False
            if denial is None and self.shared is not None:
                shared = self.shared.hold(worst)
                if not shared:
                    denial = Denial(REASON, (
                        f"batch cost cap ${self.shared.limit} reached (spent ${self.shared.spent}, in flight "
                        f"${quantize_money(self.shared.held)}); stopped before {request.component} "
                        f"(worst case ${quantize_money(worst)})"), "batch:max_cost")
            if denial is None and self.budgets is not None:
                total = self.spent + self.held + worst
                if total > self.budgets.reserved and self.budgets.applies():
                    # Hold a few more calls like this one when there is room (1, 2, 4, then 8 more as the run
                    # keeps needing top-ups: a looping Agent), so most calls are admitted in memory.
                    ahead = worst * min(2 ** self._top_ups, 8)
                    self._top_ups += 1
                    denial = self.budgets.ensure(total, ahead)
                if denial is not None and shared:
                    self.shared.unhold(worst)  # type: ignore[union-attr]
            if denial is not None:
                self.denial = denial
                raise CallBlocked(denial)
            self.held += worst
            return _Ticket(worst, shared)

    def _in_memory(self, request: CallRequest) -> Denial | None:
        worst = request.worst_case
        if self.max_cost is not None and self.spent + self.held + worst > self.max_cost:
            return Denial(REASON, (
                f"run cost cap ${self.max_cost} reached (spent ${quantize_money(self.spent)}); stopped before "
                f"{request.component} (worst case ${quantize_money(worst)})"), "run:max_cost")
        for check in [*self.checks, *_checks]:
            denial = check(request, self)
            if denial is not None:
                return denial
        return None

    def spend(self, cost: Decimal) -> None:
        """A finished call's priced cost (every call the tracer records, admitted or not)."""
        if not cost:
            return
        with self._lock:
            self.spent += cost
        if self.shared is not None:
            self.shared.add(cost)

    def release(self, ticket: _Ticket) -> None:
        """The admitted call ended (its cost was given to `spend`): its worst case no longer counts."""
        with self._lock:
            self.held -= ticket.amount
            budgets = self.budgets
            if budgets is not None and budgets.reserved > 0 and self.spent + self.held > budgets.reserved:
                # Reconcile: the call cost more than its worst case (usage above the count); the run's hold
                # never falls below its spend, so other runs see the money before this run is recorded.
                budgets.cover(self.spent + self.held)
        if ticket.shared and self.shared is not None:
            self.shared.unhold(ticket.amount)


# -- a call's worst case ---------------------------------------------------------------------------------------


def requested_model(inputs: Any) -> str | None:
    """The model a call's own generation_kwargs ask for (it replaces the component's configured model)."""
    if not isinstance(inputs, Mapping):
        return None
    kwargs = inputs.get("generation_kwargs")
    model = kwargs.get("model") if isinstance(kwargs, Mapping) else None
    return model if isinstance(model, str) and model else None


def requested_max_tokens(inputs: Any) -> int | None:
    """max_tokens (or a provider's synonym) from the call's generation_kwargs, if the caller set one."""
    from genops_cli.tracking.usage import max_tokens_of

    return max_tokens_of(inputs)


def worst_output_tokens(max_tokens: int | None, model: str | None, provider: str | None,
                        cap: int) -> tuple[int, str]:
    """Worst-case output tokens of one LLM call and where the number comes from."""
    if max_tokens:
        return max_tokens, "max_tokens"
    if model:
        from genops_cli.pricing import get_price_book

        resolved = get_price_book().resolve(model, provider)
        if resolved is not None and resolved.max_output_tokens:
            return resolved.max_output_tokens, "model_output_limit"
    return cap, "configured_cap"


def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _texts(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _texts(item, out)
    elif getattr(value, "content", None) is not None:  # a Document
        _texts(value.content, out)


def input_tokens_of(inputs: Any, model: str | None, provider: str | None, embedding: bool) -> int:
    """Input tokens of a call counted offline from its rendered inputs (messages, prompt, tools, texts)."""
    from genops_cli.tokens import count_text_tokens, estimate_input_tokens

    if not isinstance(inputs, Mapping):
        return 0
    if embedding:
        texts: list[str] = []
        _texts(inputs.get("text") if "text" in inputs else inputs.get("documents"), texts)
        return sum(count_text_tokens(t, model) for t in texts)
    tokens = 0
    messages = inputs.get("messages")
    if messages:
        tokens += estimate_input_tokens(list(messages), model, provider).tokens
    for key in ("prompt", "system_prompt"):
        if isinstance(inputs.get(key), str):
            tokens += estimate_input_tokens(inputs[key], model, provider).tokens
    tools = inputs.get("tools")
    if tools:
        tokens += count_text_tokens(_tools_text(tools), model)
    return tokens


def _tools_text(tools: Any) -> str:
    """The tool definitions as the provider sees them (name, description, JSON schema)."""
    specs = []
    for tool in tools if isinstance(tools, list | tuple) else getattr(tools, "tools", [tools]):
        specs.append({"name": getattr(tool, "name", ""), "description": getattr(tool, "description", ""),
                      "parameters": getattr(tool, "parameters", None)})
    return json.dumps(specs, default=str)


def worst_case_request(run_id: str, component: str, kind: str, provider: str | None, model: str | None,
                       inputs: Any, configured_max_tokens: int | None, max_tokens_cap: int,
                       tenant: str | None = None, endpoint: str | None = None) -> CallRequest:
    """Price the worst case of one call from its rendered inputs (offline, no provider request)."""
    from genops_cli.pricing import get_price_book

    embedding = kind == "embedding"
    input_tokens = input_tokens_of(inputs, model, provider, embedding)
    if embedding:
        output_tokens, basis = 0, "none"
    else:
        wanted = requested_max_tokens(inputs) or configured_max_tokens
        output_tokens, basis = worst_output_tokens(wanted, model, provider, max_tokens_cap)
    cost, priced = UNKNOWN_WORST_CASE, False
    if model:
        usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens, source="estimated")
        result = get_price_book().price(usage, model, provider, tenant=tenant)
        if result.priced:
            cost, priced = result.cost, True
    return CallRequest(run_id=run_id, component=component, kind=kind, provider=provider, model=model,
                       endpoint=endpoint, input_tokens=input_tokens, output_tokens=output_tokens,
                       output_basis=basis, worst_case=cost, priced=priced)
