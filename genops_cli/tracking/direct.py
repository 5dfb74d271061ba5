"""Direct calls: a generator's or embedder's `run()` called by application code, outside a Pipeline, inside a
genops-tracked run (`track_pipeline`, `track_session`, the mixin's `track_execution`).

Haystack opens spans only for the components a Pipeline runs (and for an Agent's steps, and the chat generators
some components embed); a direct `generator.run(messages=...)` is invisible to every tracer, so its spend would
be missing from the run, and its call would not be admitted against the run's limits. genops wraps `run` and
`run_async` of the LLM and embedding component classes Haystack has registered, and opens for a direct call the
span a Pipeline would (`haystack.component.run`, the same name and type tags, the inputs and outputs as content
tags): the call is admitted before it is made, priced and recorded like any other.

In a simulated run (`--simulate`, an estimate's pass) such a call is answered by the generator's stand-in, as
the pipeline's own generators are: a custom component's inner generator never reaches the provider there.

Left alone (one context-variable read): calls outside a tracked run, and calls that already have their span:
made by a Pipeline or an Agent, by Haystack's helper for embedded chat generators, or by a subclass's `run`
through `super().run(...)` inside the span of that run.

    install_direct_tracing()   # idempotent; also picks up component classes registered since its last call
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from genops_cli.tracking.capture import current_capture, current_span

_MARK = "__genops_direct__"

_lock = threading.Lock()
_seen_registry_size = -1
_visited: weakref.WeakSet[type] = weakref.WeakSet()
_registry: dict[str, type] | None = None  # Haystack's component registry, looked up once


def install_direct_tracing() -> None:
    """Wrap `run` / `run_async` of every registered LLM and embedding component class not wrapped yet."""
    global _seen_registry_size, _registry
    if _registry is None:
        from haystack.core.component.component import component

        _registry = component.registry
    registry = _registry
    if len(registry) == _seen_registry_size:
        return
    with _lock:
        for cls in list(registry.values()):
            if cls not in _visited:
                _visited.add(cls)
                _wrap_class(cls)
        _seen_registry_size = len(registry)


def _wrap_class(cls: type) -> None:
    from genops_cli.tracking.usage import is_embedder, is_llm_component

    qualified = f"{cls.__module__}.{cls.__name__}"
    if cls.__module__.startswith("genops_cli."):  # genops' own stand-ins call no provider
        return
    if not (is_llm_component(cls.__name__, qualified) or is_embedder(cls.__name__, qualified)):
        return
    for name, wrap in (("run", _traced), ("run_async", _traced_async)):
        method = cls.__dict__.get(name)
        # Plain functions only (a staticmethod or a callable object would not take the instance the same way).
        if isinstance(method, types.FunctionType) and not getattr(method, _MARK, False):
            setattr(cls, name, wrap(method))


def _capture_for_direct_call(component: Any) -> Any:
    """The run capture a direct call belongs to, or None when the call already has its span (see the module
    doc) or no run is tracked here."""
    from genops_cli.tracking.tracer import AGENT_LLM, CHAT_GENERATOR_RUN, COMPONENT_RUN

    span = current_span.get()
    capture = current_capture.get() or (span.capture if span is not None else None)
    if capture is None:
        return None
    if span is not None and span.capture is capture:
        if span.operation_name in (AGENT_LLM, CHAT_GENERATOR_RUN):  # opened for exactly one generator call
            return None
        if span.operation_name == COMPONENT_RUN and span.component_type == type(component).__name__:
            # The span opened for this component: a Pipeline's, or ours around a subclass's run() that is now
            # calling super().run() (the span names the instance's class either way).
            return None
    return capture


_signature = functools.lru_cache(maxsize=512)(inspect.signature)


def _inputs(run: Callable[..., Any], component: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> dict[str, Any]:
    try:
        bound = _signature(run).bind(component, *args, **kwargs)
    except TypeError:
        return dict(kwargs)  # the call itself will fail the same way, with the component's own message
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(arguments), ""), None)  # self
    extra = arguments.pop("kwargs", None)
    if isinstance(extra, dict):
        arguments.update(extra)
    return arguments


@contextmanager
def _direct_span(instance: Any, capture: Any, inputs: dict[str, Any]) -> Iterator[Any]:
    """The span a Pipeline opens for a component, for a direct call (`instance` is read by the tracer to find
    the model of the generator about to be called)."""
    from haystack import tracing

    if capture.on_pipeline_start is not None:
        capture.on_pipeline_start({})  # the run's preflight, once, if no pipeline started it (may raise: blocked)
    name = type(instance).__name__
    tags = {"haystack.component.name": name, "haystack.component.type": name,
            "haystack.component.fully_qualified_type": f"{type(instance).__module__}.{name}",
            "haystack.component.input_types": {k: type(v).__name__ for k, v in inputs.items()}}
    with tracing.tracer.trace("haystack.component.run", tags=tags) as span:
        span.set_content_tag("haystack.component.input", inputs)
        yield span
        span.set_tag("haystack.component.visits", 1)


def _stand_in(capture: Any, component: Any, inputs: dict[str, Any]) -> Callable[[], Any] | None:
    """In a simulated run: the call that answers in place of the real one (no provider request), else None."""
    factory = capture.stand_in
    stand_in = factory(component) if factory is not None else None
    if stand_in is None:
        return None
    accepted = _signature(type(stand_in).run).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return lambda: stand_in.run(**inputs)
    return lambda: stand_in.run(**{k: v for k, v in inputs.items() if k in accepted})


def _with_stream_usage(component: Any, inputs: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A direct streaming call of a chat-completions generator asks for its usage (`tracer.ask_stream_usage`),
    through its keyword arguments (left alone when generation_kwargs was passed by position)."""
    from genops_cli.tracking.tracer import ask_stream_usage

    if "generation_kwargs" in inputs and "generation_kwargs" not in kwargs:
        return kwargs
    asked = {"streaming_callback": inputs.get("streaming_callback"), **kwargs}
    ask_stream_usage(component, asked)
    if asked.get("generation_kwargs") is kwargs.get("generation_kwargs"):
        return kwargs
    inputs["generation_kwargs"] = asked["generation_kwargs"]
    return {**kwargs, "generation_kwargs": asked["generation_kwargs"]}


def _traced(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    def run_traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_capture.get() is None and current_span.get() is None:
            return run(self, *args, **kwargs)
        capture = _capture_for_direct_call(self)
        if capture is None:
            return run(self, *args, **kwargs)
        inputs = _inputs(run, self, args, kwargs)
        kwargs = _with_stream_usage(self, inputs, kwargs)
        with _direct_span(self, capture, inputs) as span:
            simulated = _stand_in(capture, self, inputs)
            result = simulated() if simulated is not None else run(self, *args, **kwargs)
            span.set_content_tag("haystack.component.output", result)
            return result

    setattr(run_traced, _MARK, True)
    return run_traced


def _traced_async(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    async def run_async_traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_capture.get() is None and current_span.get() is None:
            return await run(self, *args, **kwargs)
        capture = _capture_for_direct_call(self)
        if capture is None:
            return await run(self, *args, **kwargs)
        inputs = _inputs(run, self, args, kwargs)
        kwargs = _with_stream_usage(self, inputs, kwargs)
        with _direct_span(self, capture, inputs) as span:
            simulated = _stand_in(capture, self, inputs)
            result = simulated() if simulated is not None else await run(self, *args, **kwargs)
            span.set_content_tag("haystack.component.output", result)
            return result

    setattr(run_async_traced, _MARK, True)
    return run_async_traced

